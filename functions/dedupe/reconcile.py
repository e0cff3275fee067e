"""The catalogue's S3 objects, records and vectors compared per storefront and repaired
(listing_vision.jewelry.reconcile); hourly on AWS, at the local stack's start, and `make reconcile`."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from listing_vision import aws
from listing_vision.embeddings.factory import get_embedder
from listing_vision.events import parse_event
from listing_vision.jewelry.dedupe import DedupeService
from listing_vision.jewelry.reconcile import Reconciler, ReconcileRequest, reconcile_all
from listing_vision.jewelry.stores import CatalogueStores
from listing_vision.jewelry.uploads import UploadIndexer
from listing_vision.observability import logger, metrics, tracer


@aws.per_container
def reconciler() -> Reconciler:
    return Reconciler(UploadIndexer(DedupeService(get_embedder(), CatalogueStores.from_settings())))


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return reconcile_all(reconciler(), parse_event(event, ReconcileRequest))
