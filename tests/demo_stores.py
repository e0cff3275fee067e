"""A private listings index and vision-cache table filled with demo data, for one test."""

from __future__ import annotations

import uuid

from listing_vision import aws
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
