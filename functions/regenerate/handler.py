"""Real-estate visual-features migration: the Step Functions tasks (and direct invokes).

Event: `{"operation": "coverage" | "dry_run" | "backup" | "verify" | "plan" | "execute_batch" |
"rollback_batch" | "finish", ...}` (see listing_vision.realestate.migration.run_operation).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from listing_vision.observability import logger, metrics, tracer
from listing_vision.realestate.migration import run_operation


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return run_operation(event)
