"""Real-estate visual-features migration steps (Step Functions tasks) and listing-upload ingest."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from listing_vision.errors import InvalidRequest, NotImplementedYet
from listing_vision.observability import logger, metrics, tracer

OPERATIONS = ("plan", "coverage", "dry_run", "backup", "execute", "verify", "rollback")


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    operation = event.get("operation")
    if operation not in OPERATIONS:
        raise InvalidRequest(
            f"Unknown operation {operation!r}; expected one of {', '.join(OPERATIONS)}.",
            code="unknown_operation",
        )
    raise NotImplementedYet(f"Migration operation {operation!r} is not built yet (issue 7).")
