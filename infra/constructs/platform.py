"""What every capability builds on: the deployment settings, the stores, the layers, the CLIP
endpoint, the secrets, the network, and the one way to make a function and grant it access."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aws_cdk import Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as event_sources
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from functions.specs import spec
from functions.triggers import s3_triggers
from infra.config import DeploymentConfig
from infra.constructs.clip_endpoint import ClipEndpoint
from infra.constructs.releases import Releases
from infra.constructs.service_function import Network, ServiceFunction
from infra.constructs.storage import Storage
from infra.nag import acknowledge, acknowledged, nag_resource
from listing_vision.storefronts import bucket_setting

# What Powertools' DynamoDB idempotency layer calls (listing_vision/api/idempotency.py): a conditional put
# of the in-progress record, the answer's update, and the record's deletion when the call fails. No read:
# a put refused because the key holds a record returns that record (ReturnValuesOnConditionCheckFailure).
IDEMPOTENCY = ("dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem")

# The singleton CDK adds to a stack the first time a bucket notification is configured.
NOTIFICATIONS_HANDLER = "BucketNotificationsHandler050a0587b7544547bf325f094a3db834"


@dataclass
class Platform:
    config: DeploymentConfig
    storage: Storage
    layers: Mapping[str, lambda_.ILayerVersion]  # by group name (layers/layers.json)
    clip: ClipEndpoint
    environment: dict[str, str]
    opensearch_domain_arn: str
    releases: Releases
    network: Network | None = None
    secrets: dict[str, secretsmanager.ISecret] = field(default_factory=dict)  # milvus, openai, anthropic

    def function(self, scope: Construct, name: str, *, in_vpc: bool = False) -> ServiceFunction:
        """The function declared as `name` in functions/specs.py, in the VPC when it must reach Milvus
        or OpenSearch there."""
        declared = spec(name)
        return ServiceFunction(
            scope,
            "".join(part.capitalize() for part in name.split("-")),
            spec=declared,
            config=self.config,
            layers=[self.layers[layer] for layer in declared.all_layers],
            environment=self.environment,
            releases=self.releases,
            network=self.network if in_vpc else None,
        )

    def bucket(self, setting: str) -> s3.IBucket:
        return self.storage.buckets[setting]

    def storefront_buckets(self) -> list[s3.IBucket]:
        """Each configured storefront's bucket (the stage context's `storefronts`)."""
        return [self.bucket(bucket_setting(name)) for name in self.config.storefront_names]

    def table_arn(self, setting: str) -> str:
        return self.storage.tables[setting].table_arn

    def read_secret(self, function: ServiceFunction, name: str) -> None:
        """GetSecretValue on one secret (what Powertools' get_secret calls; CDK's grant_read would add
        DescribeSecret, which nothing calls)."""
        secret = self.secrets.get(name)
        if secret is not None:
            # A secret's ARN ends in six random characters; an imported name's ARN does not carry them.
            allow(function, ["secretsmanager:GetSecretValue"], [f"{secret.secret_arn}-??????"])

    def opensearch_paths(self, *paths: str) -> list[str]:
        """ARNs of paths of the listings domain (`{index}` stands for the listings index)."""
        index = self.config.listings_index
        return [f"{self.opensearch_domain_arn}/{path.format(index=index)}" for path in paths]


def allow(
    function: ServiceFunction,
    actions: Sequence[str],
    resources: Sequence[str],
    why_wildcard: str | None = None,
    conditions: Mapping[str, Any] | None = None,
) -> None:
    """One explicit statement on the function's role: these actions, on these resources only (and
    under these conditions, if any). A resource with a wildcard (objects under a prefix, documents of
    an index) needs the reason, which acknowledges cdk-nag's finding on this role."""
    function.role.add_to_principal_policy(
        iam.PolicyStatement(actions=list(actions), resources=list(resources), conditions=dict(conditions or {}) or None)
    )
    for resource in resources:
        rendered = nag_resource(function.role, resource)
        if "*" in rendered:
            if not why_wildcard:
                raise ValueError(f"{function.spec.name}: {rendered} has a wildcard; say why")
            acknowledge(function.role, f"AwsSolutions-IAM5[Resource::{rendered}]", why_wildcard)


def event_type(event: str) -> s3.EventType:
    """CDK's enum member for an S3 event name: `s3:ObjectCreated:*` → OBJECT_CREATED."""
    parts = [part for part in event.split(":")[1:] if part != "*"]
    return s3.EventType[re.sub(r"(?<!^)(?=[A-Z])", "_", "".join(parts)).upper()]


def wire_s3_triggers(
    functions: Mapping[str, ServiceFunction], buckets: Mapping[str, s3.IBucket], storefronts: Sequence[str]
) -> None:
    """The S3 notifications functions/triggers.py declares for these functions (the same declaration
    the local stack subscribes from)."""
    for trigger in s3_triggers(storefronts):
        function = functions.get(trigger.function)
        if function is None:
            continue
        filters = [s3.NotificationKeyFilter(prefix=trigger.prefix or None, suffix=trigger.suffix or None)]
        function.alias.add_event_source(
            event_sources.S3EventSourceV2(
                buckets[trigger.bucket_setting],
                events=[event_type(event) for event in trigger.events],
                filters=filters if trigger.prefix or trigger.suffix else None,
            )
        )
        _acknowledge_notifications_handler(function)


def _acknowledge_notifications_handler(scope: Construct) -> None:
    handler = Stack.of(scope).node.try_find_child(NOTIFICATIONS_HANDLER)
    role = handler.node.try_find_child("Role") if handler is not None else None
    finding = "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]"
    if role is not None and not acknowledged(role, finding):
        acknowledge(
            role,
            finding,
            "CDK's BucketNotificationsHandler (it sets the buckets' S3 notifications at deploy time) logs with the "
            "AWS managed basic execution policy.",
        )
