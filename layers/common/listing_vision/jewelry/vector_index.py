"""The Milvus collection of jewelry image embeddings (IP metric on normalised vectors).

A collection holds the vectors of one model: it records the model's signature (model bytes and
preprocessing, `clip_onnx.model_signature`) as its `embedding.model` property when provisioning
makes it, and `require` refuses a function whose model differs (`ModelMismatch`). Changing the
model is a backfill into a new collection, then a switch (`MILVUS_COLLECTION`), never mixed vectors.

One client per process: Milvus Lite allows one process per data directory, and a server
connection is expensive to set up, so no client is created per request. pymilvus (which imports
pandas: over a second) is imported with the first client, not with this module.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from listing_vision.config import get_settings
from listing_vision.errors import ModelMismatch, NotProvisioned, missing_store_as_not_provisioned
from listing_vision.redaction import register_secret

if TYPE_CHECKING:
    from pymilvus import MilvusClient

_lock = threading.Lock()

HNSW_BUILD_PARAMS = {"M": 16, "efConstruction": 200}
MODEL_PROPERTY = "embedding.model"  # the collection property naming the model of its vectors


def is_lite_uri(uri: str) -> bool:
    """Milvus Lite is addressed by a local data directory rather than a URL."""
    return "://" not in uri


_clients: dict[tuple[str, str], MilvusClient] = {}


def milvus_client() -> MilvusClient:
    """The process-wide Milvus client for the configured URI and token. The token is read on every
    call (aws.secret keeps it an hour), so a rotated token gets a new client."""
    settings = get_settings()
    token = _token()
    key = (settings.milvus_client_uri, token)
    with _lock:
        if key not in _clients:
            from pymilvus import MilvusClient

            if is_lite_uri(settings.milvus_client_uri):
                Path(settings.milvus_client_uri).mkdir(parents=True, exist_ok=True)
                # Milvus Lite returns no session timestamp to a query iterator, and pymilvus warns on
                # every `rows()` that it falls back to its own clock: what Lite always does, and no less
                # consistent for a process that is Lite's only client. Kept for a server, where it means something.
                logging.getLogger("pymilvus.client.iterator.query_iterator").addFilter(_lite_has_no_session_ts)
            _clients[key] = MilvusClient(uri=settings.milvus_client_uri, token=token)
        return _clients[key]


def _lite_has_no_session_ts(record: logging.LogRecord) -> bool:
    return not record.getMessage().startswith("failed to get mvccTs from milvus server")


def _token() -> str:
    settings = get_settings()
    token = settings.milvus_token
    if not token and settings.milvus_token_secret:
        from listing_vision import aws

        token = aws.secret(settings.milvus_token_secret, max_age=3600)
    register_secret(token)
    return token or ""


def close_clients() -> None:
    """Close every cached client (the local stack on shutdown; tests between stacks)."""
    with _lock:
        for client in _clients.values():
            client.close()
        _clients.clear()


@dataclass(frozen=True)
class Hit:
    id: int
    score: float  # inner product of unit vectors: cosine similarity
    path: str
    website: str
    sha256: str = ""

    @property
    def distance(self) -> float:
        return 1.0 - self.score


def vector_id(website: str, sha256: str) -> int:
    """A row's primary key, from what it describes: the same photo in the same storefront always has
    the same id (64 bits of SHA-256 of both, as a non-negative INT64). A write repeated after a crash
    replaces its own row, and ids never depend on a counter a crashed Milvus could hand out again."""
    digest = hashlib.sha256(f"{website}#{sha256}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


class AutoIdCollection(RuntimeError):
    """A collection made before rows were keyed by content: its ids are Milvus's own."""


def collection_missing(error: BaseException) -> bool:
    """Milvus's answer when the collection does not exist (code 100: Lite says "does not exist", a
    server "collection not found")."""
    if not type(error).__module__.startswith("pymilvus"):
        return False
    message = str(getattr(error, "message", error)).lower()
    return getattr(error, "code", None) == 100 or "collection not found" in message


@missing_store_as_not_provisioned(collection_missing, "Milvus collection")
class VectorIndex:
    """One Milvus collection of catalogue embeddings. The client comes from `connect` on every call
    (`milvus_client` by default), so a rotated token takes effect without rebuilding the index."""

    def __init__(self, collection: str, connect: Callable[[], MilvusClient] = lambda: milvus_client()):
        self.collection = collection
        self.connect = connect

    @classmethod
    def from_settings(cls) -> VectorIndex:
        return cls(get_settings().milvus_collection)

    @property
    def client(self) -> MilvusClient:
        return self.connect()

    def ensure_collection(self, dim: int, model: str) -> str:
        """Create the collection for `model`'s vectors and its HNSW/IP index if missing, then load it
        (search needs it loaded); returns "created", "loaded", "model recorded" (a collection made before
        collections recorded their model: it is taken to hold this model's vectors), or "unchanged"
        when it was already there, indexed, loaded and recorded. A collection of another model's
        vectors is refused with the way out."""
        client, name = self.client, self.collection
        if client.has_collection(name) and client.describe_collection(name).get("auto_id"):
            raise AutoIdCollection(
                f"The Milvus collection {name!r} has auto ids (made by an earlier version). Index the buckets "
                "into a new collection with the backfill (--collection <new name>), then set the stage's "
                "milvus_collection to it."
            )
        recorded = self.model() if client.has_collection(name) else None
        if recorded is not None and recorded != model:
            raise self._mismatch(recorded, model)
        if not client.has_collection(name):
            from pymilvus import DataType

            schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
            schema.add_field("id", DataType.INT64, is_primary=True)
            schema.add_field("embedding", DataType.FLOAT_VECTOR, dim=dim)
            schema.add_field("path", DataType.VARCHAR, max_length=2048)
            schema.add_field("website", DataType.VARCHAR, max_length=32)
            schema.add_field("sha256", DataType.VARCHAR, max_length=64)
            schema.add_field("created_at", DataType.INT64)
            index = client.prepare_index_params()
            index.add_index(field_name="embedding", index_type="HNSW", metric_type="IP", params=HNSW_BUILD_PARAMS)
            client.create_collection(name, schema=schema, index_params=index, properties={MODEL_PROPERTY: model})
            client.load_collection(name)
            return "created"
        outcome = "unchanged"
        if recorded is None:
            client.alter_collection_properties(name, properties={MODEL_PROPERTY: model})
            outcome = "model recorded"
        state = client.get_load_state(name).get("state")
        if str(state).rsplit(".", 1)[-1] != "Loaded":
            client.load_collection(name)
            outcome = "loaded" if outcome == "unchanged" else outcome
        return outcome

    def exists(self) -> bool:
        return bool(self.client.has_collection(self.collection))

    def model(self) -> str | None:
        """The signature of the model whose vectors this collection holds (None: not recorded)."""
        properties = self.client.describe_collection(self.collection).get("properties") or {}
        return properties.get(MODEL_PROPERTY)

    def require(self, model: str | None = None) -> None:
        """Raise `NotProvisioned` unless the collection exists, and, given a model signature,
        `ModelMismatch` unless the collection holds that model's vectors (a function checks before
        it searches or writes: `DedupeService.require_ready`)."""
        if not self.exists():
            raise NotProvisioned(
                f"The Milvus collection {self.collection!r} does not exist: provisioning has not run in this stage.",
                details={"store": "Milvus collection", "name": self.collection},
            )
        if model is None:
            return
        recorded = self.model()
        if recorded is None:
            raise NotProvisioned(
                f"The Milvus collection {self.collection!r} does not record the model of its vectors: "
                "the stage's provisioning has not run since the upgrade.",
                details={"store": "Milvus collection", "name": self.collection},
            )
        if recorded != model:
            raise self._mismatch(recorded, model)

    def _mismatch(self, recorded: str, model: str) -> ModelMismatch:
        return ModelMismatch(
            f"The Milvus collection {self.collection!r} holds vectors of model {recorded}, and this stage's "
            f"embedding model is {model}: their vectors cannot be compared. Backfill the catalogue into a new "
            "collection with this model (backfill --collection <new name> --model <file>), then switch the "
            "stage to it (milvus_collection).",
            details={"collection": self.collection, "collection_model": recorded, "model": model},
        )

    def find_exact(self, sha256: str, website: str) -> list[dict[str, Any]]:
        """Rows already indexed for these exact bytes in this storefront."""
        # Both values are validated upstream (hex digest, storefront enum); quoting is still applied.
        rows = self.client.query(
            self.collection,
            filter=f'sha256 == "{sha256}" and website == "{website}"',
            output_fields=["id", "path"],
            consistency_level="Strong",
        )
        return list(rows)

    def ensure_vector(self, vector: np.ndarray, path: str, website: str, sha256: str) -> int:
        """Write this content's row under its own id (`vector_id`): a retried request after a crash
        replaces it rather than adding a second row; returns the id."""
        row = {
            "id": vector_id(website, sha256),
            "embedding": np.asarray(vector, dtype=np.float32).tolist(),
            "path": path,
            "website": website,
            "sha256": sha256,
            "created_at": int(time.time()),
        }
        self.client.upsert(self.collection, [row])
        return int(row["id"])

    def search(self, vector: np.ndarray, *, website: str | None, limit: int, ef: int) -> list[Hit]:
        """Nearest neighbours by inner product, within one storefront or across all (website=None)."""
        results = self.client.search(
            self.collection,
            data=[np.asarray(vector, dtype=np.float32).tolist()],
            limit=limit,
            filter=f'website == "{website}"' if website else "",
            search_params={"metric_type": "IP", "params": {"ef": max(ef, limit)}},
            output_fields=["path", "website", "sha256"],
            consistency_level="Strong",  # every insert acknowledged before the search is seen (dedupe.py's rule)
        )
        return [
            Hit(
                int(hit["id"]),
                float(hit["distance"]),
                hit["entity"]["path"],
                hit["entity"]["website"],
                hit["entity"].get("sha256", ""),
            )
            for hit in results[0]
        ]

    def rows(self, website: str, page: int = 1000) -> Iterator[Hit]:
        """Every row of a storefront (id, path, sha256; no vectors), a page at a time."""
        iterator = self.client.query_iterator(
            self.collection,
            batch_size=page,
            filter=f'website == "{website}"',
            output_fields=["path", "website", "sha256"],
            consistency_level="Strong",
        )
        try:
            while batch := iterator.next():
                for row in batch:
                    yield Hit(int(row["id"]), 0.0, row["path"], row["website"], row.get("sha256", ""))
        finally:
            iterator.close()

    def at_path(self, path: str, website: str) -> list[Hit]:
        """A storefront's rows indexed at this S3 location (no vectors). The path is quoted as a string
        literal of Milvus's expressions (a key may hold quotes and backslashes; Milvus Lite has no bound
        filter parameters); a key with control characters, which no literal holds, is looked for among
        the storefront's rows."""
        if any(ord(char) < 0x20 for char in path):
            return [row for row in self.rows(website) if row.path == path]
        literal = '"' + path.replace("\\", "\\\\").replace('"', '\\"') + '"'
        rows = self.client.query(
            self.collection,
            filter=f'path == {literal} and website == "{website}"',
            output_fields=["path", "website", "sha256"],
            consistency_level="Strong",
        )
        return [Hit(int(r["id"]), 0.0, r["path"], r["website"], r.get("sha256", "")) for r in rows]

    def has(self, row_id: int) -> bool:
        rows = self.client.query(
            self.collection, filter=f"id == {int(row_id)}", output_fields=["id"], consistency_level="Strong"
        )
        return bool(rows)

    def delete(self, vector_id: int) -> None:
        """Remove one row (a near-duplicate that lost the race rolls its vector back)."""
        self.client.delete(self.collection, ids=[vector_id])

    def count(self) -> int:
        rows = self.client.query(self.collection, filter="", output_fields=["count(*)"], consistency_level="Strong")
        return int(rows[0]["count(*)"])
