"""Provisioning, as a function: what the code expects to exist beyond what CloudFormation creates
(listing_vision.provisioning). The deploy runs it as a CDK trigger once the stores and the
functions exist (infra/constructs/provisioning.py); the local stack invokes it at each start.
Rerun it by hand with `aws lambda invoke --function-name listing-vision-<stage>-provision out.json`.

Its answer is each step's outcome ("created", "unchanged", ...); a failure fails the deploy."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from listing_vision.observability import logger, metrics, tracer
from listing_vision.provisioning import provision


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    report = provision()
    logger.info("provisioned", extra={"steps": report})
    return {"provisioned": report}
