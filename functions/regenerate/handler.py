"""The visual-features migration's Step Functions tasks: each event is parsed into its typed task
and run (listing_vision.realestate.migration_tasks)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from listing_vision import aws
from listing_vision.events import parse_event
from listing_vision.observability import logger, metrics, tracer
from listing_vision.realestate.migration import Migration
from listing_vision.realestate.migration_tasks import MigrationTask, run_task


@aws.per_container
def migration() -> Migration:
    return Migration.from_settings()


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    task = parse_event(event, MigrationTask)  # a malformed event is refused before any store is built
    return run_task(task, migration())
