"""Real-estate visual features: listing ingest and the migration's Step Functions tasks.

- S3 ObjectCreated on the uploads bucket: each listing document is ingested (analysed where not
  cached, split, indexed); see listing_vision.realestate.ingest.
- `{"operation": "coverage" | "dry_run" | "backup" | "verify" | "plan" | "execute_batch" |
  "rollback_batch" | "record_failure" | "finish", ...}`: see listing_vision.realestate.migration.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from listing_vision.embeddings.factory import get_embedder
from listing_vision.observability import logger, metrics, tracer
from listing_vision.realestate.ingest import ingest_object
from listing_vision.realestate.migration import run_operation
from listing_vision.s3_events import is_s3_event, object_records


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if is_s3_event(event):  # a listing document landed in the uploads bucket
        embedder = get_embedder()
        return {"outcomes": [ingest_object(bucket, key, embedder) for bucket, key in object_records(event)]}
    return run_operation(event)
