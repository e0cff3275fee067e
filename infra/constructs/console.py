"""The review console on AWS, and the people who use it.

Hosting: a private bucket holding console/ (deployed by BucketDeployment, with a `config.json` naming the
API's URL and the sign-in's Cognito domain and app client: no secret), read by a CloudFront distribution
through origin access control, HTTPS only, whose response-headers policy sends the console's
Content-Security-Policy, built by the same function the local stack's is
(listing_vision.api.console_policy): on AWS the API (any API Gateway URL of the region: the API's own
id depends on its authorizer, which depends on this distribution) and the Cognito domain are the
other origins the page may call, the image buckets and their distributions the origins of its photos.

People: a Cognito user pool (no self sign-up: an operator creates each person), with one group per
storefront (the group's name is the storefront's), the hosted UI on a Cognito domain and one public
app client (authorization code with PKCE, no client secret) whose callback is the console. The
authorizer accepts the pool's tokens besides client keys (listing_vision.api.user_tokens).
"""

from __future__ import annotations

import json
from pathlib import Path

from aws_cdk import CfnOutput, Duration, Fn, Stack
from aws_cdk import aws_cloudfront as cloudfront
from aws_cdk import aws_cloudfront_origins as origins
from aws_cdk import aws_cognito as cognito
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_deployment as s3deploy
from constructs import Construct

from infra.config import DeploymentConfig
from infra.constructs.cdn import NAG_REASONS as CDN_NAG_REASONS
from infra.constructs.storage import Storage
from infra.nag import acknowledge, nag_resource
from listing_vision.api.console_policy import content_security_policy

NAG_REASONS = {
    "CFR1": "Reviewers work from anywhere: no country is to be refused the console's static files.",
    "CFR2": "Static files (HTML, JS, CSS) behind origin access control, GET/HEAD only; what they call, the API, "
    "has its own authorizer and optional WAF.",
    "CFR3": CDN_NAG_REASONS["CFR3"],
    "CFR4": CDN_NAG_REASONS["CFR4"],
}
CONSOLE_DIR = Path(__file__).resolve().parents[2] / "console"
CONSOLE_FILES = (".html", ".js", ".css", ".svg")


class Console(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: DeploymentConfig,
        storage: Storage,
        image_origins: list[str],
    ) -> None:
        super().__init__(scope, construct_id)
        self.config = config
        self.removal = storage.removal  # the pool holds people: kept where the stage keeps its data
        stack = Stack.of(self)
        self.bucket = s3.Bucket(
            self,
            "Site",
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            server_access_logs_bucket=storage.access_logs,
            server_access_logs_prefix="console/",
            removal_policy=storage.removal,
            auto_delete_objects=not config.removal_retains_data,
        )
        # The hosted UI's domain: a prefix unique in the region (the stage and the account).
        self.domain_prefix = Fn.join("-", ["listing-vision", config.stage, stack.account])
        self.sign_in_url = f"https://{self.domain_prefix}.auth.{stack.region}.amazoncognito.com"
        api_origins = f"https://*.execute-api.{stack.region}.amazonaws.com"
        headers = cloudfront.ResponseHeadersPolicy(
            self,
            "Headers",
            comment=config.name("console-headers"),
            security_headers_behavior=cloudfront.ResponseSecurityHeadersBehavior(
                content_security_policy=cloudfront.ResponseHeadersContentSecurityPolicy(
                    content_security_policy=content_security_policy(image_origins, (api_origins, self.sign_in_url)),
                    override=True,
                ),
                content_type_options=cloudfront.ResponseHeadersContentTypeOptions(override=True),
                referrer_policy=cloudfront.ResponseHeadersReferrerPolicy(
                    referrer_policy=cloudfront.HeadersReferrerPolicy.NO_REFERRER, override=True
                ),
                strict_transport_security=cloudfront.ResponseHeadersStrictTransportSecurity(
                    access_control_max_age=Duration.days(365), include_subdomains=True, override=True
                ),
                frame_options=cloudfront.ResponseHeadersFrameOptions(
                    frame_option=cloudfront.HeadersFrameOption.DENY, override=True
                ),
            ),
        )
        self.distribution = cloudfront.Distribution(
            self,
            "Distribution",
            comment=config.name("console"),
            default_root_object="index.html",
            default_behavior=cloudfront.BehaviorOptions(
                origin=origins.S3BucketOrigin.with_origin_access_control(self.bucket),
                viewer_protocol_policy=cloudfront.ViewerProtocolPolicy.HTTPS_ONLY,
                allowed_methods=cloudfront.AllowedMethods.ALLOW_GET_HEAD,
                cache_policy=cloudfront.CachePolicy.CACHING_OPTIMIZED,
                response_headers_policy=headers,
            ),
            price_class=cloudfront.PriceClass.PRICE_CLASS_100,
        )
        for rule, reason in NAG_REASONS.items():
            acknowledge(self.distribution, f"AwsSolutions-{rule}", reason)
        self.origin = f"https://{self.distribution.distribution_domain_name}"
        self._people(config)
        CfnOutput(self, "ConsoleUrl", value=f"{self.origin}/", description="The review console")

    @property
    def origins(self) -> list[str]:
        """The origins whose browsers may call the API: the console's, then the stage's others."""
        return [self.origin, *self.config.console_origins]

    def _people(self, config: DeploymentConfig) -> None:
        self.user_pool = cognito.UserPool(
            self,
            "People",
            user_pool_name=config.name("people"),
            self_sign_up_enabled=False,  # an operator creates each person (docs/operations.md)
            sign_in_aliases=cognito.SignInAliases(email=True),
            account_recovery=cognito.AccountRecovery.EMAIL_ONLY,
            password_policy=cognito.PasswordPolicy(
                min_length=12, require_digits=True, require_lowercase=True, require_uppercase=True, require_symbols=True
            ),
            mfa=cognito.Mfa.OPTIONAL,
            mfa_second_factor=cognito.MfaSecondFactor(otp=True, sms=False),
            removal_policy=self.removal,
        )
        acknowledge(
            self.user_pool,
            "AwsSolutions-COG2",
            "MFA is optional (one-time passwords): reviewers of a catalogue's photos may add it; requiring it is "
            "the pool's setting to change when the console reaches more than photos.",
        )
        acknowledge(
            self.user_pool,
            "AwsSolutions-COG8",
            "The Essentials feature plan: the Plus plan's threat protection is priced per active user, and the pool "
            "admits only people an operator created.",
        )
        self.groups = {
            name: cognito.CfnUserPoolGroup(
                self,
                f"Group{name.capitalize()}",
                user_pool_id=self.user_pool.user_pool_id,
                group_name=name,
                description=f"May use the {name} storefront in the console and the API.",
            )
            for name in config.storefront_names
        }
        self.user_pool.add_domain(
            "SignIn", cognito_domain=cognito.CognitoDomainOptions(domain_prefix=self.domain_prefix)
        )
        self.client = self.user_pool.add_client(
            "ConsoleClient",
            user_pool_client_name=config.name("console"),
            generate_secret=False,  # a page in a browser keeps no secret: PKCE instead
            auth_flows=cognito.AuthFlow(user_srp=False, user_password=False),
            o_auth=cognito.OAuthSettings(
                flows=cognito.OAuthFlows(authorization_code_grant=True),
                scopes=[cognito.OAuthScope.OPENID, cognito.OAuthScope.EMAIL],
                callback_urls=[f"{origin}/" for origin in self.origins],
                logout_urls=[f"{origin}/" for origin in self.origins],
            ),
            prevent_user_existence_errors=True,
            id_token_validity=Duration.hours(1),
            access_token_validity=Duration.hours(1),
        )
        self.issuer = f"https://cognito-idp.{Stack.of(self).region}.amazonaws.com/{self.user_pool.user_pool_id}"
        CfnOutput(self, "UserPoolId", value=self.user_pool.user_pool_id, description="People: the console's user pool")

    def environment(self) -> dict[str, str]:
        """What the functions read: the pool the authorizer trusts, the origins the API answers."""
        return {
            "USER_POOL_ISSUER": self.issuer,
            "USER_POOL_CLIENT_ID": self.client.user_pool_client_id,
            "CONSOLE_ORIGINS": json.dumps(self.origins),
        }

    def deploy(self, api_url: str) -> s3deploy.BucketDeployment:
        """The console's files and its config.json (the API's URL, the sign-in's domain and client) into the
        bucket, and the distribution's cache emptied of the old ones."""
        config = {
            "apiUrl": api_url.rstrip("/"),
            "signIn": {"domain": self.sign_in_url, "clientId": self.client.user_pool_client_id},
        }
        deployment = s3deploy.BucketDeployment(
            self,
            "Deploy",
            sources=[
                s3deploy.Source.asset(str(CONSOLE_DIR), exclude=["*", *(f"!*{suffix}" for suffix in CONSOLE_FILES)]),
                s3deploy.Source.json_data("config.json", config),
            ],
            destination_bucket=self.bucket,
            distribution=self.distribution,
            distribution_paths=["/*"],
            prune=True,
        )
        self._acknowledge_deployment(deployment)
        return deployment

    def _acknowledge_deployment(self, deployment: s3deploy.BucketDeployment) -> None:
        """CDK's BucketDeployment function (one per stack, made by CDK) copies the console's files from
        CDK's asset bucket at deploy time; its runtime and role are CDK's, granted on those two buckets."""
        handler = next(
            child for child in Stack.of(self).node.children if child.node.id.startswith("Custom::CDKBucketDeployment")
        )
        acknowledge(handler, "AwsSolutions-L1", "CDK's BucketDeployment function: its runtime is CDK's to choose.")
        acknowledge(
            deployment.handler_role,
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
            "CDK's BucketDeployment function logs with the AWS managed basic execution policy.",
        )
        for wildcard in (
            "Action::s3:Abort*",
            "Action::s3:DeleteObject*",
            "Action::s3:GetBucket*",
            "Action::s3:GetObject*",
            "Action::s3:List*",
            "Resource::*",
            f"Resource::{nag_resource(self, self.bucket.bucket_arn)}/*",
            "Resource::arn:<AWS::Partition>:s3:::cdk-hnb659fds-assets-<AWS::AccountId>-<AWS::Region>/*",
        ):
            acknowledge(
                deployment.handler_role,
                f"AwsSolutions-IAM5[{wildcard}]",
                "CDK's BucketDeployment grant: read the console's asset from CDK's asset bucket, replace every "
                "object of the console's bucket (pruning old files), and invalidate the distribution (CloudFront "
                "invalidations take no resource ARN).",
            )
