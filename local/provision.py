"""Creates on the emulators what CloudFormation creates on AWS (buckets, tables, secrets, functions),
idempotently (safe on every start). The stores CloudFormation does not create (the Milvus
collection, the listings index) come only from the deploy's provisioning,
`listing_vision.provisioning.provision`, which the local stack calls after this unless it is
started with --skip-provisioning."""

from __future__ import annotations

import io
import json
import zipfile
from contextlib import suppress
from typing import Any

from botocore.exceptions import ClientError

from functions.specs import FUNCTIONS, RELEASE_ALIAS
from functions.triggers import EVENT_TRIGGERS, event_pattern, s3_triggers
from listing_vision import aws
from listing_vision.config import Settings
from listing_vision.resources import EVENT_BUSES, TABLES, TableSpec, bucket_name, buckets, lifecycle_rules


def bucket_names(settings: Settings) -> list[str]:
    return [bucket_name(settings, spec) for spec in buckets(settings.storefront_names)]


def table_names(settings: Settings) -> list[str]:
    return [getattr(settings, spec.name_setting) for spec in TABLES]


def provision(settings: Settings) -> dict[str, Any]:
    """Buckets (private) and tables, as CloudFormation makes them; returns what exists."""
    s3 = aws.client("s3")
    for spec in buckets(settings.storefront_names):
        name = bucket_name(settings, spec)
        try:
            s3.create_bucket(Bucket=name)
        except ClientError as error:
            if error.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise
        s3.put_public_access_block(
            Bucket=name,
            PublicAccessBlockConfiguration={
                "BlockPublicAcls": True,
                "IgnorePublicAcls": True,
                "BlockPublicPolicy": True,
                "RestrictPublicBuckets": True,
            },
        )
        # The same rules as on AWS (moto keeps them; nothing expires locally). Versioning stays off
        # here: old versions would only grow the emulator's memory.
        s3.put_bucket_lifecycle_configuration(Bucket=name, LifecycleConfiguration={"Rules": lifecycle_rules(spec)})
    dynamodb = aws.client("dynamodb")
    existing = set(dynamodb.list_tables()["TableNames"])
    for table in TABLES:
        name = getattr(settings, table.name_setting)
        if name in existing:
            _add_missing_indexes(dynamodb, name, table)
            continue
        dynamodb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST", **table_definition(table))
        if table.ttl_attribute:
            dynamodb.update_time_to_live(
                TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": table.ttl_attribute}
            )
    events = aws.client("events")
    for bus in EVENT_BUSES:
        try:
            events.create_event_bus(Name=getattr(settings, bus.name_setting))
        except ClientError as error:
            if error.response["Error"]["Code"] != "ResourceAlreadyExistsException":
                raise
    return {"buckets": bucket_names(settings), "tables": table_names(settings)}


def table_definition(table: TableSpec) -> dict[str, Any]:
    """The key schema, key attributes and indexes of a CreateTable request for the declared table."""
    return {
        "KeySchema": [{"AttributeName": table.partition_key, "KeyType": "HASH"}],
        "AttributeDefinitions": _attributes(table, table.indexes),
        **({"GlobalSecondaryIndexes": [_index(index) for index in table.indexes]} if table.indexes else {}),
    }


def _attributes(table: TableSpec, indexes: Any) -> list[dict[str, str]]:
    """The key attributes of the table and of `indexes` (the index sort keys are numbers)."""
    types = {table.partition_key: "S"}
    for index in indexes:
        types.setdefault(index.partition_key, "S")
        types.setdefault(index.sort_key, "N")
    return [{"AttributeName": name, "AttributeType": kind} for name, kind in types.items()]


def _index(index: Any) -> dict[str, Any]:
    return {
        "IndexName": index.name,
        "KeySchema": [
            {"AttributeName": index.partition_key, "KeyType": "HASH"},
            {"AttributeName": index.sort_key, "KeyType": "RANGE"},
        ],
        "Projection": (
            {"ProjectionType": "INCLUDE", "NonKeyAttributes": list(index.include)}
            if index.include
            else {"ProjectionType": "ALL"}
        ),
    }


def _add_missing_indexes(dynamodb: Any, name: str, table: TableSpec) -> None:
    """A table kept from an earlier run (a state snapshot) gets the indexes declared since."""
    held = {
        index["IndexName"]
        for index in dynamodb.describe_table(TableName=name)["Table"].get("GlobalSecondaryIndexes", [])
    }
    missing = [index for index in table.indexes if index.name not in held]
    if missing:
        dynamodb.update_table(
            TableName=name,
            AttributeDefinitions=_attributes(table, missing),
            GlobalSecondaryIndexUpdates=[{"Create": _index(index)} for index in missing],
        )


# Secrets the functions read from Secrets Manager on AWS, made locally with stand-in values:
# setting naming the secret -> (secret name, value). Milvus Lite ignores the token.
LOCAL_SECRETS: dict[str, tuple[str, str]] = {"milvus_token_secret": ("milvus-token", "root:Milvus")}


def create_local_secrets(settings: Settings) -> None:
    secrets = aws.client("secretsmanager")
    for name, value in LOCAL_SECRETS.values():
        try:
            secrets.create_secret(Name=name, SecretString=value)
        except ClientError as error:
            if error.response["Error"]["Code"] != "ResourceExistsException":
                raise


def register_functions(settings: Settings) -> None:
    """Register every declared function with moto's Lambda, create the failure queue of each one
    invoked asynchronously, and subscribe functions to S3 events exactly as functions/triggers.py
    declares (same buckets, events, prefix and suffix filters), each to the function's `live` alias,
    as CDK does on AWS. Invocations run
    the in-process handlers (local/lambda_runtime.py); the code registered here is a placeholder
    moto requires."""
    iam = aws.client("iam")
    role_name = "local-lambda"
    try:
        role_arn = iam.get_role(RoleName=role_name)["Role"]["Arn"]
    except ClientError:
        role_arn = iam.create_role(
            RoleName=role_name,
            AssumeRolePolicyDocument='{"Version":"2012-10-17","Statement":[{"Effect":"Allow",'
            '"Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}',
        )["Role"]["Arn"]
    lambda_client = aws.client("lambda")
    sqs = aws.client("sqs")
    placeholder = _placeholder_zip()
    # Listed once: asking for each function (and its alias) first costs a refused call apiece at every start
    existing = {
        function["FunctionName"]
        for page in lambda_client.get_paginator("list_functions").paginate()
        for function in page["Functions"]
    }
    arns = {}
    for spec in FUNCTIONS:
        if spec.name not in existing:
            lambda_client.create_function(
                FunctionName=spec.name,
                Runtime="python3.12",
                Role=role_arn,
                Handler=f"{spec.module}.lambda_handler",
                Code={"ZipFile": placeholder},
                Timeout=spec.timeout_s,
                MemorySize=spec.memory_mb,
            )
        arns[spec.name] = _live_alias(lambda_client, spec.name, created=spec.name not in existing)
        if spec.failure_queue:
            sqs.create_queue(QueueName=spec.failure_queue)
    configurations: dict[str, list[dict[str, Any]]] = {}
    by_setting = {spec.name_setting: bucket_name(settings, spec) for spec in buckets(settings.storefront_names)}
    for trigger in s3_triggers(settings.storefront_names):
        rules = [
            {"Name": name, "Value": value} for name, value in (("prefix", trigger.prefix), ("suffix", trigger.suffix))
        ]
        configuration: dict[str, Any] = {"LambdaFunctionArn": arns[trigger.function], "Events": list(trigger.events)}
        if any(rule["Value"] for rule in rules):
            configuration["Filter"] = {"Key": {"FilterRules": [rule for rule in rules if rule["Value"]]}}
        configurations.setdefault(by_setting[trigger.bucket_setting], []).append(configuration)
    s3 = aws.client("s3")
    for bucket, functions in configurations.items():
        s3.put_bucket_notification_configuration(
            Bucket=bucket, NotificationConfiguration={"LambdaFunctionConfigurations": functions}
        )
    put_event_rules(settings, arns)


def put_event_rules(settings: Settings, aliases: dict[str, str]) -> None:
    """The EventBridge rules functions/triggers.py declares, each targeting its function's `live`
    alias, as CDK makes them (delivered to the local runtime by local/event_rules.py)."""
    events = aws.client("events")
    for trigger in EVENT_TRIGGERS:
        bus = getattr(settings, trigger.bus_setting)
        events.put_rule(Name=trigger.rule, EventBusName=bus, EventPattern=json.dumps(event_pattern(trigger)))
        target = {
            "Id": trigger.function,
            "Arn": aliases[trigger.function],
            "RetryPolicy": {
                "MaximumRetryAttempts": trigger.retry_attempts,
                "MaximumEventAgeInSeconds": trigger.max_event_age_s,
            },
        }
        events.put_targets(Rule=trigger.rule, EventBusName=bus, Targets=[target])


def _live_alias(lambda_client: Any, name: str, created: bool) -> str:
    """The function's `live` alias on a published version, as a deploy leaves it; its ARN is what
    the S3 notifications name (on AWS too: infra/constructs/releases.py). A function `created` just now
    has none yet."""
    if not created:
        with suppress(ClientError):
            return str(lambda_client.get_alias(FunctionName=name, Name=RELEASE_ALIAS)["AliasArn"])
    version = lambda_client.publish_version(FunctionName=name)["Version"]
    alias = lambda_client.create_alias(FunctionName=name, Name=RELEASE_ALIAS, FunctionVersion=version)
    return str(alias["AliasArn"])


def failure_queues() -> list[str]:
    return [spec.failure_queue for spec in FUNCTIONS if spec.failure_queue]


def _placeholder_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("handler.py", "# the local stack runs functions/<name>/handler.py in process\n")
    return buffer.getvalue()
