"""The per-image vision cache (DynamoDB `hearth-vision-cache`, key `image_url`).

An item holds the analysis (JSON text, or a map in older items), the embedding (float32 bytes),
`image_hash`, the raw `llm_response` and the model names. Reads go in BatchGetItem chunks of 100
(the API's limit), READ_PARALLELISM of them at once, with `UnprocessedKeys` retried with
exponential backoff and jitter (`dynamodb_batch`); URLs are de-duplicated first. Only what a
caller asks for is projected (the migration never reads embeddings). `scan_analyses` reads every
analysis, one segment of a parallel scan at a time (for classify-phrases).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from listing_vision import aws
from listing_vision.concurrency import thread_map
from listing_vision.config import get_settings
from listing_vision.dynamodb_batch import GET_LIMIT, batch_get
from listing_vision.dynamodb_items import from_item, to_item

if TYPE_CHECKING:  # numpy is imported where an embedding is read or written: the migration never does, and
    # its CLI and function start without it (about 0.2 s of every `make migrate`)
    import numpy as np

Coverage = Literal["full", "partial", "none"]
# BatchGetItems of one `get_many` in flight at once: a migration batch of 100 listings reads ≈ 20
# of 100 keys, which one after another were its longest wait (bench/migration_model.py).
READ_PARALLELISM = 4


@dataclass(frozen=True)
class CachedImage:
    image_url: str
    analysis: dict[str, Any]
    image_hash: str | None = None
    embedding: np.ndarray | None = None
    llm_response: str | None = None
    analysis_model: str | None = None
    embedding_model: str | None = None


def coverage_of(urls: Sequence[str], cached: Iterable[str]) -> Coverage:
    """full: every image of the listing is cached; partial: some; none: none (or no images)."""
    wanted = set(urls)
    have = wanted & set(cached)
    if wanted and have == wanted:
        return "full"
    return "partial" if have else "none"


class VisionCache:
    def __init__(self, table: str | None = None, client: Any = None, sleep: Any = time.sleep):
        self.table = table or get_settings().vision_cache_table
        self.dynamodb = client or aws.client("dynamodb")
        self.sleep = sleep
        self.unprocessed_retries = 0  # how often DynamoDB handed keys back (reported by the migration)
        self._retries_lock = threading.Lock()

    def _count_retry(self) -> None:
        with self._retries_lock:
            self.unprocessed_retries += 1

    def get_many(self, urls: Iterable[str], with_embeddings: bool = False) -> dict[str, CachedImage]:
        """Cached analyses by URL; URLs without an item are absent from the result."""
        unique = list(dict.fromkeys(u for u in urls if u))
        found: dict[str, CachedImage] = {}
        # Only what is asked for: the migration reads analyses alone (in moto, measured: 22 ms per 100
        # keys for these two attributes against 38 ms with the hash and model names as well).
        projection = "image_url, analysis"
        if with_embeddings:
            projection += ", image_hash, analysis_model, embedding, embedding_model, llm_response"
        keys = [to_item({"image_url": url}) for url in unique]

        def read(chunk: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return list(batch_get(self.dynamodb, self.table, chunk, projection, self.sleep, self._count_retry))

        chunks = [keys[start : start + GET_LIMIT] for start in range(0, len(keys), GET_LIMIT)]
        for items in thread_map(read, chunks, READ_PARALLELISM):
            for item in items:
                cached = _cached_image(item)
                found[cached.image_url] = cached
        return found

    def scan_analyses(self, segment: int = 0, segments: int = 1) -> Iterator[dict[str, Any]]:
        """Every cached analysis of one segment of a parallel scan (analyses only, page by page)."""
        pages = self.dynamodb.get_paginator("scan").paginate(
            TableName=self.table, ProjectionExpression="image_url, analysis", Segment=segment, TotalSegments=segments
        )
        for page in pages:
            for item in page.get("Items", []):
                yield _cached_image(item).analysis

    def put(self, image: CachedImage) -> None:
        import numpy as np

        item = {
            "image_url": image.image_url,
            "analysis": json.dumps(image.analysis, sort_keys=True),
            "cached_at": int(time.time()),
            "image_hash": image.image_hash,
            "embedding": np.asarray(image.embedding, dtype="<f4").tobytes() if image.embedding is not None else None,
            "llm_response": image.llm_response or None,
            "analysis_model": image.analysis_model or None,
            "embedding_model": image.embedding_model or None,
        }
        self.dynamodb.put_item(TableName=self.table, Item=to_item(item))


def _cached_image(item: dict[str, Any]) -> CachedImage:
    values = from_item(item)
    # The analysis is JSON text (older items: a map); an unreadable one counts as empty.
    analysis: Any = values.get("analysis") or {}
    if isinstance(analysis, str):
        try:
            analysis = json.loads(analysis)
        except ValueError:
            analysis = {}
    embedding = values.get("embedding")
    if embedding is not None:
        import numpy as np

        # float32 bytes; older items: a list of numbers
        embedding = (
            np.frombuffer(embedding, dtype="<f4") if isinstance(embedding, bytes) else np.asarray(embedding, np.float32)
        )
    return CachedImage(
        image_url=values["image_url"],
        analysis=analysis if isinstance(analysis, dict) else {},
        image_hash=values.get("image_hash"),
        embedding=embedding,
        llm_response=values.get("llm_response"),
        analysis_model=values.get("analysis_model"),
        embedding_model=values.get("embedding_model"),
    )
