"""The Milvus collection of jewelry image embeddings (IP metric on normalised vectors).

One client per process: Milvus Lite allows one process per data directory, and a server
connection is expensive to set up, so the seed's new-client-per-request pattern is avoided.
"""

from __future__ import annotations

import threading
from pathlib import Path

from pymilvus import DataType, MilvusClient

from listing_vision.config import get_settings

_lock = threading.Lock()

HNSW_BUILD_PARAMS = {"M": 16, "efConstruction": 200}


def is_lite_uri(uri: str) -> bool:
    """Milvus Lite is addressed by a local data directory rather than a URL."""
    return "://" not in uri


_clients: dict[tuple[str, str | None], MilvusClient] = {}


def milvus_client() -> MilvusClient:
    """The process-wide Milvus client for the configured URI."""
    settings = get_settings()
    key = (settings.milvus_uri, settings.milvus_token)
    with _lock:
        if key not in _clients:
            if is_lite_uri(settings.milvus_uri):
                Path(settings.milvus_uri).mkdir(parents=True, exist_ok=True)
            _clients[key] = MilvusClient(uri=settings.milvus_uri, token=settings.milvus_token or "")
        return _clients[key]


def close_clients() -> None:
    """Close every cached client (the local stack on shutdown; tests between stacks)."""
    with _lock:
        for client in _clients.values():
            client.close()
        _clients.clear()


def ensure_collection(client: MilvusClient, name: str, dim: int) -> None:
    """Create the collection and its HNSW/IP index if missing, then load it (search needs it loaded)."""
    if not client.has_collection(name):
        schema = client.create_schema(auto_id=True, enable_dynamic_field=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("embedding", DataType.FLOAT_VECTOR, dim=dim)
        schema.add_field("path", DataType.VARCHAR, max_length=2048)
        schema.add_field("website", DataType.VARCHAR, max_length=32)
        schema.add_field("sha256", DataType.VARCHAR, max_length=64)
        schema.add_field("created_at", DataType.INT64)
        index = client.prepare_index_params()
        index.add_index(field_name="embedding", index_type="HNSW", metric_type="IP", params=HNSW_BUILD_PARAMS)
        client.create_collection(name, schema=schema, index_params=index)
    client.load_collection(name)
