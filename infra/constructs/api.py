"""The REST API and who may call it: everything the API edge may touch, in one place.

One resource per route of functions/routes.py, each to its function; API Gateway's own errors in
the platform's error shape (listing_vision.api.gateway_responses). Every method is authorized by
the `authorizer` function (a REQUEST authorizer, run on every request), which finds the client by its
key's hash (`x-api-key`) in the `api-clients` table, or checks a person's user-pool token
(`Authorization: Bearer`, infra/constructs/console.py), and passes the caller's storefronts to the
functions, which refuse other storefronts (api/access.py). CORS for the console's origins only. The key is also the
usage identifier (API key source AUTHORIZER), so each client is throttled and metered by its usage
plan (`standard` or `bulk`; `python -m listing_vision.api.clients create --usage-plan …`
registers a key); a route that declares its own throttle (GET /listings/search) has it in every
plan, per client (a key is in one plan per stage, so a route cannot have a plan of its own).
Optionally a WAF web ACL (context `waf`): AWS's common rule set and a rate limit per source IP.
`GET /openapi.json` answers the API's OpenAPI document (functions/openapi.py).
"""

from __future__ import annotations

import json

from aws_cdk import Duration, Fn, RemovalPolicy
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_wafv2 as wafv2
from constructs import Construct

from functions.openapi import document as openapi_document
from functions.routes import BINARY_MEDIA_TYPES, ROUTES, Route
from infra.constructs.console import Console
from infra.constructs.platform import Platform, allow
from infra.nag import acknowledge
from listing_vision.api.console_policy import ALLOW_HEADERS, ALLOW_METHODS, MAX_AGE_S
from listing_vision.api.gateway_responses import GATEWAY_RESPONSES, template
from listing_vision.api.user_tokens import USAGE_KEY_PREFIX

# name -> (requests per second, burst, requests per day)
OPENAPI_PATH = "/openapi.json"


def keyed_method(
    resource: apigw.IResource,
    http_method: str,
    integration: apigw.Integration,
    keys: apigw.RequestAuthorizer,
    **options: object,
) -> apigw.Method:
    """A method behind the key authorizer and a usage plan's API key: every method of this API."""
    method = resource.add_method(
        http_method,
        integration,
        authorizer=keys,
        authorization_type=apigw.AuthorizationType.CUSTOM,
        api_key_required=True,
        **options,  # type: ignore[arg-type]
    )
    acknowledge(
        method,
        "AwsSolutions-COG4",
        "The Lambda authorizer checks both kinds of caller: storefront services' hashed API keys and people's "
        "Cognito user-pool tokens (signature, issuer, client, expiry); a Cognito authorizer could not take keys.",
    )
    return method


def vtl_literal_json(value: object) -> str:
    """JSON that API Gateway's mapping templates (Velocity) return verbatim: `$` and `#` start
    Velocity references and directives, and in JSON they can only occur inside strings, where the
    escapes \\u0024 and \\u0023 mean the same characters to any JSON reader."""
    return json.dumps(value, separators=(",", ":")).replace("$", "\\u0024").replace("#", "\\u0023")


USAGE_PLANS = {"standard": (20, 40, 100_000), "bulk": (50, 100, 1_000_000)}


def route_throttles(methods: dict[Route, apigw.Method], rate: float, burst: int) -> list[apigw.ThrottlingPerMethod]:
    """A usage plan's per-method throttles: each route that declares its own (functions/routes.py)
    gets it, never above the plan's own rate and burst."""
    return [
        apigw.ThrottlingPerMethod(
            method=method,
            throttle=apigw.ThrottleSettings(
                rate_limit=min(route.throttle[0], rate), burst_limit=min(route.throttle[1], burst)
            ),
        )
        for route, method in methods.items()
        if route.throttle is not None
    ]


class RestApi(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        platform: Platform,
        functions: dict[str, lambda_.IFunction],
        console: Console,
    ) -> None:
        super().__init__(scope, construct_id)
        config = platform.config
        self.authorizer_function = platform.function(self, "authorizer")
        allow(self.authorizer_function, ["dynamodb:GetItem"], [platform.table_arn("api_clients_table")])
        self.functions = {"authorizer": self.authorizer_function}
        removal = RemovalPolicy.RETAIN if config.removal_retains_data else RemovalPolicy.DESTROY
        access_logs = logs.LogGroup(self, "AccessLogs", retention=logs.RetentionDays.ONE_MONTH, removal_policy=removal)
        self.api = apigw.RestApi(
            self,
            "Api",
            rest_api_name=config.name("api"),
            binary_media_types=list(BINARY_MEDIA_TYPES),
            # Preflights (OPTIONS) answered by API Gateway itself, for the console's origins only
            # (listing_vision.api.console_policy; the functions add the same headers to their answers).
            default_cors_preflight_options=apigw.CorsOptions(
                allow_origins=console.origins,
                allow_methods=list(ALLOW_METHODS),
                allow_headers=list(ALLOW_HEADERS),
                max_age=Duration.seconds(MAX_AGE_S),
            ),
            api_key_source_type=apigw.ApiKeySourceType.AUTHORIZER,
            # The account's logging role, one per account and region: made by the stage whose context says so,
            # and kept when that stage goes, since every stage's logs need it (README: Deploying).
            cloud_watch_role=config.api_gateway_cloudwatch_role,
            cloud_watch_role_removal_policy=RemovalPolicy.RETAIN if config.api_gateway_cloudwatch_role else None,
            deploy_options=apigw.StageOptions(
                stage_name=config.stage,
                tracing_enabled=True,
                throttling_rate_limit=100,
                throttling_burst_limit=200,
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
                    user=True,
                ),
            ),
        )
        # API Gateway writes execution logs to this group; made here so it has a retention too.
        logs.LogGroup(
            self,
            "ExecutionLogs",
            log_group_name=f"API-Gateway-Execution-Logs_{self.api.rest_api_id}/{config.stage}",
            retention=logs.RetentionDays.ONE_MONTH,
            removal_policy=removal,
        )
        keys = apigw.RequestAuthorizer(
            self,
            "ApiKeys",
            handler=self.authorizer_function.alias,
            # A key (x-api-key) or a person's token (Authorization): API Gateway requires every identity
            # source it names, so it names none and the authorizer refuses a request with neither. Without an
            # identity source its answers cannot be cached: it runs on every request.
            identity_sources=[],
            results_cache_ttl=Duration.seconds(0),
        )
        methods: dict[Route, apigw.Method] = {}
        for route in ROUTES:
            resource = self.api.root.resource_for_path(route.path)
            methods[route] = keyed_method(
                resource, route.method, apigw.LambdaIntegration(functions[route.function]), keys
            )
        self._openapi_document(keys)
        for response in GATEWAY_RESPONSES:
            self.api.add_gateway_response(
                response.response_type,
                type=apigw.ResponseType.of(response.response_type),
                status_code=str(response.status) if response.status else None,
                # API Gateway cannot choose among origins here: its refusals name the console's own
                # (readable there, by no other origin's browser)
                response_headers={
                    "Content-Type": "'application/json'",
                    "Access-Control-Allow-Origin": f"'{console.origin}'",
                    "Vary": "'Origin'",
                },
                templates={"application/json": template(response)},
            )
        self.usage_plans = {}
        for name, (rate, burst, per_day) in USAGE_PLANS.items():
            plan = self.api.add_usage_plan(
                f"{name.capitalize()}Plan",
                name=config.name(name),
                throttle=apigw.ThrottleSettings(rate_limit=rate, burst_limit=burst),
                quota=apigw.QuotaSettings(limit=per_day, period=apigw.Period.DAY),
            )
            plan.add_api_stage(stage=self.api.deployment_stage, throttle=route_throttles(methods, rate, burst))
            self.usage_plans[name] = plan
        # People's requests (user-pool tokens) are metered together on one key of the standard plan, named
        # after the console's app client: not a secret, sent as x-api-key it matches no client.
        people = self.api.add_api_key(
            "PeopleKey",
            api_key_name=config.name("people"),
            value=Fn.join("", [USAGE_KEY_PREFIX, console.client.user_pool_client_id]),
        )
        self.usage_plans["standard"].add_api_key(people)
        acknowledge(
            self.api,
            "AwsSolutions-APIG2",
            "Each function validates its requests against its OpenAPI model (Powertools), multipart bodies "
            "included, which API Gateway's request validators cannot check.",
        )
        if config.waf:
            self._web_acl(config.name("api-waf"), config.waf_requests_per_5_minutes)
        else:
            acknowledge(
                self.api.deployment_stage,
                "AwsSolutions-APIG3",
                "This stage's context sets waf=false: no web ACL is associated.",
            )
        role = self.api.node.try_find_child("CloudWatchRole")
        if role is not None:
            acknowledge(
                role,
                "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
                "AmazonAPIGatewayPushToCloudWatchLogs]",
                "API Gateway's account-level logging role uses the AWS managed push-to-logs policy.",
            )

    def _openapi_document(self, keys: apigw.RequestAuthorizer) -> None:
        """GET /openapi.json: the API's OpenAPI document (functions/openapi.py), answered by API
        Gateway itself (a mock integration), to any client with a key. The local gateway serves the
        same document."""
        resource = self.api.root.add_resource(OPENAPI_PATH.strip("/"))
        keyed_method(
            resource,
            "GET",
            apigw.MockIntegration(
                request_templates={"application/json": '{"statusCode": 200}'},
                passthrough_behavior=apigw.PassthroughBehavior.NEVER,
                integration_responses=[
                    apigw.IntegrationResponse(
                        status_code="200",
                        response_templates={"application/json": vtl_literal_json(openapi_document())},
                    )
                ],
            ),
            keys,
            method_responses=[apigw.MethodResponse(status_code="200")],
        )

    def _web_acl(self, name: str, rate_limit: int) -> None:
        def visibility(metric: str) -> wafv2.CfnWebACL.VisibilityConfigProperty:
            return wafv2.CfnWebACL.VisibilityConfigProperty(
                cloud_watch_metrics_enabled=True, metric_name=metric, sampled_requests_enabled=True
            )

        acl = wafv2.CfnWebACL(
            self,
            "WebAcl",
            name=name,
            scope="REGIONAL",
            default_action=wafv2.CfnWebACL.DefaultActionProperty(allow={}),
            visibility_config=visibility(name),
            rules=[
                wafv2.CfnWebACL.RuleProperty(
                    name="common-rule-set",
                    priority=0,
                    override_action=wafv2.CfnWebACL.OverrideActionProperty(none={}),
                    statement=wafv2.CfnWebACL.StatementProperty(
                        managed_rule_group_statement=wafv2.CfnWebACL.ManagedRuleGroupStatementProperty(
                            vendor_name="AWS",
                            name="AWSManagedRulesCommonRuleSet",
                            # Uploads are multipart images of up to 10 MB: the body-size rule would block them.
                            excluded_rules=[wafv2.CfnWebACL.ExcludedRuleProperty(name="SizeRestrictions_BODY")],
                        )
                    ),
                    visibility_config=visibility(f"{name}-common"),
                ),
                wafv2.CfnWebACL.RuleProperty(
                    name="rate-per-ip",
                    priority=1,
                    action=wafv2.CfnWebACL.RuleActionProperty(block={}),
                    statement=wafv2.CfnWebACL.StatementProperty(
                        rate_based_statement=wafv2.CfnWebACL.RateBasedStatementProperty(
                            limit=rate_limit, aggregate_key_type="IP"
                        )
                    ),
                    visibility_config=visibility(f"{name}-rate"),
                ),
            ],
        )
        wafv2.CfnWebACLAssociation(
            self, "WebAclAssociation", resource_arn=self.api.deployment_stage.stage_arn, web_acl_arn=acl.attr_arn
        )
