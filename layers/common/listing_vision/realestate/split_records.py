"""Split records (DynamoDB `hearth-listing-splits`, key `listing_key`): what each listing's split
came from, kept beside the listing so its document changes in the three split fields only.

`listing_key` is `<listings index>#<zpid>` (a new index starts a new set). An item holds the
`taxonomy` the split was classified with (`Taxonomy.fingerprint`: its version and a hash of its
parsed content, so an edit without a version bump still counts), `analyses`, a hash of the cached
analyses it was computed from (each cached image's URL and analysis, in the listing's image order),
how many `images` those were, and `split_at`.

A listing's split is stale when what it would be computed from now differs from its record: the
taxonomy changed, an analysis was added, removed or rewritten, or there is no record (migrated
before records were kept, or the write of the record was lost): `staleness`. Execute re-splits
exactly those (`migration.execute`); coverage counts them (`migration.preview`). Ingest writes the
record with the listing it indexes.

Reads are BatchGetItem chunks of 100 and writes BatchWriteItem chunks of 25 (`dynamodb_batch`),
one batch of listings at a time: no request per listing.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from listing_vision import aws
from listing_vision.config import get_settings
from listing_vision.dynamodb_batch import batch_get, batch_put
from listing_vision.dynamodb_items import from_item, to_item

Staleness = Literal["fresh", "taxonomy_changed", "analyses_changed", "unrecorded"]
STALE_REASONS: tuple[Staleness, ...] = ("taxonomy_changed", "analyses_changed", "unrecorded")


@dataclass(frozen=True)
class SplitInputs:
    """What a split is computed from: the taxonomy's fingerprint and the hash of the analyses."""

    taxonomy: str
    analyses: str
    images: int = 0


def split_inputs(urls: Iterable[str], analyses: Mapping[str, dict[str, Any]], taxonomy: str) -> SplitInputs:
    """The inputs of a listing's split: each of its images (in order, once) that has a cached
    analysis, hashed with that analysis (canonical JSON), under the taxonomy's fingerprint."""
    digest = hashlib.sha256()
    images = 0
    for url in dict.fromkeys(urls):
        if url in analyses:
            images += 1
            digest.update(json.dumps([url, analyses[url]], sort_keys=True, separators=(",", ":")).encode() + b"\n")
    return SplitInputs(taxonomy, digest.hexdigest()[:32], images)


def staleness(recorded: SplitInputs | None, current: SplitInputs) -> Staleness:
    """Whether a split recorded as `recorded` is still what `current` inputs give, and if not, why."""
    if recorded is None:
        return "unrecorded"
    if recorded.taxonomy != current.taxonomy:
        return "taxonomy_changed"
    if recorded.analyses != current.analyses:
        return "analyses_changed"
    return "fresh"


class SplitRecords:
    def __init__(self, table: str | None = None, client: Any = None, sleep: Any = time.sleep):
        self.table = table or get_settings().listing_splits_table
        self.dynamodb = client or aws.client("dynamodb")
        self.sleep = sleep

    @staticmethod
    def key(index: str, zpid: str) -> str:
        return f"{index}#{zpid}"

    def get_many(self, index: str, zpids: Iterable[str]) -> dict[str, SplitInputs]:
        """Records by zpid; listings without one are absent."""
        keys = [to_item({"listing_key": self.key(index, zpid)}) for zpid in dict.fromkeys(zpids)]
        found: dict[str, SplitInputs] = {}
        projection = "listing_key, taxonomy, analyses, images"
        for raw in batch_get(self.dynamodb, self.table, keys, projection, self.sleep):
            item = from_item(raw)
            zpid = str(item["listing_key"]).split("#", 1)[1]
            taxonomy, analyses = str(item.get("taxonomy", "")), str(item.get("analyses", ""))
            found[zpid] = SplitInputs(taxonomy, analyses, int(item.get("images", 0)))
        return found

    def put_many(self, index: str, records: Mapping[str, SplitInputs]) -> int:
        """Write these records (zpid → inputs), 25 a request."""
        now = int(time.time())
        items = [to_item(self._item(index, zpid, inputs, now)) for zpid, inputs in records.items()]
        return batch_put(self.dynamodb, self.table, items, self.sleep)

    def put(self, index: str, zpid: str, inputs: SplitInputs) -> None:
        """One listing's record (ingest indexes one listing at a time)."""
        item = self._item(index, zpid, inputs, int(time.time()))
        self.dynamodb.put_item(TableName=self.table, Item=to_item(item))

    def get(self, index: str, zpid: str) -> SplitInputs | None:
        return self.get_many(index, [zpid]).get(zpid)

    def _item(self, index: str, zpid: str, inputs: SplitInputs, now: int) -> dict[str, Any]:
        return {
            "listing_key": self.key(index, zpid),
            "taxonomy": inputs.taxonomy,
            "analyses": inputs.analyses,
            "images": inputs.images,
            "split_at": now,
        }
