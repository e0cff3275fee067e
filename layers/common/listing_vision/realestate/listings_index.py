"""The OpenSearch index of listings (id = zpid): client and mapping."""

from __future__ import annotations

import threading
from typing import Any

from opensearchpy import OpenSearch

from listing_vision.config import get_settings

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
    url = get_settings().opensearch_url
    with _lock:
        if url not in _clients:
            _clients[url] = OpenSearch(
                hosts=[url],
                timeout=30,
                max_retries=3,
                retry_on_status=(429, 502, 503, 504),
                retry_on_timeout=True,
            )
        return _clients[url]


def ensure_index(client: OpenSearch, name: str) -> None:
    """Create the listings index with its mapping if missing (idempotent)."""
    if not client.indices.exists(index=name):
        client.indices.create(index=name, body={"mappings": LISTINGS_MAPPING})
