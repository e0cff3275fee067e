"""Buckets and tables, from the shared library's store declarations (listing_vision.resources).

What the platform creates is private, encrypted, TLS-only and named with the stage; what already
lives in the account is referenced by name from the deployment settings and never re-created:
the vision-cache table always, the storefront buckets when context names them. Lifecycle rules
come from the same declarations (`lifecycle_rules`), as the local stack applies them; a bucket
referenced by name keeps its own (README: Deployment).
"""

from __future__ import annotations

import json
from typing import Any

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra.config import DeploymentConfig
from listing_vision.resources import EVENT_BUSES, TABLES, BucketSpec, TableSpec, buckets, lifecycle_rules
from listing_vision.storefronts import bucket_setting


class Storage(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, config: DeploymentConfig) -> None:
        super().__init__(scope, construct_id)
        self.config = config
        retain = config.removal_retains_data
        self.removal = RemovalPolicy.RETAIN if retain else RemovalPolicy.DESTROY
        self.access_logs = s3.Bucket(
            self,
            "AccessLogs",
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            # S3's log delivery writes under a bucket policy (cdk.json's serverAccessLogsUseBucketPolicy), no ACLs.
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            removal_policy=self.removal,
            auto_delete_objects=not retain,
        )
        self.buckets: dict[str, s3.IBucket] = {
            spec.name_setting: self._bucket(spec) for spec in buckets(config.storefront_names)
        }
        self.tables: dict[str, dynamodb.ITable] = {spec.name_setting: self._table(spec) for spec in TABLES}
        self.buses: dict[str, events.EventBus] = {
            spec.name_setting: events.EventBus(
                self,
                _logical_id(spec.name_setting),
                event_bus_name=config.name(spec.name_setting.removesuffix("_bus").replace("_", "-")),
                description=spec.purpose,
            )
            for spec in EVENT_BUSES
        }

    def _bucket(self, spec: BucketSpec) -> s3.IBucket:
        existing = self.config.storefront(spec.storefront).bucket if spec.storefront else None
        if existing:
            return s3.Bucket.from_bucket_name(self, _logical_id(spec.name_setting), existing)
        return s3.Bucket(
            self,
            _logical_id(spec.name_setting),
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            versioned=True,
            server_access_logs_bucket=self.access_logs,
            server_access_logs_prefix=f"{spec.name_setting}/",
            lifecycle_rules=[_cdk_rule(rule) for rule in lifecycle_rules(spec)],
            removal_policy=self.removal,
            auto_delete_objects=not self.config.removal_retains_data,
        )

    def _table(self, spec: TableSpec) -> dynamodb.ITable:
        if spec.existing == "always":
            return dynamodb.Table.from_table_name(
                self, _logical_id(spec.name_setting), getattr(self.config, spec.name_setting)
            )
        table = dynamodb.Table(
            self,
            _logical_id(spec.name_setting),
            table_name=self.config.name(spec.name_setting.removesuffix("_table").replace("_", "-")),
            partition_key=dynamodb.Attribute(name=spec.partition_key, type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            time_to_live_attribute=spec.ttl_attribute,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            removal_policy=self.removal,
        )
        for index in spec.indexes:  # the same declaration the local stack creates them from
            table.add_global_secondary_index(
                index_name=index.name,
                partition_key=dynamodb.Attribute(name=index.partition_key, type=dynamodb.AttributeType.STRING),
                sort_key=dynamodb.Attribute(name=index.sort_key, type=dynamodb.AttributeType.NUMBER),
                projection_type=dynamodb.ProjectionType.INCLUDE if index.include else dynamodb.ProjectionType.ALL,
                non_key_attributes=list(index.include) or None,
            )
        return table

    def environment(self) -> dict[str, str]:
        """Settings variables naming every bucket and table (see listing_vision.config)."""
        keys = {name: bucket_setting(name) for name in self.config.storefront_names}
        # name -> bucket in declaration order (the first is the default); CDK joins the bucket tokens in
        env = {"STOREFRONTS": json.dumps({name: self.buckets[key].bucket_name for name, key in keys.items()})}
        env.update({name.upper(): b.bucket_name for name, b in self.buckets.items() if name not in keys.values()})
        env.update({name.upper(): table.table_name for name, table in self.tables.items()})
        env.update({name.upper(): bus.event_bus_name for name, bus in self.buses.items()})
        return env


def _logical_id(setting: str) -> str:
    return "".join(part.capitalize() for part in setting.split("_"))


def _cdk_rule(rule: dict[str, Any]) -> s3.LifecycleRule:
    """One rule of `lifecycle_rules` (the S3 API's shape) as CDK's."""
    match = rule["Filter"]
    tags = match.get("And", {}).get("Tags", []) + ([match["Tag"]] if "Tag" in match else [])
    prefix = match.get("And", match).get("Prefix") or None
    expiration = rule.get("Expiration", {}).get("Days")
    noncurrent = rule.get("NoncurrentVersionExpiration", {}).get("NoncurrentDays")
    abort = rule.get("AbortIncompleteMultipartUpload", {}).get("DaysAfterInitiation")
    return s3.LifecycleRule(
        id=rule["ID"],
        prefix=prefix,
        tag_filters={tag["Key"]: tag["Value"] for tag in tags} or None,
        expiration=Duration.days(expiration) if expiration else None,
        noncurrent_version_expiration=Duration.days(noncurrent) if noncurrent else None,
        abort_incomplete_multipart_upload_after=Duration.days(abort) if abort else None,
    )
