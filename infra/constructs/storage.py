"""Buckets and tables, from the shared library's store specs (listing_vision.resources)."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_s3 as s3
from constructs import Construct

from listing_vision.resources import BUCKETS, TABLES


class Storage(Construct):
    """Private, encrypted, TLS-only buckets and on-demand tables with point-in-time recovery."""

    def __init__(self, scope: Construct, construct_id: str, *, removal_policy: RemovalPolicy) -> None:
        super().__init__(scope, construct_id)
        self.access_logs = s3.Bucket(
            self,
            "AccessLogs",
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_PREFERRED,
            removal_policy=removal_policy,
        )
        self.buckets: dict[str, s3.Bucket] = {}
        for spec in BUCKETS:
            self.buckets[spec.name_setting] = s3.Bucket(
                self,
                _logical_id(spec.name_setting),
                block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
                encryption=s3.BucketEncryption.S3_MANAGED,
                enforce_ssl=True,
                versioned=True,
                server_access_logs_bucket=self.access_logs,
                server_access_logs_prefix=f"{spec.name_setting}/",
                removal_policy=removal_policy,
            )
        self.tables: dict[str, dynamodb.Table] = {}
        for table in TABLES:
            self.tables[table.name_setting] = dynamodb.Table(
                self,
                _logical_id(table.name_setting),
                partition_key=dynamodb.Attribute(name=table.partition_key, type=dynamodb.AttributeType.STRING),
                billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
                time_to_live_attribute=table.ttl_attribute,
                point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                    point_in_time_recovery_enabled=True
                ),
                removal_policy=removal_policy,
            )

    def environment(self) -> dict[str, str]:
        """Settings variables naming every bucket and table (see listing_vision.config)."""
        env = {name.upper(): bucket.bucket_name for name, bucket in self.buckets.items()}
        env.update({name.upper(): table.table_name for name, table in self.tables.items()})
        return env


def _logical_id(setting: str) -> str:
    return "".join(part.capitalize() for part in setting.split("_"))
