"""DynamoDB items as plain Python values, through boto3's TypeSerializer and TypeDeserializer.

The low-level client (cached and thread-safe, unlike the Table resource) speaks typed maps
(`{"S": ...}`); these helpers convert both ways. boto3's serializer refuses floats, since DynamoDB
numbers are decimal, so floats go in as Decimal (through their shortest repr) and numbers come
back as int or float. Attributes whose value is None are left out of an item.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import Binary, TypeDeserializer, TypeSerializer

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def _to_dynamodb(value: Any) -> Any:
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, Mapping):
        return {key: _to_dynamodb(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_to_dynamodb(item) for item in value]
    return value


def _from_dynamodb(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, Binary):
        return bytes(value.value)
    if isinstance(value, dict):
        return {key: _from_dynamodb(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_from_dynamodb(item) for item in value]
    if isinstance(value, set):
        return {_from_dynamodb(item) for item in value}
    return value


def serialize(value: Any) -> dict[str, Any]:
    """One value as a typed attribute (`{"S": "x"}`, `{"N": "1.5"}`, `{"M": {...}}`, ...)."""
    return _serializer.serialize(_to_dynamodb(value))  # type: ignore[no-any-return]


def to_item(values: Mapping[str, Any]) -> dict[str, Any]:
    """A plain mapping as a DynamoDB item (None values left out)."""
    return {name: serialize(value) for name, value in values.items() if value is not None}


def from_item(item: Mapping[str, Any]) -> dict[str, Any]:
    """A DynamoDB item as plain Python values."""
    return {name: _from_dynamodb(_deserializer.deserialize(value)) for name, value in item.items()}


def expression_values(**values: Any) -> dict[str, Any]:
    """`ExpressionAttributeValues` from keyword arguments: `expression_values(now=1.5)` → `{":now": ...}`."""
    return {f":{name}": serialize(value) for name, value in values.items()}


def conditional_check_failed(error: Exception) -> bool:
    """Whether a DynamoDB write was refused by its ConditionExpression (someone else got there first)."""
    response = getattr(error, "response", None) or {}
    return bool(response.get("Error", {}).get("Code") == "ConditionalCheckFailedException")
