"""One record per stored image content, per storefront: the registry that makes storing race-free.

Checking for a duplicate and then inserting lets two identical uploads arriving together both
pass the check and both be stored. Here an upload first claims its content id
(`<website>#<sha256>`) with a conditional write; exactly one request wins and stores, the others
wait for its record and answer with the stored original. A claim is a lease (`leases.py`): if its
owner dies, another request may take it over once `claim_lease_s` has passed.

Two *different* files that are near-duplicates of each other hold different claims, so the
registry also orders them (`dedupe.py` has the rule): a claim that has inserted its vector is
*staged* with a sequence number taken from one atomic counter after the insert (`order`), and a
claim that lost to an earlier near-duplicate is *yielded* (kept a day, then expired by TTL, so a
request that saw its vector can still tell it was rolled back; the content can be claimed again).

A stored record also keeps the image's duplicate-verification features (`verification_features`,
about 25 KB), so a duplicate check reads all its candidates' features in one BatchGetItem.

A stored record, and only a stored one, carries `listed_website` (its storefront): the key of the
table's `listed-created` index that GET /images queries (`image_listing.py`). Every write that makes a
record stored sets it (`complete`, `cancel_delete`, `undo_delete`), `begin_delete` removes it, and a
claim taken over is a new item without it. A record stored before the index existed lacks it until
`list_again` adds it (the deploy's provisioning, whose Scan `unlisted` resumes where it stopped and,
once finished, is never run again; and the reconciler).

A stored record being deleted (`catalogue.py`) is first marked *deleting* under a lease: it no longer
answers as a duplicate, and it still holds the content, so the same bytes cannot be stored again
until the delete has removed the object and the vector and then the record (or its lease has run out:
its deleter died, and a new upload takes the content over, rewriting the same keys).
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from listing_vision import aws
from listing_vision.config import get_settings
from listing_vision.dynamodb_batch import batch_get
from listing_vision.dynamodb_items import conditional_check_failed, expression_values, from_item, to_item
from listing_vision.jewelry.image_ids import SHA256_HEX
from listing_vision.jewelry.leases import PENDING, Leases

STORED = "stored"
YIELDED = "yielded"  # lost to an earlier near-duplicate (or failed) after inserting: rolled back
DELETING = "deleting"  # a stored image being deleted (catalogue.py): no longer a duplicate of anything
SEQUENCE_ID = "_sequence"  # the counter item staging draws from (not a content id: those hold a '#')
BACKFILL_ID = "_listing_backfill"  # how far the deploy's listing of old records got (`listing_backfill`)
YIELDED_KEPT_S = 86_400
FEATURES = "verification_features"
LISTED = "listed_website"  # the storefront, on stored records only: resources.IMAGES_BY_WEBSITE's partition key
_CONTENT_ID = re.compile(rf"^([^#]+)#({SHA256_HEX})$")


@dataclass(frozen=True)
class ContentRecord:
    content_id: str
    status: str
    owner: str
    path: str | None = None
    vector_id: int | None = None
    image_name: str | None = None
    lease_until: float = 0.0
    order: int | None = None  # set when staged: the sequence number taken after its vector was inserted
    created_at: int | None = None
    listed: bool = False  # carries LISTED: in the listing's index

    @property
    def stored(self) -> bool:
        return self.status == STORED

    @property
    def deleting(self) -> bool:
        return self.status == DELETING

    @property
    def yielded(self) -> bool:
        return self.status == YIELDED


def content_id(website: str, sha256: str) -> str:
    return f"{website}#{sha256}"


def new_owner() -> str:
    return uuid.uuid4().hex


class ContentClaims:
    def __init__(self, table: str | None = None, lease_s: int | None = None, clock: Callable[[], float] = time.time):
        """`clock`: now, for every lease taken or judged here and by whoever judges this table's leases
        (the reconciler, a duplicate check waiting on a claim)."""
        settings = get_settings()
        self.table = table or settings.catalogue_table
        self.lease_s = lease_s or settings.claim_lease_s
        self.clock = clock
        self.dynamodb = aws.client("dynamodb")
        self.leases = Leases(self.dynamodb, self.table, self.lease_s, clock)

    def _key(self, website: str, sha256: str) -> dict[str, Any]:
        return to_item({"content_id": content_id(website, sha256)})

    def get(self, website: str, sha256: str) -> ContentRecord | None:
        item = self.dynamodb.get_item(TableName=self.table, Key=self._key(website, sha256), ConsistentRead=True).get(
            "Item"
        )
        return record_from_item(from_item(item)) if item else None

    def try_claim(self, website: str, sha256: str, owner: str) -> bool:
        """Claim the content for storing; False when another live claim or a stored record holds it (a
        yielded one is free again, and so is one being deleted whose deleter died: its lease has run out)."""
        return self.leases.take(
            content_id(website, sha256), owner, {}, free_statuses=(YIELDED,), leased_statuses=(DELETING,)
        )

    def next_order(self) -> int:
        """The next number of the one sequence (an atomic counter): taken after a vector is inserted, so
        a claim that did not see another's vector in its re-search has the lower number."""
        response = self.dynamodb.update_item(
            TableName=self.table,
            Key=to_item({"content_id": SEQUENCE_ID}),
            UpdateExpression="ADD #n :one",
            ExpressionAttributeNames={"#n": "next"},
            ExpressionAttributeValues=expression_values(one=1),
            ReturnValues="UPDATED_NEW",
        )
        return int(response["Attributes"]["next"]["N"])

    def stage(
        self,
        website: str,
        sha256: str,
        owner: str,
        path: str,
        vector_id: int,
        order: int,
        features: bytes | None = None,
    ) -> None:
        """Our claim, still pending, with its vector inserted: its place in the sequence and what a
        concurrent check needs to verify against it (its features)."""
        values: dict[str, Any] = {"path": path, "vector": vector_id, "order": order, "owner": owner}
        values["pending"] = PENDING
        update = "SET #p = :path, vector_id = :vector, #order = :order"
        if features is not None:
            update += f", {FEATURES} = :features"
            values["features"] = features
        self.dynamodb.update_item(
            TableName=self.table,
            Key=self._key(website, sha256),
            UpdateExpression=update,
            ConditionExpression="#o = :owner AND #s = :pending",
            ExpressionAttributeNames={"#p": "path", "#o": "owner", "#s": "status", "#order": "order"},
            ExpressionAttributeValues=expression_values(**values),
        )

    def yield_claim(self, website: str, sha256: str, owner: str) -> None:
        """Our pending claim gives way (its vector and object are being rolled back); expires in a day."""
        try:
            self.dynamodb.update_item(
                TableName=self.table,
                Key=self._key(website, sha256),
                UpdateExpression=f"SET #s = :yielded, expires_at = :expires REMOVE {FEATURES}",
                ConditionExpression="#o = :owner AND #s = :pending",
                ExpressionAttributeNames={"#o": "owner", "#s": "status"},
                ExpressionAttributeValues=expression_values(
                    owner=owner, pending=PENDING, yielded=YIELDED, expires=int(self.clock()) + YIELDED_KEPT_S
                ),
            )
        except ClientError as error:
            if not conditional_check_failed(error):
                raise

    def complete(
        self,
        website: str,
        sha256: str,
        owner: str,
        path: str,
        vector_id: int,
        image_name: str | None,
        features: bytes | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        """Turn our claim into the stored record (kept for good: no TTL), with the image's
        verification features when given, and `extra` attributes (a caption written on arrival:
        `caption_records.py`) in the same write."""
        values: dict[str, Any] = {
            "stored": STORED,
            "path": path,
            "vector": vector_id,
            "owner": owner,
            "created": int(self.clock()),
            "yielded": YIELDED,
            "website": website,
        }
        update = f"SET #s = :stored, #p = :path, vector_id = :vector, created_at = :created, {LISTED} = :website"
        if image_name:
            update += ", image_name = :name"
            values["name"] = image_name
        if features is not None:
            update += f", {FEATURES} = :features"
            values["features"] = features
        names = {"#s": "status", "#p": "path", "#o": "owner"}
        for n, (name, value) in enumerate((extra or {}).items()):
            update += f", #x{n} = :x{n}"
            names[f"#x{n}"], values[f"x{n}"] = name, value
        self.dynamodb.update_item(
            TableName=self.table,
            Key=self._key(website, sha256),
            UpdateExpression=update + " REMOVE expires_at, lease_until",
            ConditionExpression="#o = :owner AND #s <> :yielded",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=expression_values(**values),
        )

    def features(self, contents: Sequence[tuple[str, str]]) -> dict[tuple[str, str], bytes]:
        """The verification features of stored records, by (website, sha256); records without
        features (indexed before they were kept) and unknown contents are absent."""
        keys = [self._key(website, sha256) for website, sha256 in dict.fromkeys(contents)]
        found: dict[tuple[str, str], bytes] = {}
        for item in batch_get(self.dynamodb, self.table, keys, projection=f"content_id, {FEATURES}"):
            record = from_item(item)
            if FEATURES in record:
                website, _, sha256 = record["content_id"].partition("#")
                found[(website, sha256)] = bytes(record[FEATURES])
        return found

    def set_features(self, website: str, sha256: str, features: bytes) -> None:
        """Keep features found later (for a record stored before features were kept)."""
        try:
            self.dynamodb.update_item(
                TableName=self.table,
                Key=self._key(website, sha256),
                UpdateExpression=f"SET {FEATURES} = :features",
                ConditionExpression="#s = :stored",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues=expression_values(features=features, stored=STORED),
            )
        except ClientError as error:
            if not conditional_check_failed(error):
                raise

    def records(self, website: str) -> Iterator[tuple[str, ContentRecord]]:
        """Every record of a storefront, as (sha256, record): a paginated scan (the reconciler's read)."""
        pages = self.dynamodb.get_paginator("scan").paginate(
            TableName=self.table,
            FilterExpression="begins_with(content_id, :prefix)",
            ExpressionAttributeValues=expression_values(prefix=f"{website}#"),
            ProjectionExpression=f"content_id, #s, #o, #p, vector_id, lease_until, #r, {LISTED}",
            ExpressionAttributeNames={"#s": "status", "#o": "owner", "#p": "path", "#r": "order"},
            ConsistentRead=True,
        )
        for page in pages:
            for item in page.get("Items", []):
                record = record_from_item(from_item(item))
                yield record.content_id.partition("#")[2], record

    def forget(self, website: str, sha256: str, expected: ContentRecord) -> bool:
        """Delete a record that is still exactly as it was read (its status and owner): the reconciler
        removes a record whose object is gone, or an abandoned claim, never one that moved on since."""
        try:
            self.dynamodb.delete_item(
                TableName=self.table,
                Key=self._key(website, sha256),
                ConditionExpression="#s = :status AND #o = :owner",
                ExpressionAttributeNames={"#s": "status", "#o": "owner"},
                ExpressionAttributeValues=expression_values(status=expected.status, owner=expected.owner),
            )
        except ClientError as error:
            if conditional_check_failed(error):
                return False
            raise
        return True

    # --- deleting a stored image (catalogue.py has the order of the deletes) ------------------------
    def begin_delete(self, website: str, sha256: str, owner: str) -> ContentRecord | None:
        """Mark a stored record (or one whose deleter died: its lease has passed) `deleting`, held by
        `owner` for a lease; None when it is neither (gone, in flight, or being deleted by another)."""
        now = self.clock()
        try:
            response = self.dynamodb.update_item(
                TableName=self.table,
                Key=self._key(website, sha256),
                UpdateExpression=f"SET #s = :deleting, #o = :owner, lease_until = :lease REMOVE {LISTED}",
                ConditionExpression="#s = :stored OR (#s = :deleting AND lease_until < :now)",
                ExpressionAttributeNames={"#s": "status", "#o": "owner"},
                ExpressionAttributeValues=expression_values(
                    deleting=DELETING, stored=STORED, owner=owner, lease=round(now + self.lease_s, 3), now=round(now, 3)
                ),
                ReturnValues="ALL_NEW",
            )
        except ClientError as error:
            if conditional_check_failed(error):
                return None
            raise
        return record_from_item(from_item(response["Attributes"]))

    def end_delete(self, website: str, sha256: str, owner: str) -> bool:
        """Remove the record (and its verification features) once its object and vector are gone."""
        try:
            self.dynamodb.delete_item(
                TableName=self.table,
                Key=self._key(website, sha256),
                ConditionExpression="#s = :deleting AND #o = :owner",
                ExpressionAttributeNames={"#s": "status", "#o": "owner"},
                ExpressionAttributeValues=expression_values(deleting=DELETING, owner=owner),
            )
        except ClientError as error:
            if conditional_check_failed(error):
                return False
            raise
        return True

    def cancel_delete(self, website: str, sha256: str, owner: str) -> bool:
        """Put back as stored a record `owner` marked for deleting and has deleted nothing of yet."""
        try:
            self.dynamodb.update_item(
                TableName=self.table,
                Key=self._key(website, sha256),
                UpdateExpression=f"SET #s = :stored, {LISTED} = :website REMOVE lease_until",
                ConditionExpression="#s = :deleting AND #o = :owner",
                ExpressionAttributeNames={"#s": "status", "#o": "owner"},
                ExpressionAttributeValues=expression_values(
                    stored=STORED, deleting=DELETING, owner=owner, website=website
                ),
            )
        except ClientError as error:
            if conditional_check_failed(error):
                return False
            raise
        return True

    def undo_delete(self, website: str, sha256: str, expected: ContentRecord) -> bool:
        """Put back as stored a record whose deleter died before deleting its object (the reconciler:
        the image is all there, and its DELETE answered an error; running it again deletes it)."""
        try:
            self.dynamodb.update_item(
                TableName=self.table,
                Key=self._key(website, sha256),
                UpdateExpression=f"SET #s = :stored, {LISTED} = :website REMOVE lease_until",
                ConditionExpression="#s = :deleting AND #o = :owner AND lease_until < :now",
                ExpressionAttributeNames={"#s": "status", "#o": "owner"},
                ExpressionAttributeValues=expression_values(
                    stored=STORED,
                    deleting=DELETING,
                    owner=expected.owner,
                    now=round(self.clock(), 3),
                    website=website,
                ),
            )
        except ClientError as error:
            if conditional_check_failed(error):
                return False
            raise
        return True

    # --- the listing's index (image_listing.py): records stored before it existed -------------------
    def unlisted(
        self, start_after: str | None = None, page_items: int | None = None
    ) -> Iterator[tuple[list[tuple[str, str]], str | None]]:
        """The stored records that lack LISTED, a Scan page at a time: (the page's records as (website,
        sha256), the content id to resume after, None on the last page). `start_after` resumes a Scan
        cut short (the deploy's provisioning, `listing_backfill`); `page_items` caps the items a page
        reads (default: DynamoDB's 1 MB)."""
        request: dict[str, Any] = {
            "TableName": self.table,
            "FilterExpression": f"#s = :stored AND attribute_not_exists({LISTED})",
            "ExpressionAttributeNames": {"#s": "status"},
            "ExpressionAttributeValues": expression_values(stored=STORED),
            "ProjectionExpression": "content_id",
        }
        if start_after is not None:
            request["ExclusiveStartKey"] = to_item({"content_id": start_after})
        if page_items is not None:
            request["Limit"] = page_items
        while True:
            page = self.dynamodb.scan(**request)
            found = (_CONTENT_ID.match(str(from_item(item)["content_id"])) for item in page.get("Items", []))
            # a storefront's content only (never an upload id's or a verdict's item)
            records = [(match.group(1), match.group(2)) for match in found if match]
            last = page.get("LastEvaluatedKey")
            yield records, str(from_item(last)["content_id"]) if last else None
            if not last:
                return
            request["ExclusiveStartKey"] = last

    def listing_backfill(self) -> tuple[bool, str | None]:
        """How far the provisioning's Scan for unlisted records got: (finished, content id to resume
        after). Once finished it never runs again: every write since sets LISTED itself."""
        item = self.dynamodb.get_item(
            TableName=self.table, Key=to_item({"content_id": BACKFILL_ID}), ConsistentRead=True
        ).get("Item")
        progress = from_item(item) if item else {}
        return bool(progress.get("finished", False)), progress.get("resume_after")

    def record_listing_backfill(self, resume_after: str | None) -> None:
        """Where the next run resumes the Scan for unlisted records; None: the Scan finished."""
        progress: dict[str, Any] = {"content_id": BACKFILL_ID, "finished": resume_after is None}
        if resume_after is not None:
            progress["resume_after"] = resume_after
        self.dynamodb.put_item(TableName=self.table, Item=to_item(progress))

    def list_again(self, website: str, sha256: str) -> bool:
        """Give a stored record that lacks LISTED its storefront there (and a `created_at` of now if it
        has none, which no record written by `complete` lacks), so the listing's index holds it; False
        when it is no longer stored or already listed (a delete began, or another run added it)."""
        try:
            self.dynamodb.update_item(
                TableName=self.table,
                Key=self._key(website, sha256),
                UpdateExpression=f"SET {LISTED} = :website, created_at = if_not_exists(created_at, :now)",
                ConditionExpression=f"#s = :stored AND attribute_not_exists({LISTED})",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues=expression_values(website=website, now=int(self.clock()), stored=STORED),
            )
        except ClientError as error:
            if conditional_check_failed(error):
                return False
            raise
        return True

    def release(self, website: str, sha256: str, owner: str) -> None:
        """Give a claim back without storing (a near-duplicate was found, or storing failed)."""
        self.leases.give_back(content_id(website, sha256), owner)


def record_from_item(item: dict[str, Any]) -> ContentRecord:
    return ContentRecord(
        content_id=item["content_id"],
        status=item["status"],
        owner=item.get("owner", ""),
        path=item.get("path"),
        vector_id=item.get("vector_id"),
        image_name=item.get("image_name"),
        lease_until=float(item.get("lease_until", 0.0)),
        order=int(item["order"]) if item.get("order") is not None else None,
        created_at=int(item["created_at"]) if item.get("created_at") is not None else None,
        listed=LISTED in item,
    )
