"""A jewelry catalogue of a test's own on the local engines: a bucket (as blysk's), a catalogue
table and a Milvus collection made for it, handed to the services as their stores. Tests that
count everything in the stores use it, so other tests' uploads cannot blur their figures.

Its leases run on a clock the test may move forward (`Clock`): a crash test lets a dead run's lease
run out with `clock.advance(...)` instead of sleeping through it. The stores, every service built
over them and the reconciler all read that one clock, so they agree on whose lease has passed."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from listing_vision import aws
from listing_vision.api.access import Caller
from listing_vision.config import get_settings
from listing_vision.embeddings.factory import get_embedder
from listing_vision.jewelry import storage
from listing_vision.jewelry.claims import ContentClaims
from listing_vision.jewelry.dedupe import DedupeService, Upload
from listing_vision.jewelry.reconcile import Reconciler
from listing_vision.jewelry.stores import CatalogueStores
from listing_vision.jewelry.upload_claims import UploadClaims
from listing_vision.jewelry.uploads import UploadIndexer
from listing_vision.jewelry.vector_index import VectorIndex, milvus_client
from listing_vision.resources import TABLES
from local.provision import table_definition
from tests.images import fresh_image

CALLER = Caller("isolated-catalogue", frozenset({"blysk"}))


class Clock:
    """Real time plus an offset the test adds to: time still passes while a run works (a live run's
    lease holds as it would), and `advance` moves past a lease without waiting it out."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@dataclass
class Catalogue:
    stores: CatalogueStores
    bucket: str
    clock: Clock  # the stores' (and so the reconciler's): `advance` it to let a dead run's leases run out

    def dedupe(self, stores: CatalogueStores | None = None) -> DedupeService:
        return DedupeService(get_embedder(), stores or self.stores)

    def reconciler(self) -> Reconciler:
        return Reconciler(UploadIndexer(self.dedupe()))

    def store(self, seed: int) -> tuple[bytes, str]:
        data = fresh_image(seed)
        result = self.dedupe().check_and_store(Upload(data, f"{seed}.jpg", "blysk"), caller=CALLER)
        assert result.stored is not None
        return data, result.stored.s3_uri


@contextmanager
def isolated_catalogue(lease_s: int | None = None) -> Iterator[Catalogue]:
    suffix = uuid.uuid4().hex[:8]
    bucket, table, collection = f"catalogue-{suffix}", f"catalogue-{suffix}", f"catalogue_{suffix}"
    aws.client("s3").create_bucket(Bucket=bucket)
    # the catalogue table as declared (its indexes too: GET /images queries one)
    (spec,) = [spec for spec in TABLES if spec.name_setting == "catalogue_table"]
    aws.client("dynamodb").create_table(TableName=table, BillingMode="PAY_PER_REQUEST", **table_definition(spec))
    vectors = VectorIndex(collection)
    vectors.ensure_collection(get_settings().embedding_dim, get_embedder().model_signature)
    settings = get_settings().model_copy(update={"storefronts": {**get_settings().storefronts, "blysk": bucket}})
    images = storage.ImageStore(aws.client("s3"), settings)
    try:
        clock = Clock()
        claims = ContentClaims(table=table, lease_s=lease_s, clock=clock)
        uploads = UploadClaims(table=table, lease_s=lease_s, clock=clock)
        yield Catalogue(CatalogueStores(vectors, images, claims, uploads), bucket, clock)
    finally:
        milvus_client().drop_collection(collection)
