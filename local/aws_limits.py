"""Limits AWS enforces and moto does not, enforced on the local stack as AWS enforces them.

- S3 user metadata is at most 2 KB (the UTF-8 bytes of every `x-amz-meta-*` name and value):
  AWS answers 400 `MetadataTooLarge`. An object key is at most 1,024 bytes: `KeyTooLongError`.
- A DynamoDB partition key value is at most 2,048 bytes (a sort key 1,024): AWS answers 400
  `ValidationException` on any read or write naming such a key.

moto accepts all of these, so code that would fail with a 500 on AWS passes every local test. A
botocore `before-parameter-build` hook, registered for every session created after `install()`
(the local stack's and the tests' clients alike), raises the `ClientError` AWS would answer with.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import botocore.handlers
from botocore.exceptions import ClientError

S3_METADATA_MAX_BYTES = 2 * 1024
S3_KEY_MAX_BYTES = 1024
DYNAMODB_PARTITION_KEY_MAX_BYTES = 2048
S3_METADATA_OPERATIONS = ("PutObject", "CopyObject", "CreateMultipartUpload")
S3_KEY_OPERATIONS = ("PutObject", "CopyObject", "CreateMultipartUpload", "GetObject", "HeadObject")


def _error(code: str, message: str, operation: str) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": 400}}, operation
    )


def metadata_bytes(metadata: dict[str, str]) -> int:
    return sum(len(name.encode()) + len(str(value).encode()) for name, value in metadata.items())


def check_s3(operation: str, params: dict[str, Any]) -> None:
    if operation in S3_METADATA_OPERATIONS and metadata_bytes(params.get("Metadata") or {}) > S3_METADATA_MAX_BYTES:
        raise _error("MetadataTooLarge", "Your metadata headers exceed the maximum allowed metadata size.", operation)
    if operation in S3_KEY_OPERATIONS and len(str(params.get("Key", "")).encode()) > S3_KEY_MAX_BYTES:
        raise _error("KeyTooLongError", "Your key is too long", operation)


def _attribute_bytes(value: dict[str, Any]) -> int:
    if "S" in value:
        return len(str(value["S"]).encode())
    if "B" in value:
        return len(value["B"]) if isinstance(value["B"], bytes | bytearray) else len(str(value["B"]).encode())
    if "N" in value:
        return len(str(value["N"]))
    return 0


def _keys(operation: str, params: dict[str, Any], partition_keys: dict[str, str]) -> Iterator[dict[str, Any]]:
    """Every key a DynamoDB request names, as attribute maps (items reduced to their partition key)."""

    def item_key(table: str, item: dict[str, Any]) -> dict[str, Any]:
        name = partition_keys.get(table)
        return {name: item[name]} if name and name in item else {}

    table = params.get("TableName", "")
    if "Key" in params:
        yield params["Key"]
    if "Item" in params:
        yield item_key(table, params["Item"])
    for name, request in (params.get("RequestItems") or {}).items():
        if isinstance(request, dict):  # BatchGetItem
            yield from request.get("Keys", [])
        else:  # BatchWriteItem
            for write in request:
                if "PutRequest" in write:
                    yield item_key(name, write["PutRequest"]["Item"])
                if "DeleteRequest" in write:
                    yield write["DeleteRequest"]["Key"]
    for entry in params.get("TransactItems") or []:
        for kind in entry.values():
            if "Key" in kind:
                yield kind["Key"]
            if "Item" in kind:
                yield item_key(kind.get("TableName", ""), kind["Item"])


def check_dynamodb(operation: str, params: dict[str, Any], partition_keys: dict[str, str]) -> None:
    for key in _keys(operation, params, partition_keys):
        for value in key.values():
            if isinstance(value, dict) and _attribute_bytes(value) > DYNAMODB_PARTITION_KEY_MAX_BYTES:
                raise _error(
                    "ValidationException",
                    "One or more parameter values were invalid: Size of hashkey has exceeded the maximum size "
                    f"limit of {DYNAMODB_PARTITION_KEY_MAX_BYTES} bytes",
                    operation,
                )


class AwsLimits:
    """Install once the stack's tables are known; `partition_keys` maps table name → partition key."""

    def __init__(self, partition_keys: dict[str, str]):
        self.partition_keys = partition_keys
        self._handler = ("before-parameter-build", self._check)

    def install(self) -> None:
        if self._handler not in botocore.handlers.BUILTIN_HANDLERS:
            botocore.handlers.BUILTIN_HANDLERS.append(self._handler)

    def uninstall(self) -> None:
        if self._handler in botocore.handlers.BUILTIN_HANDLERS:
            botocore.handlers.BUILTIN_HANDLERS.remove(self._handler)

    def _check(self, params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        service = model.service_model.endpoint_prefix
        if service == "s3" and not context.get("is_presign_request"):
            check_s3(model.name, params)
        elif service == "dynamodb":
            check_dynamodb(model.name, params, self.partition_keys)
