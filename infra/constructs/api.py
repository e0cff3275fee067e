"""The REST API: one resource per route in functions/routes.py, each to its function, and API
Gateway's own errors in the platform's error shape (listing_vision.api.gateway_responses)."""

from __future__ import annotations

from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from functions.routes import BINARY_MEDIA_TYPES, ROUTES
from infra.nag import acknowledge
from listing_vision.api.gateway_responses import GATEWAY_RESPONSES, template


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
            method = resource.add_method(
                route.method,
                apigw.LambdaIntegration(functions[route.function]),
                api_key_required=True,
            )
            for finding in ("AwsSolutions-APIG4", "AwsSolutions-COG4"):
                acknowledge(method, finding, "Callers are identified by API key, with a usage plan per key.")
        acknowledge(
            self.api,
            "AwsSolutions-APIG2",
            "Each function validates its requests against its OpenAPI model (Powertools), multipart bodies "
            "included, which API Gateway's request validators cannot check.",
        )
        acknowledge(
            self.api.deployment_stage,
            "AwsSolutions-APIG3",
            "No web ACL is associated with this stage.",
        )
        if self.api.node.try_find_child("CloudWatchRole") is not None:
            acknowledge(
                self.api.node.find_child("CloudWatchRole"),
                "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
                "AmazonAPIGatewayPushToCloudWatchLogs]",
                "API Gateway's account-level logging role uses the AWS managed push-to-logs policy.",
            )
        for response in GATEWAY_RESPONSES:
            self.api.add_gateway_response(
                response.response_type,
                type=apigw.ResponseType.of(response.response_type),
                status_code=str(response.status) if response.status else None,
                response_headers={"Content-Type": "'application/json'"},
                templates={"application/json": template(response)},
            )
        key = self.api.add_api_key("Key")
        plan = self.api.add_usage_plan(
            "Plan",
            throttle=apigw.ThrottleSettings(rate_limit=20, burst_limit=40),
        )
        plan.add_api_key(key)
        plan.add_api_stage(stage=self.api.deployment_stage)
