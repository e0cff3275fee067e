"""The OpenSearch index of listings (id = zpid): the client, the mapping, and `ListingsIndex`, the
one index's data-access object (every read and write the real-estate services make of it)."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from opensearchpy import NotFoundError, OpenSearch, helpers

from listing_vision.config import get_settings
from listing_vision.errors import NotProvisioned, missing_store_as_not_provisioned
from listing_vision.observability import metrics

_lock = threading.Lock()
_clients: dict[str, OpenSearch] = {}

# Fields the platform owns. `image_vectors` is kept in _source only: vectors are searched elsewhere,
# and a knn_vector mapping would tie the index to the k-NN plugin.
LISTINGS_MAPPING: dict[str, Any] = {
    "properties": {
        "zpid": {"type": "keyword"},
        "visual_features_text": {"type": "text"},
        "image_vectors": {"type": "object", "enabled": False},
    }
}


def opensearch_client() -> OpenSearch:
    """The process-wide OpenSearch client for the configured endpoint (retries on 429/5xx)."""
    settings = get_settings()
    url = settings.opensearch_url
    with _lock:
        if url not in _clients:
            options: dict[str, Any] = {}
            if settings.opensearch_auth == "sigv4":
                import boto3
                from opensearchpy import AWSV4SignerAuth, RequestsHttpConnection

                credentials = boto3.session.Session().get_credentials()
                options = {
                    "http_auth": AWSV4SignerAuth(credentials, settings.aws_region, "es"),
                    "connection_class": RequestsHttpConnection,
                    "use_ssl": url.startswith("https"),
                }
            _clients[url] = OpenSearch(
                hosts=[url],
                timeout=30,
                max_retries=3,
                retry_on_status=(429, 502, 503, 504),
                retry_on_timeout=True,
                **options,
            )
        return _clients[url]


SPLIT_MAPPING: dict[str, Any] = {
    "properties": {
        "exterior_visual_features": {"type": "text"},
        "interior_visual_features": {"type": "text"},
        "amenities_visual_features": {"type": "text"},
    }
}


@dataclass(frozen=True)
class ListingDoc:
    """A listing as read, with the version guard a write must present."""

    zpid: str
    source: dict[str, Any]
    seq_no: int
    primary_term: int

    @property
    def image_urls(self) -> list[str]:
        """The listing's images: its own `image_urls` (listings ingested here keep them, in upload
        order, including images still pending), else those named in `image_vectors`
        (listings indexed before ingest kept `image_urls`)."""
        own = self.source.get("image_urls")
        if isinstance(own, list) and own:
            return [url for url in own if isinstance(url, str) and url]
        vectors = self.source.get("image_vectors") or []
        return [v["image_url"] for v in vectors if isinstance(v, dict) and v.get("image_url")]


# A bulk action the domain rejected (its write queue full) is sent again: at most BULK_ROUNDS
# sends in all, after a full-jitter backoff of up to BULK_BACKOFF_S × 2^round (capped), so
# concurrent batches that were rejected together do not come back together.
BULK_ROUNDS = 4
BULK_BACKOFF_S = 0.5
BULK_BACKOFF_CAP_S = 8.0
REJECTED = "es_rejected_execution_exception"


@dataclass(frozen=True)
class WriteResult:
    zpid: str
    status: int  # 200 ok, 409 version conflict, 404 gone, 429/5xx after the client's retries
    error: str | None = None


class MappingConflict(RuntimeError):
    """The listings index exists with fields mapped otherwise than the platform maps them."""


def index_missing(error: BaseException) -> bool:
    """OpenSearch's answer when the index does not exist."""
    return isinstance(error, NotFoundError) and error.error == "index_not_found_exception"


@missing_store_as_not_provisioned(index_missing, "OpenSearch index")
class ListingsIndex:
    """One index of listings on one cluster. Services are handed it (`from_settings` in handlers and
    the CLI); tests and benches build it over other clients or indexes."""

    bulk_backoff_s = BULK_BACKOFF_S

    def __init__(self, client: OpenSearch, name: str, sleep: Callable[[float], None] = time.sleep):
        self.client = client
        self.name = name
        self.sleep = sleep

    @classmethod
    def from_settings(cls) -> ListingsIndex:
        """The configured index, through the process-wide client."""
        return cls(opensearch_client(), get_settings().listings_index)

    def ensure_index(self) -> str:
        """Create the listings index with its mapping if missing; returns "created", or "unchanged" when
        it exists with the mapping's fields. An index whose fields differ is refused (`MappingConflict`):
        a field's type cannot change in place, it takes a reindex into a new index."""
        if not self.client.indices.exists(index=self.name):
            self.client.indices.create(index=self.name, body={"mappings": LISTINGS_MAPPING})
            return "created"
        mappings: dict[str, Any] = self.client.indices.get_mapping(index=self.name)
        index_mapping: dict[str, Any] = next(iter(mappings.values()), {})
        current = index_mapping.get("mappings", {}).get("properties", {})
        differ = sorted(name for name, spec in LISTINGS_MAPPING["properties"].items() if current.get(name) != spec)
        if differ:
            raise MappingConflict(
                f"The OpenSearch index {self.name!r} maps {', '.join(differ)} otherwise than the platform "
                f"({LISTINGS_MAPPING['properties']}): reindex into a new index and name it in LISTINGS_INDEX."
            )
        return "unchanged"

    def exists(self) -> bool:
        return bool(self.client.indices.exists(index=self.name))

    def ensure_split_mapping(self) -> None:
        """Add the three split fields to the mapping; running it again changes nothing."""
        self.client.indices.put_mapping(index=self.name, body=SPLIT_MAPPING)

    def refresh(self) -> None:
        self.client.indices.refresh(index=self.name)

    def search(self, body: dict[str, Any]) -> dict[str, Any]:
        """One search of the index, on its own `_search` path (a role limited to the index suffices)."""
        return dict(self.client.search(index=self.name, body=body))

    def count(self) -> int:
        return int(self.client.count(index=self.name)["count"])

    def all_ids(self) -> list[str]:
        """Every listing id, sorted (samples are reproducible). Holds them all: for samples; anything
        that visits every listing streams `iter_ids` instead."""
        return list(self.iter_ids())

    def _sorted_hits(self, source: bool, page: int, after_id: str | None = None) -> Iterator[dict[str, Any]]:
        """Every hit in id order (after `after_id`, given one), one page at a time (`search_after` on
        `_id`): constant memory at any size, and the order backups and plans use, so two such streams
        can be merged. OpenSearch 2.x sorts on `_id` (`indices.id_field_data.enabled` defaults to true)."""
        after: list[Any] | None = None if after_id is None else [after_id]
        while True:
            body: dict[str, Any] = {
                "size": page,
                "query": {"match_all": {}},
                "sort": [{"_id": "asc"}],
                "_source": source,
                "seq_no_primary_term": source,
            }
            if after is not None:
                body["search_after"] = after
            hits = self.client.search(index=self.name, body=body)["hits"]["hits"]
            yield from hits
            if len(hits) < page:
                return
            after = hits[-1]["sort"]

    def iter_ids(self, page: int = 5_000) -> Iterator[str]:
        """Every listing id in sorted order, streamed."""
        for hit in self._sorted_hits(source=False, page=page):
            yield str(hit["_id"])

    def iter_ids_between(self, after: str | None, last: str | None, page: int = 1_000) -> Iterator[str]:
        """The ids after `after` (from the first when None) up to `last` (to the end when None), in
        order: a Map batch's part of the index. Searched, so as of the last refresh."""
        for hit in self._sorted_hits(source=False, page=page, after_id=after):
            if last is not None and str(hit["_id"]) > last:
                return
            yield str(hit["_id"])

    def iter_docs_sorted(self, page: int = 200) -> Iterator[ListingDoc]:
        """Every listing with its version, in id order, a page in memory at a time."""
        for hit in self._sorted_hits(source=True, page=page):
            yield ListingDoc(str(hit["_id"]), hit["_source"], hit["_seq_no"], hit["_primary_term"])

    def get_docs(self, zpids: list[str], source: list[str] | None = None) -> dict[str, ListingDoc]:
        """Listings by id with their seq_no/primary_term (absent ids are left out)."""
        found: dict[str, ListingDoc] = {}
        for start in range(0, len(zpids), 500):
            body = {"ids": zpids[start : start + 500]}
            params = {"_source_includes": ",".join(source)} if source else {}
            for doc in self.client.mget(index=self.name, body=body, params=params)["docs"]:
                if (doc.get("error") or {}).get("type") == "index_not_found_exception":  # per document, not a 404
                    raise self._not_provisioned()
                if doc.get("found"):
                    found[doc["_id"]] = ListingDoc(doc["_id"], doc["_source"], doc["_seq_no"], doc["_primary_term"])
        return found

    def scan_docs(self) -> Iterator[ListingDoc]:
        for hit in helpers.scan(
            self.client, index=self.name, query={"query": {"match_all": {}}}, seq_no_primary_term=True
        ):
            yield ListingDoc(hit["_id"], hit["_source"], hit["_seq_no"], hit["_primary_term"])

    def put_guarded(self, zpid: str, source: dict[str, Any], over: ListingDoc | None) -> None:
        """Index one listing's whole source: created when `over` is None, else guarded by its version
        (a concurrent writer makes the client raise its 409 conflict)."""
        if over is None:
            if not self.exists():  # indexing would create it, with a guessed mapping
                raise self._not_provisioned()
            self.client.index(index=self.name, id=zpid, body=source, op_type="create", refresh=True)
        else:
            self.client.index(
                index=self.name,
                id=zpid,
                body=source,
                if_seq_no=over.seq_no,
                if_primary_term=over.primary_term,
                refresh=True,
            )

    def update_fields_guarded(
        self, updates: list[tuple[ListingDoc, dict[str, Any]]], bulk_size: int | None = None
    ) -> list[WriteResult]:
        """Partial updates of the given fields only, each guarded by the version it was computed from."""
        actions = [
            {
                "_op_type": "update",
                "_index": self.name,
                "_id": doc.zpid,
                "if_seq_no": doc.seq_no,
                "if_primary_term": doc.primary_term,
                "doc": fields,
            }
            for doc, fields in updates
        ]
        return self._bulk(actions, bulk_size)

    def replace_sources_guarded(
        self, replacements: list[tuple[ListingDoc, dict[str, Any]]], bulk_size: int | None = None
    ) -> list[WriteResult]:
        """Whole-document re-index (how fields are removed without scripts), guarded by version."""
        actions = [
            {
                "_op_type": "index",
                "_index": self.name,
                "_id": doc.zpid,
                "if_seq_no": doc.seq_no,
                "if_primary_term": doc.primary_term,
                "_source": source,
            }
            for doc, source in replacements
        ]
        return self._bulk(actions, bulk_size)

    def _bulk(self, actions: list[dict[str, Any]], bulk_size: int | None = None) -> list[WriteResult]:
        """Bulk requests of `bulk_size` actions (default 500) sent to the index's own `_bulk` path, so
        a role limited to the index suffices. Actions the domain rejects (429, or its write queue full:
        `es_rejected_execution_exception`) are sent again after a backoff with full jitter, at most
        BULK_ROUNDS rounds in all, each round counted in the `BulkRejected` metric; still rejected,
        they are returned as such (the batch fails and the state machine retries it later)."""
        if not actions:
            return []
        results: dict[int, WriteResult] = {}
        pending = list(range(len(actions)))
        for attempt in range(BULK_ROUNDS):
            rejected = []
            for position, result in zip(
                pending, self._bulk_once([actions[i] for i in pending], bulk_size), strict=True
            ):
                results[position] = result
                if result.status == 429 or result.error == REJECTED:
                    rejected.append(position)
            if not rejected:
                break
            metrics.add_metric(name="BulkRejected", unit="Count", value=len(rejected))  # alarmed on
            if attempt + 1 < BULK_ROUNDS:
                self.sleep(random.uniform(0, min(BULK_BACKOFF_CAP_S, self.bulk_backoff_s * 2**attempt)))
            pending = rejected
        ordered = [results[i] for i in range(len(actions))]
        if any(result.error == "index_not_found_exception" for result in ordered):
            raise self._not_provisioned()
        return ordered

    def _bulk_once(self, actions: list[dict[str, Any]], bulk_size: int | None) -> Iterator[WriteResult]:
        """One pass over the actions, a result per action in order (a request the client gave up on
        yields its actions with that request's status)."""
        for ok, item in helpers.streaming_bulk(
            self.client,
            actions,
            index=self.name,
            raise_on_error=False,
            raise_on_exception=False,
            chunk_size=bulk_size or 500,
            max_retries=0,  # rejections are retried by `_bulk`, with jitter and counted
        ):
            outcome = next(iter(item.values()))
            error = outcome.get("error")
            yield WriteResult(
                str(outcome.get("_id")),
                200 if ok else int(outcome.get("status", 500)),
                (error.get("type") if isinstance(error, dict) else str(error)) if error else None,
            )

    def _not_provisioned(self) -> NotProvisioned:
        return NotProvisioned(
            f"The OpenSearch index {self.name!r} does not exist: provisioning has not run in this stage.",
            details={"store": "OpenSearch index", "name": self.name},
        )

    def field_presence(self, fields: tuple[str, ...]) -> dict[str, int]:
        """The migration's monitoring figures: listings in all, and with each field (an `exists` filter)."""
        aggs: dict[str, Any] = {name: {"filter": {"exists": {"field": name}}} for name in fields}
        aggs["all_fields"] = {"filter": {"bool": {"filter": [{"exists": {"field": name}} for name in fields]}}}
        response = self.client.search(index=self.name, body={"size": 0, "track_total_hits": True, "aggs": aggs})
        figures = {name: int(response["aggregations"][name]["doc_count"]) for name in aggs}
        figures["total"] = int(response["hits"]["total"]["value"])
        return figures
