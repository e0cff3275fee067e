"""Creates every store the platform needs on the emulators, idempotently (safe on every start)."""

from __future__ import annotations

import io
import zipfile
from typing import Any

from botocore.exceptions import ClientError

from functions.routes import FUNCTIONS
from listing_vision import aws
from listing_vision.config import Settings
from listing_vision.jewelry.vector_index import ensure_collection, milvus_client
from listing_vision.realestate.listings_index import ensure_index, opensearch_client
from listing_vision.resources import BUCKETS, TABLES


def bucket_names(settings: Settings) -> list[str]:
    return [getattr(settings, spec.name_setting) for spec in BUCKETS]


def table_names(settings: Settings) -> list[str]:
    return [getattr(settings, spec.name_setting) for spec in TABLES]


def provision(settings: Settings) -> dict[str, Any]:
    """Buckets (private), tables, the listings index and the Milvus collection; returns what exists."""
    s3 = aws.client("s3")
    for name in bucket_names(settings):
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
    dynamodb = aws.client("dynamodb")
    existing = set(dynamodb.list_tables()["TableNames"])
    for spec in TABLES:
        name = getattr(settings, spec.name_setting)
        if name in existing:
            continue
        dynamodb.create_table(
            TableName=name,
            KeySchema=[{"AttributeName": spec.partition_key, "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": spec.partition_key, "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        if spec.ttl_attribute:
            dynamodb.update_time_to_live(
                TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": spec.ttl_attribute}
            )
    ensure_index(opensearch_client(), settings.listings_index)
    ensure_collection(milvus_client(), settings.milvus_collection, settings.embedding_dim)
    return {
        "buckets": bucket_names(settings),
        "tables": table_names(settings),
        "index": settings.listings_index,
        "collection": settings.milvus_collection,
    }


def register_functions(settings: Settings) -> None:
    """Register the functions with moto's Lambda and subscribe the dedupe function to the storefront
    buckets' ObjectCreated events, as CDK does on AWS. Invocations run the in-process handlers
    (local/lambda_runtime.py); the code registered here is a placeholder moto requires."""
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
    placeholder = _placeholder_zip()
    arns = {}
    for name in FUNCTIONS:
        try:
            arns[name] = lambda_client.get_function(FunctionName=name)["Configuration"]["FunctionArn"]
        except ClientError:
            arns[name] = lambda_client.create_function(
                FunctionName=name,
                Runtime="python3.12",
                Role=role_arn,
                Handler="handler.lambda_handler",
                Code={"ZipFile": placeholder},
            )["FunctionArn"]
    s3 = aws.client("s3")
    s3.put_bucket_notification_configuration(
        Bucket=settings.uploads_bucket,
        NotificationConfiguration={
            "LambdaFunctionConfigurations": [
                {"LambdaFunctionArn": arns["regenerate"], "Events": ["s3:ObjectCreated:*"]}
            ]
        },
    )
    for bucket in (settings.alya_bucket, settings.blysk_bucket):
        s3.put_bucket_notification_configuration(
            Bucket=bucket,
            NotificationConfiguration={
                "LambdaFunctionConfigurations": [
                    {"LambdaFunctionArn": arns["dedupe"], "Events": ["s3:ObjectCreated:*"]}
                ]
            },
        )


def _placeholder_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("handler.py", "# the local stack runs functions/<name>/handler.py in process\n")
    return buffer.getvalue()
