"""Catalogue-image generation: everything it may touch, in one place.

Functions: `generate` (the API: records jobs, invokes the worker, reports jobs) and
`generate-worker` (invoked asynchronously; retried once, failures to its queue). They reach: the
storefront buckets (the source photos, read only), the generated bucket (outputs and ZIPs), the
jobs table, the idempotency table (the API's `Idempotency-Key` records), the rate-limit table (the
worker's shared token bucket) and OpenAI's key secret.
"""

from __future__ import annotations

from constructs import Construct

from infra.constructs.platform import IDEMPOTENCY, Platform, allow
from infra.constructs.service_function import ServiceFunction
from listing_vision.resources import JOBS_BY_WEBSITE


class Generation(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, platform: Platform) -> None:
        super().__init__(scope, construct_id)
        api = platform.function(self, "generate")
        worker = platform.function(self, "generate-worker")
        self.functions: dict[str, ServiceFunction] = {"generate": api, "generate-worker": worker}
        sources = [bucket.arn_for_objects("*") for bucket in platform.storefront_buckets()]
        outputs = platform.bucket("generated_bucket").arn_for_objects("*")
        jobs = platform.table_arn("jobs_table")
        jobs_by_website = f"{jobs}/index/{JOBS_BY_WEBSITE.name}"
        bus = platform.storage.buses["job_events_bus"].event_bus_arn
        sources_why = "A job's source is any photo of the storefront buckets, under any key."
        outputs_why = "A job's outputs go under <website>/<job id>/ in the generated bucket, ids made per job."
        # The API checks the source exists and presigns the source and the outputs.
        allow(api, ["s3:GetObject"], [*sources, outputs], f"{sources_why} {outputs_why}")
        # A missing source is a 404 source_not_found: S3 answers it 404 only to a caller that may list, else 403.
        allow(api, ["s3:ListBucket"], [bucket.bucket_arn for bucket in platform.storefront_buckets()])
        allow(api, ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"], [jobs])
        allow(api, ["dynamodb:Query"], [jobs_by_website])  # GET /jobs: a storefront's, newest first
        # A cancel, or a run ended past its deadline, announces the job: its write wins, then one event
        allow(api, ["events:PutEvents"], [bus])
        allow(api, IDEMPOTENCY, [platform.table_arn("idempotency_table")])
        # The worker's alias (name:live): the invoke and its grant name the released version, never $LATEST
        allow(api, ["lambda:InvokeFunction"], [worker.alias.function_arn])
        api.function.add_environment("GENERATE_WORKER_FUNCTION", worker.alias.function_name)
        allow(worker, ["s3:GetObject"], [*sources, outputs], f"{sources_why} {outputs_why}")
        allow(worker, ["s3:PutObject"], [outputs], outputs_why)
        # A retry looks for the image its dead attempt stored (a paid edit, not made twice): a missing
        # one must read 404, which S3 answers only to a caller that may list
        allow(worker, ["s3:ListBucket"], [platform.bucket("generated_bucket").bucket_arn])
        allow(worker, ["dynamodb:GetItem", "dynamodb:UpdateItem"], [jobs])
        allow(worker, ["events:PutEvents"], [bus])  # each run it ends, once
        allow(worker, ["dynamodb:UpdateItem"], [platform.table_arn("rate_limit_table")])
        platform.read_secret(worker, "openai")
