"""The visual-features migration as a Step Functions state machine.

One state machine, console-friendly input: `{"operation": "coverage" | "dry_run" | "classify_phrases", ...}`
runs that operation in one task; `{"operation": "execute" | "rollback" | "backup" | "verify", ...}` runs
Plan (writes the batch manifest to S3) → a DISTRIBUTED Map reading it (S3 ItemReader; one child
execution per batch of zpids, MaxConcurrency, retries with backoff on throttling; results to S3)
→ Verify (adds up the parts the batches checked; for a backup: one JSONL part per batch, then the
manifest of their checksums; `verify` on its own: each batch checks its part, writing nothing).

A batch that still fails after its retries is recorded (with its error, for Verify to report) and
then fails its child execution, which is what the Map's ToleratedFailurePercentage counts: up to
that share of failed batches the run carries on and Verify reports them; beyond it the Map stops
starting batches and the execution fails (States.ExceedToleratedFailureThreshold), which the
`MigrationFailed` alarm sees. A rerun skips what was migrated.
Used as is by the stack and, synthesized, by the local stack (local/workflow.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Duration
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from infra.nag import acknowledge, nag_json, nag_resource
from listing_vision.resources import MIGRATION_STATE_MACHINE

STATE_MACHINE_NAME = MIGRATION_STATE_MACHINE
# Errors worth retrying: the library raises Throttled when DynamoDB/OpenSearch push back past
# their clients' own retries, BatchFailed when some listings of a batch could not be written.
# A function that died between two of its writes (killed, out of memory, timed out) is answered
# Runtime.ExitError, Sandbox.Timedout or Lambda.Unknown, and an invoke that outlived its client
# Lambda.ClientExecutionTimeoutException: a batch is resumable (migrated listings are skipped, its
# record is rewritten whole), so its retry completes what the dead attempt left.
FUNCTION_DIED = [
    "Runtime.ExitError",
    "Sandbox.Timedout",
    "Lambda.Unknown",
    "Lambda.ClientExecutionTimeoutException",
]
RETRYABLE = [
    "Throttled",
    "BatchFailed",
    "Lambda.TooManyRequestsException",
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    *FUNCTION_DIED,
]


# What an execution's input may ask for: fanned out over batches (Plan, Map, Verify), or run in one task.
FAN_OUT_OPERATIONS = ("execute", "rollback", "backup", "verify")
SINGLE_OPERATIONS = ("coverage", "dry_run", "classify_phrases")


@dataclass(frozen=True)
class MigrationOptions:
    max_concurrency: int = 10
    tolerated_failure_percentage: int = 5
    batch_size: int = 100  # listings per Map item, unless the execution's input says otherwise
    bulk_size: int = 100  # partial updates per _bulk request of a batch
    batch_retry_attempts: int = 4
    retry_interval_s: int = 2
    timeout_hours: int = 6


class VisualFeaturesMigration(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        function: lambda_.IFunction,  # the migration function's alias (CDK grants invoking exactly it)
        artifacts: s3.IBucket,
        options: MigrationOptions | None = None,
        name: str | None = STATE_MACHINE_NAME,
        logs_enabled: bool = True,
    ) -> None:
        super().__init__(scope, construct_id)
        # ResultWriterV2 renders only with this flag (aws-cdk-lib 2.275); set here so every synth has it.
        self.node.set_context("@aws-cdk/aws-stepfunctions:useDistributedMapResultWriterV2", True)
        options = options or MigrationOptions()

        def invoke(
            state_id: str, payload: sfn.TaskInput | None = None, result_path: str | None = None
        ) -> tasks.LambdaInvoke:
            task = tasks.LambdaInvoke(
                self,
                state_id,
                lambda_function=function,
                payload=payload,
                payload_response_only=True,
                retry_on_service_exceptions=False,
                result_path=result_path,
            )
            task.add_retry(
                errors=RETRYABLE,
                interval=Duration.seconds(options.retry_interval_s),
                max_attempts=options.batch_retry_attempts,
                backoff_rate=2.0,
                jitter_strategy=sfn.JitterType.FULL,
            )
            return task

        # Console requests and the manifest's batch items already name their operation: the state is
        # the payload (no Parameters). The function parses every payload into its typed task
        # (listing_vision.realestate.migration_tasks).
        single = invoke("Run operation")
        plan = invoke(
            "Plan",
            sfn.TaskInput.from_object(
                {
                    "operation": "plan",
                    "request": sfn.JsonPath.object_at("$"),
                    # the stage's sizing (infra/migration_sizing.py), which an execution's own batch_size overrides
                    "batch_size": options.batch_size,
                    "bulk_size": options.bulk_size,
                    # the run's lease is held by this execution while it runs (one run at a time)
                    "execution": sfn.JsonPath.execution_id,
                }
            ),
            result_path="$.plan",
        )

        batch = invoke("Migrate batch")
        # A batch that still fails after its retries is recorded as failed (with the error, for Verify),
        # then fails its child execution: the Map's tolerated failure percentage counts failed children.
        reported = invoke(
            "Record failed batch",
            sfn.TaskInput.from_object({"operation": "record_failure", "request": sfn.JsonPath.object_at("$")}),
        )
        failed = sfn.Fail(self, "Batch failed", error="BatchFailed", cause="The batch failed every retry (recorded).")
        batch.add_catch(reported.next(failed), errors=["States.ALL"], result_path="$.error")
        fan_out = sfn.DistributedMap(
            self,
            "Fan out batches",
            item_reader=sfn.S3JsonItemReader(bucket=artifacts, key=sfn.JsonPath.string_at("$.plan.manifest.key")),
            max_concurrency=options.max_concurrency,
            tolerated_failure_percentage=options.tolerated_failure_percentage,
            # Static prefix: Step Functions adds the map run's id beneath it (and moto resolves a
            # JsonPath prefix against the Map's output rather than its input).
            result_writer_v2=sfn.ResultWriterV2(bucket=artifacts, prefix="migrations/results"),
            result_path="$.batches",
        )
        fan_out.item_processor(batch)
        verify = invoke(
            "Verify",
            sfn.TaskInput.from_object(
                {
                    "operation": "finish",
                    "request": sfn.JsonPath.object_at("$"),
                }
            ),
        )

        # The execution's input is a person's (the console's): only the operations they may start reach
        # the function; the tasks' own operations (plan, a batch, finish) are the state machine's alone.
        def one_of(operations: tuple[str, ...]) -> sfn.Condition:
            return sfn.Condition.or_(*(sfn.Condition.string_equals("$.operation", name) for name in operations))

        refused = sfn.Fail(
            self,
            "Not an operation",
            error="InvalidRequest",
            cause="The input is a JSON object whose operation is one of: "
            + ", ".join(FAN_OUT_OPERATIONS + SINGLE_OPERATIONS)
            + " (docs/migration.md).",
        )
        operation = (
            sfn.Choice(self, "Operation")
            .when(one_of(FAN_OUT_OPERATIONS), plan.next(fan_out).next(verify))
            .when(one_of(SINGLE_OPERATIONS), single)
            .otherwise(refused)
        )
        # Compared only once present and a string: Step Functions fails a comparison of a missing field
        choice = (
            sfn.Choice(self, "Has an operation")
            .when(
                sfn.Condition.and_(sfn.Condition.is_present("$.operation"), sfn.Condition.is_string("$.operation")),
                operation,
            )
            .otherwise(refused)
        )
        log_options = None
        if logs_enabled:
            log_options = sfn.LogOptions(
                destination=logs.LogGroup(self, "Logs", retention=logs.RetentionDays.ONE_MONTH),
                level=sfn.LogLevel.ERROR,
                include_execution_data=False,
            )
        self.state_machine = sfn.StateMachine(
            self,
            "StateMachine",
            state_machine_name=name,
            definition_body=sfn.DefinitionBody.from_chainable(choice),
            timeout=Duration.hours(options.timeout_hours),
            tracing_enabled=True,
            logs=log_options,
        )
        # CDK grants the Map what its S3 ItemReader and ResultWriter need on the artifacts bucket, and the
        # right to start and read its child executions; each accepted here, on this state machine.
        machine = self.state_machine
        acknowledge(
            machine,
            f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::{nag_resource(machine, artifacts.bucket_name)}/*]",
            "The Map reads each run's manifest and writes its results under migrations/, keys made per run "
            "(CDK's ItemReader and ResultWriter grants).",
        )
        acknowledge(
            machine,
            "AwsSolutions-IAM5[Resource::*]",
            "X-Ray's PutTraceSegments and PutTelemetryRecords (tracing) accept no resource ARN.",
        )
        executions = (
            "arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:execution:"
            '{"Fn::Select":[6,{"Fn::Split":[":",' + nag_json(machine, machine.state_machine_arn) + "]}]}"
        )
        for suffix in (":*", "/*:*"):
            acknowledge(
                machine,
                f"AwsSolutions-IAM5[Resource::{executions}{suffix}]",
                "The distributed Map starts, reads and stops its own child executions (CDK's grant), ids made per run.",
            )
        if logs_enabled:
            acknowledge(
                self.state_machine,
                "AwsSolutions-SF1",
                "Logs are at ERROR without execution data: inputs and outputs carry listing content; every batch's "
                "result is kept in the artifacts bucket instead.",
            )
