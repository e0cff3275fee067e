"""cdk-nag (v3): AWS Solutions checks on every synth, with each accepted finding justified here.

cdk-nag v3 reports IAM findings one by one (`Rule[Finding]`), so each is acknowledged by name.
"""

from __future__ import annotations

from aws_cdk import Acknowledgment, App, Stack, Validations
from aws_cdk import aws_s3 as s3
from cdk_nag import AwsSolutionsChecks

ASSET_READ = "CDK's asset grant reads the model artefact from the bootstrap assets bucket."
GRANT_WILDCARDS = "CDK's bucket grant helpers use action wildcards (s3:GetObject*, s3:List*, ...) on one bucket."

CDK_ASSETS_OBJECTS = "arn:<AWS::Partition>:s3:::cdk-hnb659fds-assets-<AWS::AccountId>-<AWS::Region>/*"
LAMBDA_BASIC_POLICY = "arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
APIGW_LOGS_POLICY = "arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs"

ACKNOWLEDGED: dict[str, str] = {
    "AwsSolutions-IAM5[Resource::*]": "X-Ray writes, ECR GetAuthorizationToken and the endpoint's log and metric "
    "writes have no resource-level permissions.",
    "AwsSolutions-IAM5[Action::s3:GetObject*]": GRANT_WILDCARDS,
    "AwsSolutions-IAM5[Action::s3:GetBucket*]": GRANT_WILDCARDS,
    "AwsSolutions-IAM5[Action::s3:List*]": GRANT_WILDCARDS,
    "AwsSolutions-IAM5[Action::s3:DeleteObject*]": GRANT_WILDCARDS,
    "AwsSolutions-IAM5[Action::s3:Abort*]": GRANT_WILDCARDS,
    f"AwsSolutions-IAM4[Policy::{APIGW_LOGS_POLICY}]": "API Gateway's account-level CloudWatch role uses the "
    "AWS managed push-to-logs policy CDK attaches.",
    f"AwsSolutions-IAM4[Policy::{LAMBDA_BASIC_POLICY}]": "CDK's BucketNotificationsHandler (it configures the "
    "buckets' S3 event notifications at deploy time) uses the AWS managed basic execution policy.",
    "AwsSolutions-APIG2": "Requests are validated in each function against its OpenAPI model (Powertools), "
    "which also validates multipart bodies API Gateway models cannot.",
    "AwsSolutions-APIG4": "Methods require an API key with a usage plan; an authorizer (IAM or Cognito) is the "
    "adopter's choice.",
    "AwsSolutions-COG4": "No Cognito user pool: callers are services authenticated by API key.",
    "AwsSolutions-APIG3": "WAF is attached per deployment by the adopter's edge account.",
    "AwsSolutions-S1": "The access-log bucket cannot log to itself.",
    f"AwsSolutions-IAM5[Resource::{CDK_ASSETS_OBJECTS}]": ASSET_READ,
    "AwsSolutions-SM1": "The CLIP endpoint needs no VPC resources; it is reached only through IAM-signed "
    "InvokeEndpoint calls.",
    "AwsSolutions-SM2": "GPU instances with local NVMe storage (ml.g5) reject a KMS key for the volume; the "
    "endpoint keeps no data at rest.",
    "AwsSolutions-SM3": "The container installs code/requirements.txt (onnxruntime-gpu) at start, which needs "
    "network access.",
    "AwsSolutions-L1": "Python 3.12 is pinned to match the layer's wheels (--python-version 3.12).",
}


def add_checks(app: App, stack: Stack, buckets: list[s3.Bucket], extra: dict[str, str] | None = None) -> None:
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    for rule, reason in {**ACKNOWLEDGED, **(extra or {})}.items():
        Validations.of(stack).acknowledge(Acknowledgment(id=rule, reason=reason))
    for bucket in buckets:
        logical_id = stack.resolve(stack.get_logical_id(bucket.node.default_child))  # type: ignore[arg-type]
        Validations.of(stack).acknowledge(
            Acknowledgment(
                id=f"AwsSolutions-IAM5[Resource::<{logical_id}.Arn>/*]",
                reason="Object-level access to every key of one of the platform's own buckets.",
            )
        )
