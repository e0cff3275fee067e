"""The generation worker, invoked asynchronously with a `RunJob` event: renders one run of a job
(listing_vision.jewelry.generation_worker)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from listing_vision import aws
from listing_vision.events import parse_event
from listing_vision.jewelry.generation_worker import GenerationWorker
from listing_vision.jewelry.jobs import JobStore, RunJob
from listing_vision.jewelry.storage import ImageStore
from listing_vision.observability import logger, metrics, tracer

LEASE_MARGIN_S = 30.0  # a retry of a timed-out run may take it over this long after its timeout


@aws.per_container
def worker() -> GenerationWorker:
    return GenerationWorker(JobStore(), ImageStore.from_settings())


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    job: RunJob = parse_event(event, RunJob)
    lease_s = context.get_remaining_time_in_millis() / 1000 + LEASE_MARGIN_S
    # Lambda retries an asynchronous event with the same request id: the retry of a worker that
    # died takes over its claim at once
    return worker().run_job(job.job_id, job.run_id, lease_s, holder=context.aws_request_id)
