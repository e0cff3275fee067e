"""Private stores for one test: a listings index and vision-cache table filled with demo data, and
an empty phrase cache (and split records)."""

from __future__ import annotations

import uuid

from listing_vision import aws
from listing_vision.resources import TABLES
from local import demo_listings as demo


def demo_stores(prefix: str, listings: int, seed: int) -> tuple[str, str]:
    """(index, table): fresh names, the table created with the cache's key, `listings` demo listings loaded."""
    suffix = uuid.uuid4().hex[:8]
    index, table = f"{prefix}-{suffix}", f"{prefix}-cache-{suffix}"
    aws.client("dynamodb").create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "image_url", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "image_url", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    demo.load(listings, seed=seed, index=index, table=table)
    return index, table


def phrase_table(prefix: str = "phrases") -> str:
    """A fresh, empty phrase cache table, keyed as the declared one."""
    return declared_table("feature_phrases_table", prefix)


def split_records_table(prefix: str = "splits") -> str:
    """A fresh, empty split records table, keyed as the declared one."""
    return declared_table("listing_splits_table", prefix)


def declared_table(setting: str, prefix: str) -> str:
    spec = next(spec for spec in TABLES if spec.name_setting == setting)
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    aws.client("dynamodb").create_table(
        TableName=name,
        KeySchema=[{"AttributeName": spec.partition_key, "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": spec.partition_key, "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return name
