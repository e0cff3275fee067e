"""The REST API: one resource per route in functions/routes.py, each to its function."""

from __future__ import annotations

from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from functions.routes import BINARY_MEDIA_TYPES, ROUTES


class RestApi(Construct):
    """API Gateway (REST, Lambda proxy) with binary media types, access logs, throttling and an
    API key on every method."""

    def __init__(
        self, scope: Construct, construct_id: str, *, functions: dict[str, lambda_.IFunction], stage: str
    ) -> None:
        super().__init__(scope, construct_id)
        access_logs = logs.LogGroup(self, "AccessLogs", retention=logs.RetentionDays.ONE_MONTH)
        self.api = apigw.RestApi(
            self,
            "Api",
            rest_api_name=f"listing-vision-{stage}",
            binary_media_types=list(BINARY_MEDIA_TYPES),
            cloud_watch_role=True,
            deploy_options=apigw.StageOptions(
                stage_name=stage,
                tracing_enabled=True,
                throttling_rate_limit=50,
                throttling_burst_limit=100,
                logging_level=apigw.MethodLoggingLevel.INFO,
                access_log_destination=apigw.LogGroupLogDestination(access_logs),
                access_log_format=apigw.AccessLogFormat.json_with_standard_fields(
                    caller=False,
                    http_method=True,
                    ip=True,
                    protocol=True,
                    request_time=True,
                    resource_path=True,
                    response_length=True,
                    status=True,
                    user=False,
                ),
            ),
        )
        for route in ROUTES:
            resource = self.api.root.resource_for_path(route.path)
            resource.add_method(
                route.method,
                apigw.LambdaIntegration(functions[route.function]),
                api_key_required=True,
            )
        key = self.api.add_api_key("Key")
        plan = self.api.add_usage_plan(
            "Plan",
            throttle=apigw.ThrottleSettings(rate_limit=20, burst_limit=40),
        )
        plan.add_api_key(key)
        plan.add_api_stage(stage=self.api.deployment_stage)
