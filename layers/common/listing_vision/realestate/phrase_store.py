"""The phrase cache (DynamoDB `hearth-feature-phrases`, key `phrase_key`): the class of every
feature phrase the taxonomy does not know, decided once per phrase and taxonomy version.

`phrase_key` is `<taxonomy version>#<normalised phrase>` (`Taxonomy.key`), so spelling variants
share an item and a new taxonomy version starts a new set. An item holds the phrase as first seen,
its `label` (amenity, exterior, interior), `facet` (for amenities), `method` (`llm` or
`offline_rule`), the `model` that decided it, how often exterior and interior images named it
when it was classified, and `classified_at`. Reads are BatchGetItem chunks of 100 with
unprocessed keys retried (`dynamodb_batch`), items through `dynamodb_items`; the split never
calls a model.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal, cast

from listing_vision import aws
from listing_vision.config import get_settings
from listing_vision.dynamodb_batch import batch_get, batch_put
from listing_vision.dynamodb_items import expression_values, from_item, to_item
from listing_vision.realestate.taxonomy import LABELS, Label, PhraseClassifier, Taxonomy, load_taxonomy

Method = Literal["llm", "offline_rule"]


@dataclass(frozen=True)
class StoredPhrase:
    key: str
    phrase: str
    label: Label
    method: Method
    facet: str | None = None
    model: str | None = None
    seen_exterior: int = 0
    seen_interior: int = 0
    classified_at: int = 0

    @property
    def taxonomy_version(self) -> str:
        return self.key.split("#", 1)[0]

    def to_item(self) -> dict[str, Any]:
        item: dict[str, Any] = {
            "phrase_key": self.key,
            "taxonomy_version": self.taxonomy_version,
            "phrase": self.phrase,
            "label": self.label,
            "method": self.method,
            "seen_exterior": self.seen_exterior,
            "seen_interior": self.seen_interior,
            "classified_at": self.classified_at or int(time.time()),
        }
        return {**item, "facet": self.facet, "model": self.model}  # None values are left out

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> StoredPhrase | None:
        label, method = item.get("label"), item.get("method")
        if label not in LABELS or method not in ("llm", "offline_rule"):
            return None  # never trust an item this code did not write
        return cls(
            key=str(item["phrase_key"]),
            phrase=str(item.get("phrase", "")),
            label=cast(Label, label),
            method=cast(Method, method),
            facet=item.get("facet"),
            model=item.get("model"),
            seen_exterior=int(item.get("seen_exterior", 0)),
            seen_interior=int(item.get("seen_interior", 0)),
            classified_at=int(item.get("classified_at", 0)),
        )


class PhraseStore:
    def __init__(self, table: str | None = None, client: Any = None, sleep: Any = time.sleep):
        self.table = table or get_settings().feature_phrases_table
        self.dynamodb = client or aws.client("dynamodb")
        self.sleep = sleep
        self.unprocessed_retries = 0

    def _count_retry(self) -> None:
        self.unprocessed_retries += 1

    def get_many(self, keys: Iterable[str]) -> dict[str, StoredPhrase]:
        """Stored classes by key; keys without an item are absent."""
        unique = list(dict.fromkeys(k for k in keys if k))
        found: dict[str, StoredPhrase] = {}
        wire_keys = [to_item({"phrase_key": key}) for key in unique]
        for raw in batch_get(self.dynamodb, self.table, wire_keys, sleep=self.sleep, on_unprocessed=self._count_retry):
            stored = StoredPhrase.from_item(from_item(raw))
            if stored is not None:
                found[stored.key] = stored
        return found

    def labels(self, keys: Iterable[str]) -> dict[str, Label]:
        """What the split needs: key → label, for the keys that have one."""
        return {key: stored.label for key, stored in self.get_many(keys).items()}

    def classifier_for(self, phrases: Iterable[str], taxonomy: Taxonomy | None = None) -> tuple[PhraseClassifier, int]:
        """The split's classifier for these phrases (the taxonomy, then their stored classes, read
        in one bulk), and how many unknown phrases have no stored class (the offline rule decides)."""
        taxonomy = taxonomy or load_taxonomy()
        unknown = {taxonomy.key(phrase) for phrase in PhraseClassifier(taxonomy).unknown(phrases)}
        labels = self.labels(unknown) if unknown else {}
        return PhraseClassifier(taxonomy, labels), len(unknown - set(labels))

    def put_many(self, phrases: Iterable[StoredPhrase]) -> int:
        return batch_put(self.dynamodb, self.table, [to_item(p.to_item()) for p in phrases], sleep=self.sleep)

    def catalogue(self, taxonomy_version: str) -> dict[str, Any]:
        """How many phrases this taxonomy version holds, by method and by label (a scan of the
        table, which holds one small item per distinct unknown phrase)."""
        methods: Counter[str] = Counter()
        labels: Counter[str] = Counter()
        paginator = self.dynamodb.get_paginator("scan")
        for page in paginator.paginate(
            TableName=self.table,
            FilterExpression="taxonomy_version = :version",
            ExpressionAttributeValues=expression_values(version=taxonomy_version),
            ProjectionExpression="#method, #label",
            ExpressionAttributeNames={"#method": "method", "#label": "label"},
        ):
            for raw in page.get("Items", []):
                item = from_item(raw)
                methods[str(item.get("method"))] += 1
                labels[str(item.get("label"))] += 1
        return {
            "taxonomy_version": taxonomy_version,
            "phrases": sum(methods.values()),
            "classified_by_llm": methods["llm"],
            "classified_by_offline_rule": methods["offline_rule"],
            "by_label": {label: labels[label] for label in LABELS},
        }
