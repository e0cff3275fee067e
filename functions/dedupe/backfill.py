"""One page of a storefront bucket deduped and indexed (`python -m listing_vision.jewelry.backfill
--via-lambda` sends one `BackfillPage` event per page)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from listing_vision import aws
from listing_vision.embeddings.factory import get_embedder
from listing_vision.events import parse_event
from listing_vision.jewelry.backfill import BackfillPage, backfill_page
from listing_vision.jewelry.dedupe import DedupeService
from listing_vision.jewelry.stores import CatalogueStores
from listing_vision.jewelry.uploads import UploadIndexer
from listing_vision.observability import logger, metrics, tracer


@aws.per_container
def indexer() -> UploadIndexer:
    return UploadIndexer(DedupeService(get_embedder(), CatalogueStores.from_settings()))


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    page: BackfillPage = parse_event(event, BackfillPage)
    return backfill_page(indexer(), page.website, page.start_after, page.page_size, page.prefix)
