"""Catalogue-image generation: everything it may touch, in one place.

Functions: `generate` (the API: records jobs, invokes the worker, reports jobs) and
`generate-worker` (invoked asynchronously; retried once, failures to its queue), and
`webhook-delivery` (an EventBridge rule on the jobs bus: each finished run POSTed to the storefront's
webhooks; the rule retries a failed invoke, then sends the event to the function's failure queue,
also Lambda's on-failure destination). They reach: the
storefront buckets (the source photos, read only), the generated bucket (outputs and ZIPs), the
jobs table, the idempotency table (the API's `Idempotency-Key` records), the rate-limit table (the
worker's shared token bucket) and OpenAI's key secret.
"""

from __future__ import annotations

from aws_cdk import Duration, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from constructs import Construct

from functions.triggers import EVENT_TRIGGERS, event_pattern
from infra.constructs.platform import IDEMPOTENCY, Platform, allow
from infra.constructs.service_function import ServiceFunction
from listing_vision.resources import JOBS_BY_WEBSITE, WEBHOOKS_BY_OWNER


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
        # The shared token bucket, the clients' turns at it (read to register) and their daily edit quotas
        allow(worker, ["dynamodb:GetItem", "dynamodb:UpdateItem"], [platform.table_arn("rate_limit_table")])
        platform.read_secret(worker, "openai")
        self.webhooks(platform, api)

    def webhooks(self, platform: Platform, api: ServiceFunction) -> None:
        """PUT/GET/DELETE /webhooks (the API) and their delivery: the webhooks table, each registration's
        secret as an SSM SecureString under the stage's path (the account's aws/ssm key: no KMS grant)."""
        delivery = platform.function(self, "webhook-delivery")
        self.functions["webhook-delivery"] = delivery
        table = platform.table_arn("webhooks_table")
        by_owner = f"{table}/index/{WEBHOOKS_BY_OWNER.name}"
        prefix = f"/{platform.config.name('webhooks')}"
        parameters = Stack.of(self).format_arn(service="ssm", resource="parameter", resource_name=f"{prefix[1:]}/*")
        why = "Each registration's secret is a parameter of its own under the stage's webhooks path."
        for function in (api, delivery):
            function.function.add_environment("WEBHOOK_SECRETS_PREFIX", prefix)
        allow(api, ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:DeleteItem"], [table])
        allow(api, ["dynamodb:Query"], [by_owner])  # GET /webhooks/deliveries
        allow(api, ["ssm:PutParameter", "ssm:DeleteParameter"], [parameters], why)
        allow(delivery, ["dynamodb:Query"], [by_owner])  # the storefront's registrations
        allow(delivery, ["dynamodb:PutItem", "dynamodb:UpdateItem"], [table])  # each delivery's record
        allow(delivery, ["ssm:GetParameter"], [parameters], why)
        for trigger in EVENT_TRIGGERS:
            if trigger.function != "webhook-delivery":
                continue
            pattern = event_pattern(trigger)
            assert delivery.failure_queue is not None  # an asynchronous function has one
            events.Rule(
                self,
                "".join(part.capitalize() for part in trigger.rule.split("-")),
                rule_name=platform.config.name(trigger.rule),
                event_bus=platform.storage.buses[trigger.bus_setting],
                event_pattern=events.EventPattern(source=pattern["source"], detail_type=pattern["detail-type"]),
                targets=[
                    targets.LambdaFunction(
                        delivery.alias,
                        dead_letter_queue=delivery.failure_queue,
                        retry_attempts=trigger.retry_attempts,
                        max_event_age=Duration.seconds(trigger.max_event_age_s),
                    )
                ],
            )
