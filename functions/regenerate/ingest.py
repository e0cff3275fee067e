"""Listing documents dropped into the uploads bucket: each S3 ObjectCreated record is ingested
(analysed where not cached, split, indexed); see listing_vision.realestate.ingest."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from listing_vision import aws
from listing_vision.events import s3_objects
from listing_vision.observability import logger, metrics, tracer
from listing_vision.realestate.ingest import ListingIngest, ingest_object


@aws.per_container
def listing_ingest() -> ListingIngest:
    return ListingIngest.from_settings()


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return {"outcomes": [ingest_object(bucket, key, listing_ingest()) for bucket, key in s3_objects(event)]}
