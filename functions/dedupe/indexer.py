"""Images that reach a storefront bucket without the API (console, bulk and presigned uploads): each
S3 ObjectCreated record is deduped and indexed (where it lies; a presigned upload through its copy under
its content key, its form spent once), its outcome recorded as object tags. Each ObjectRemoved record
(a photo deleted in S3) removes the vector and record of the image stored there."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from listing_vision import aws
from listing_vision.embeddings.factory import get_embedder
from listing_vision.events import s3_removed
from listing_vision.jewelry.catalogue import Catalogue
from listing_vision.jewelry.dedupe import DedupeService
from listing_vision.jewelry.stores import CatalogueStores
from listing_vision.jewelry.uploads import UploadIndexer
from listing_vision.observability import logger, metrics, tracer


@aws.per_container
def indexer() -> UploadIndexer:
    return UploadIndexer(DedupeService(get_embedder(), CatalogueStores.from_settings()))


@aws.per_container
def catalogue() -> Catalogue:
    return Catalogue(CatalogueStores.from_settings())


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    created, removed = s3_removed(event)
    outcomes = (indexer().index_event(created) if created else []) + (catalogue().removed(removed) if removed else [])
    return {"outcomes": [outcome.__dict__ for outcome in outcomes]}
