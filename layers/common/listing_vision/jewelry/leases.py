"""Catalogue-table items held by one run at a time while its work is in progress: leases.

Content claims (`claims.py`) and presigned upload ids (`upload_claims.py`) are both taken this way. A
run takes an item with one conditional put, which succeeds only when nobody holds it, when its holder's
lease has run out (the holder died), or when the item is in a state its owner names as free again. It
gives the item back with a conditional delete that removes only its own item, still pending, so a run
whose lease was taken over can never delete its successor's. The TTL (`expires_at`) clears an item
whose holder died for good; completing the work removes it and the lease.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from listing_vision.dynamodb_items import conditional_check_failed, expression_values, to_item

PENDING = "pending"
ABANDONED_KEPT_S = 86_400  # how long an item whose holder died stays readable after its lease ran out
KEY = "content_id"  # the catalogue table's partition key


class Leases:
    def __init__(self, dynamodb: Any, table: str, lease_s: int, clock: Callable[[], float] = time.time):
        self.dynamodb = dynamodb
        self.table = table
        self.lease_s = lease_s
        self.clock = clock  # the one "now" a lease is taken and judged by (its holder's, its taker's)

    def take(
        self,
        item_id: str,
        owner: str,
        fields: dict[str, Any],
        free_statuses: tuple[str, ...] = (),
        leased_statuses: tuple[str, ...] = (),
    ) -> bool:
        """Hold `item_id` for `owner` (with `fields` stored on it); False when another live lease holds it
        or it is settled in a status not in `free_statuses`. `leased_statuses`: other statuses held under
        a lease (as pending is), free once that lease has run out."""
        now = self.clock()
        item = {
            **fields,
            KEY: item_id,
            "status": PENDING,
            "owner": owner,
            "lease_until": round(now + self.lease_s, 3),
            "expires_at": int(now + self.lease_s + ABANDONED_KEPT_S),
        }
        free = {f"free{index}": status for index, status in enumerate(free_statuses)}
        leased = {f"leased{index}": status for index, status in enumerate(leased_statuses)}
        held = ", ".join(f":{name}" for name in ("pending", *leased))
        condition = f"attribute_not_exists({KEY}) OR (#s IN ({held}) AND lease_until < :now)"
        condition += "".join(f" OR #s = :{name}" for name in free)
        try:
            self.dynamodb.put_item(
                TableName=self.table,
                Item=to_item(item),
                ConditionExpression=condition,
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues=expression_values(pending=PENDING, now=round(now, 3), **free, **leased),
            )
        except ClientError as error:
            if conditional_check_failed(error):
                return False
            raise
        return True

    def give_back(self, item_id: str, owner: str) -> None:
        """Delete our item if it is still ours and pending (a no-op once completed or taken over)."""
        try:
            self.dynamodb.delete_item(
                TableName=self.table,
                Key=to_item({KEY: item_id}),
                ConditionExpression="#o = :owner AND #s = :pending",
                ExpressionAttributeNames={"#o": "owner", "#s": "status"},
                ExpressionAttributeValues=expression_values(owner=owner, pending=PENDING),
            )
        except ClientError as error:
            if not conditional_check_failed(error):
                raise
