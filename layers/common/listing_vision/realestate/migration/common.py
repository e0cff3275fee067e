"""What every migration job shares: the stores and the reading helpers (`MigrationBase`), the
batch report and batching, and the errors the state machine retries on."""

from __future__ import annotations

import itertools
import random
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError
from opensearchpy.exceptions import TransportError

from listing_vision.errors import UpstreamError
from listing_vision.realestate.features import SPLIT_FIELDS, feature_phrases, split_visual_features
from listing_vision.realestate.listings_index import ListingDoc, ListingsIndex, WriteResult
from listing_vision.realestate.phrase_store import PhraseStore
from listing_vision.realestate.split_records import SplitInputs, SplitRecords, split_inputs
from listing_vision.realestate.taxonomy import Taxonomy, load_taxonomy
from listing_vision.realestate.vision_cache import CachedImage, VisionCache, coverage_of

MAX_CONFLICT_ROUNDS = 5
Progress = Callable[[int], None]
Inputs = dict[str, tuple[SplitInputs | None, SplitInputs]]  # zpid → (recorded, current)


LEFT_ALONE_SHOWN = 20  # zpids a report lists (all are counted)


@dataclass
class BatchReport:
    """What one batch did. Counts add up across batches (`merge`)."""

    counts: Counter[str] = field(default_factory=Counter)
    failed: dict[str, str] = field(default_factory=dict)
    left_alone: list[str] = field(default_factory=list)  # changed by someone else since the backup

    def merge(self, other: BatchReport) -> BatchReport:
        self.counts.update(other.counts)
        self.failed.update(other.failed)
        self.left_alone += other.left_alone
        return self

    def to_json(self) -> dict[str, Any]:
        shown = {"left_alone": self.left_alone[:LEFT_ALONE_SHOWN]} if self.left_alone else {}
        return {"counts": dict(self.counts), "failed": self.failed, **shown}

    def tally(self, results: Iterable[WriteResult], written: str) -> list[str]:
        """Count guarded writes (`written` for each success; a listing deleted meanwhile is
        `not_found`; anything else failed) and return the version conflicts, to be redone."""
        conflicts = []
        for result in results:
            if result.status == 200:
                self.counts[written] += 1
            elif result.status == 409:
                conflicts.append(result.zpid)
            elif result.status == 404:
                self.counts["not_found"] += 1
            else:
                self.failed[result.zpid] = f"{result.status} {result.error}"
        return conflicts


def batches(items: Iterable[str], size: int) -> Iterator[list[str]]:
    """Consecutive groups of `size`, taken from the stream as they are needed."""
    stream = iter(items)
    while group := list(itertools.islice(stream, size)):
        yield group


def with_last(groups: Iterator[list[str]]) -> Iterator[tuple[list[str], bool]]:
    """Each group, and whether it is the last (one group read ahead)."""
    current = next(groups, None)
    while current is not None:
        following = next(groups, None)
        yield current, following is None
        current = following


def ranges(groups: Iterator[list[str]]) -> Iterator[tuple[list[str], str | None, bool]]:
    """Each group (id order) with the part of the index it checks once done: after the previous
    group's last id (`after`) up to its own last, the last group to the end (`to_end`)."""
    after: str | None = None
    for group, to_end in with_last(groups):
        yield group, after, to_end
        after = max(group)


def strip_split(source: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in source.items() if key not in SPLIT_FIELDS}


@dataclass
class Tally:
    """A count and the first few ids (streams come in id order, so these are the smallest)."""

    keep: int = 10
    count: int = 0
    first: list[str] = field(default_factory=list)

    def add(self, zpid: str) -> None:
        self.count += 1
        if len(self.first) < self.keep:
            self.first.append(zpid)


class MigrationBase:
    """The stores every job reads and writes, handed in (`Migration.from_settings` builds the
    configured ones), and the reading helpers the jobs share."""

    def __init__(
        self,
        listings: ListingsIndex,
        cache: VisionCache,
        phrases: PhraseStore,
        artifacts_bucket: str,
        records: SplitRecords,
        taxonomy: Taxonomy | None = None,
    ):
        self.listings = listings
        self.cache = cache
        self.phrases = phrases
        self.artifacts_bucket = artifacts_bucket  # plans, batch records and default backups
        self.records = records  # what each listing's split came from
        self.taxonomy = taxonomy or load_taxonomy()

    def _sample(self, sample: int | None, zpids: list[str] | None, seed: int) -> list[str]:
        if zpids:
            return list(dict.fromkeys(str(z) for z in zpids))
        ids = self.listings.all_ids()
        if sample is None or sample >= len(ids):
            return ids
        return sorted(random.Random(seed).sample(ids, sample))

    def _ids(self, zpids: list[str] | None) -> Iterator[str]:
        """The listed zpids, or every listing's, streamed in id order."""
        if zpids:
            return iter(dict.fromkeys(str(z) for z in zpids))
        return self.listings.iter_ids()

    def _inputs_for(self, docs: Iterable[ListingDoc]) -> tuple[Inputs, dict[str, CachedImage]]:
        """zpid → (the listing's split record, the inputs its split would come from now), and the
        cached images of these listings: one read of the records and one of the cache, both batched."""
        docs = list(docs)
        cached = self.cache.get_many(url for doc in docs for url in doc.image_urls)
        recorded = self.records.get_many(self.listings.name, (doc.zpid for doc in docs)) if docs else {}
        analyses = {url: image.analysis for url, image in cached.items()}
        current = {doc.zpid: split_inputs(doc.image_urls, analyses, self.taxonomy.fingerprint) for doc in docs}
        return {zpid: (recorded.get(zpid), inputs) for zpid, inputs in current.items()}, cached

    def _split_for(
        self, docs: Iterable[ListingDoc], cached: dict[str, CachedImage] | None = None
    ) -> tuple[dict[str, tuple[str, dict[str, str] | None]], int]:
        """zpid → (coverage, the three fields or None when nothing of the listing is cached), and how
        many distinct phrases of these listings neither the taxonomy nor the phrase cache classes
        (the offline rule decides them). `cached`: the cache's items already read for these listings."""
        docs = list(docs)
        if cached is None:
            cached = self.cache.get_many(url for doc in docs for url in doc.image_urls)
        urls = {url for doc in docs for url in doc.image_urls}
        phrases = {phrase for url in urls if url in cached for phrase in feature_phrases(cached[url].analysis)[1]}
        classifier, unclassified = self.phrases.classifier_for(phrases, self.taxonomy)
        out: dict[str, tuple[str, dict[str, str] | None]] = {}
        for doc in docs:
            analyses = [cached[url].analysis for url in doc.image_urls if url in cached]
            coverage = coverage_of(doc.image_urls, (url for url in doc.image_urls if url in cached))
            out[doc.zpid] = (coverage, split_visual_features(analyses, classifier).as_fields() if analyses else None)
        return out, unclassified


THROTTLING_CODES = {
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
}


@contextmanager
def throttling_as_retryable() -> Iterator[None]:
    """Stores that still push back after their clients' retries surface as `Throttled`, the error
    name the state machine retries with backoff."""
    try:
        yield
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in THROTTLING_CODES:
            raise Throttled(f"DynamoDB is throttling: {error}") from error
        raise
    except TransportError as error:
        if error.status_code in (429, 502, 503, 504):
            raise Throttled(f"OpenSearch answered {error.status_code}") from error
        raise
    except UpstreamError as error:
        if error.code == "cache_throttled":
            raise Throttled(error.message) from error
        raise


class BatchFailed(UpstreamError):
    """Some listings of a batch could not be written; the Map state retries or reports the batch."""

    code = "batch_failed"


class Throttled(UpstreamError):
    """DynamoDB or OpenSearch kept pushing back past their clients' own retries; retry the batch later."""

    code = "throttled"
