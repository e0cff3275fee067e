"""The jewelry catalogue's stores, built once and handed to its services (handler → service → store).

- `vectors`: the Milvus collection of embeddings (`vector_index.VectorIndex`);
- `images`: the storefront buckets and the generated images' bucket (`storage.ImageStore`);
- `claims`: the catalogue table, one record per stored photo (`claims.ContentClaims`);
- `uploads`: the same table's presigned upload ids, each claimed once (`upload_claims.UploadClaims`).

A handler builds them from the settings (`from_settings`); a test can build them over other stores.
Generation needs only the buckets and its jobs table (`jobs.JobStore`), and is handed those: its
functions carry no Milvus client.
"""

from __future__ import annotations

from dataclasses import dataclass

from listing_vision.jewelry.claims import ContentClaims
from listing_vision.jewelry.storage import ImageStore
from listing_vision.jewelry.upload_claims import UploadClaims
from listing_vision.jewelry.vector_index import VectorIndex


@dataclass(frozen=True)
class CatalogueStores:
    vectors: VectorIndex
    images: ImageStore
    claims: ContentClaims
    uploads: UploadClaims

    @classmethod
    def from_settings(cls) -> CatalogueStores:
        return cls(VectorIndex.from_settings(), ImageStore.from_settings(), ContentClaims(), UploadClaims())
