"""Real-estate visual features: listing ingest and the migration's Step Functions tasks.

- S3 ObjectCreated on the uploads bucket: each listing document is ingested (analysed where not
  cached, split, indexed); see listing_vision.realestate.ingest.
- Any other event is a migration task, parsed into its typed model; see
  listing_vision.realestate.migration_tasks.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from listing_vision.embeddings.factory import get_embedder
from listing_vision.events import is_s3_event, parse_event, s3_objects
from listing_vision.observability import logger, metrics, tracer
from listing_vision.realestate.ingest import ingest_object
from listing_vision.realestate.migration_tasks import MigrationTask, run_task


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if is_s3_event(event):  # a listing document landed in the uploads bucket
        embedder = get_embedder()
        return {"outcomes": [ingest_object(bucket, key, embedder) for bucket, key in s3_objects(event)]}
    return run_task(parse_event(event, MigrationTask))
