"""A presigned upload form is one-shot: its upload id is claimed once, by the photo it catalogues.

A presigned POST pins a key, not a single use: until it expires, the same form can post another file
to the same `incoming/<upload id>` key, on AWS as locally. So that key is only an inbox: the indexer
copies a valid photo to its content key under `catalogue/` and indexes that copy (`uploads.py`),
and the upload id is recorded here, in the catalogue table (item `upload#<website>#<upload id>`),
with a conditional write, so a second post of the form can never replace or add a catalogue photo:
the indexer finds the id settled and records that post as `form_reused`.

Only a catalogued photo settles an id. An upload found invalid (bad bytes, a type other than the one
declared) or a duplicate writes nothing here (bad input writes nothing anywhere; its outcome is on
its inbox object's tags), so its uploader may post a corrected file with the same form.

While a photo is being catalogued its id is held by a lease (`leases.py`, as content claims are), so
two posts of one form indexed at the same moment catalogue one photo; an indexer that died holding it
is taken over once the lease has passed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from listing_vision import aws
from listing_vision.config import get_settings
from listing_vision.dynamodb_items import conditional_check_failed, expression_values, from_item, to_item
from listing_vision.jewelry.leases import Leases

CATALOGUED = "catalogued"
UPLOAD_PREFIX = "upload#"  # never a storefront's content id (`<website>#<sha256>`): the reconciler's scan skips it


@dataclass(frozen=True)
class UploadRecord:
    upload_id: str
    status: str
    owner: str
    sha256: str
    path: str | None = None
    lease_until: float = 0.0
    reused_at: int | None = None

    @property
    def catalogued(self) -> bool:
        return self.status == CATALOGUED


def upload_item_id(website: str, upload_id: str) -> str:
    return f"{UPLOAD_PREFIX}{website}#{upload_id}"


class UploadClaims:
    def __init__(self, table: str | None = None, lease_s: int | None = None, clock: Callable[[], float] = time.time):
        """`clock`: now, for every lease taken or judged here and by whoever judges this table's leases
        (the reconciler, a duplicate check waiting on a claim)."""
        settings = get_settings()
        self.table = table or settings.catalogue_table
        self.lease_s = lease_s or settings.claim_lease_s
        self.clock = clock
        self.dynamodb = aws.client("dynamodb")
        self.leases = Leases(self.dynamodb, self.table, self.lease_s, clock)

    def _key(self, website: str, upload_id: str) -> dict[str, Any]:
        return to_item({"content_id": upload_item_id(website, upload_id)})

    def get(self, website: str, upload_id: str) -> UploadRecord | None:
        item = self.dynamodb.get_item(TableName=self.table, Key=self._key(website, upload_id), ConsistentRead=True).get(
            "Item"
        )
        if not item:
            return None
        found = from_item(item)
        return UploadRecord(
            upload_id=upload_id,
            status=found["status"],
            owner=found.get("owner", ""),
            sha256=found.get("sha256", ""),
            path=found.get("path"),
            lease_until=float(found.get("lease_until", 0.0)),
            reused_at=found.get("reused_at"),
        )

    def claim(self, website: str, upload_id: str, owner: str, sha256: str) -> bool:
        """Hold the upload id while its photo is catalogued; False when it is settled or held (within
        its lease) by another indexing run."""
        return self.leases.take(upload_item_id(website, upload_id), owner, {"sha256": sha256})

    def settle(self, website: str, upload_id: str, owner: str, path: str) -> None:
        """The id's photo is catalogued at `path`: the id is spent for good (no TTL)."""
        self.dynamodb.update_item(
            TableName=self.table,
            Key=self._key(website, upload_id),
            UpdateExpression="SET #s = :catalogued, #p = :path, settled_at = :now REMOVE lease_until, expires_at",
            ConditionExpression="#o = :owner",
            ExpressionAttributeNames={"#s": "status", "#p": "path", "#o": "owner"},
            ExpressionAttributeValues=expression_values(
                catalogued=CATALOGUED, path=path, owner=owner, now=int(self.clock())
            ),
        )

    def release(self, website: str, upload_id: str, owner: str) -> None:
        """Give the id back uncatalogued (its photo was a duplicate, or indexing failed): the form may be
        used again."""
        self.leases.give_back(upload_item_id(website, upload_id), owner)

    def note_reuse(self, website: str, upload_id: str) -> None:
        """Record that the settled form was posted again (the post itself changed no catalogue photo)."""
        try:
            self.dynamodb.update_item(
                TableName=self.table,
                Key=self._key(website, upload_id),
                UpdateExpression="SET reused_at = :now",
                ConditionExpression="#s = :catalogued",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues=expression_values(catalogued=CATALOGUED, now=int(self.clock())),
            )
        except ClientError as error:
            if not conditional_check_failed(error):
                raise
