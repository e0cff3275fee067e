"""One migration run at a time: the run going holds the current-run record of the artifacts bucket
(`migrations/current-run.json`, which GET /listings/migration shows) as a lease, taken and updated
with S3's conditional writes (If-None-Match, If-Match), so of two runs that start at once only one
takes it, and a run whose lease another has taken cannot write it back.

The record names its holder. A Step Functions execution (its ARN, which the Plan state passes in):
the run is going while Step Functions says the execution is RUNNING, so an execution aborted, timed
out or failed before its last step frees the lease at once. A process (the CLI's in-process
execute and rollback, `Plan.run_in_process`): going while it renews the record, at least every
RENEW_S; one not renewed for LEASE_S has died (killed, its machine gone). A record marked finished
is free, as is one that is not a JSON object (no run writes that). A run refused gets
MigrationInProgress (`migration_in_progress`), naming the run going, before it writes anything; a
process whose lapsed lease another took gets LeaseLost (`migration_lease_lost`) at its next renewal
and stops there (what its batches wrote is kept: a rerun resumes).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from listing_vision import aws
from listing_vision.errors import Conflict
from listing_vision.realestate import artifacts

KEY = "migrations/current-run.json"
# An in-process run renews its lease at most this often (a batch takes seconds), and one not renewed
# for LEASE_S has died: as long as the longest a Lambda batch may run, so no live run lapses.
RENEW_S = 60
LEASE_S = 900
# What S3 answers a conditional write that lost: the object changed (412), or another conditional
# write of the same key was in flight (409).
LOST_RACE = frozenset({"PreconditionFailed", "ConditionalRequestConflict"})
# An execution Step Functions does not know (its history gone after 90 days, its state machine deleted,
# an ARN not well formed), or not of this state machine, the only one the migration function may ask
# about (a stage renamed): not a run of this migration going, whatever its record says.
NOT_THIS_MACHINES = frozenset(
    {"ExecutionDoesNotExist", "StateMachineDoesNotExist", "InvalidArn", "AccessDeniedException"}
)


class MigrationInProgress(Conflict):
    """Another run of the migration holds the lease: one run at a time."""

    code = "migration_in_progress"


class LeaseLost(MigrationInProgress):
    """This run's lease lapsed and another run took it: this one stops rather than write beside it."""

    code = "migration_lease_lost"


@dataclass
class Lease:
    """The current-run record as this run last wrote it, and its ETag (what its next write must match)."""

    bucket: str
    record: dict[str, Any]
    etag: str
    renewed: float = field(default_factory=time.monotonic)

    def update(self, **changes: Any) -> None:
        """Write the record with these changes, if this run still holds it (else MigrationInProgress)."""
        record = self.record | changes
        if "holder" in record:
            record["renewed_at"] = int(time.time())
        try:
            self.etag = _put(self.bucket, record, if_match=self.etag, refused=record)
        except MigrationInProgress as taken:
            raise LeaseLost(
                f"This {record.get('operation')} run {record.get('run_id')} stopped: its lease lapsed and another "
                f"run took it ({taken.message}) What it wrote is kept; rerun once that run has ended to go on.",
                details={"run_id": record.get("run_id"), "taken_by": taken.details},
            ) from taken
        self.record = record
        self.renewed = time.monotonic()

    def renew_if_due(self, **changes: Any) -> None:
        """An in-process run's sign of life (with its progress), written at most every RENEW_S."""
        if time.monotonic() - self.renewed >= RENEW_S:
            self.update(**changes)

    def release(self, **changes: Any) -> None:
        """Mark the run ended (finished_at), freeing the lease; a lease lost meanwhile is left to its holder."""
        with contextlib.suppress(MigrationInProgress):
            self.update(**({"finished_at": int(time.time())} | changes))


def holds(bucket: str, run_id: str, execution: str) -> bool:
    """Whether the lease record names this run held by this execution (its Plan, retried)."""
    held = _read(bucket)
    return held is not None and (held[0].get("run_id"), held[0].get("execution")) == (run_id, execution)


def take(bucket: str, record: dict[str, Any], execution: str | None = None) -> Lease:
    """Take the lease for a run described by `record` (run_id, operation, started_at), held by the
    Step Functions `execution` or, without one, by this process."""
    held = _read(bucket)
    if held is not None and not ended(held[0], execution):
        raise _refusal(held[0])
    holder = {"execution": execution} if execution else {"holder": f"{socket.gethostname()}:{os.getpid()}"}
    record = record | holder
    if not execution:
        record["renewed_at"] = int(time.time())
    if held is None:
        written = _put(bucket, record, if_none_match=True, refused=record)
    else:
        written = _put(bucket, record, if_match=held[1], refused=record)
    return Lease(bucket, record, written)


def ended(going: dict[str, Any], execution: str | None = None) -> bool:
    """Whether the run a record names has ended, so its lease may be taken (by `execution`, which
    may retake its own) and GET /listings/migration shows no run going."""
    if going.get("finished_at") is not None:
        return True
    if going.get("execution"):
        if going["execution"] == execution:  # this execution's Plan, retried after its function died
            return True
        return not _execution_running(str(going["execution"]))
    # a process (or a record from before leases): alive while renewed
    return time.time() - _last_seen(going) > LEASE_S


def _last_seen(going: dict[str, Any]) -> float:
    seen = going.get("renewed_at") or going.get("started_at")
    return float(seen) if isinstance(seen, int | float) and not isinstance(seen, bool) else 0.0


def _execution_running(arn: str) -> bool:
    """Whether Step Functions says this execution is RUNNING (one it does not know, or will not
    describe to us, is not a run of this migration going)."""
    try:
        return bool(aws.client("stepfunctions").describe_execution(executionArn=arn)["status"] == "RUNNING")
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in NOT_THIS_MACHINES:
            return False
        raise


def _read(bucket: str) -> tuple[dict[str, Any], str] | None:
    try:
        answer = artifacts.get_object(f"s3://{bucket}/{KEY}")
    except FileNotFoundError:  # artifacts.ArtifactNotFound: no run has taken it yet
        return None
    try:
        record = json.loads(answer["Body"].read())
    except ValueError:
        record = None
    # No run writes anything but an object; whatever else is there (written by hand) holds nothing.
    return (record if isinstance(record, dict) else {}), str(answer["ETag"])


def _put(
    bucket: str,
    record: dict[str, Any],
    *,
    refused: dict[str, Any],
    if_match: str | None = None,
    if_none_match: bool = False,
) -> str:
    condition = {"IfMatch": if_match} if if_match else {"IfNoneMatch": "*"} if if_none_match else {}
    try:
        answer = aws.client("s3").put_object(
            Bucket=bucket, Key=KEY, Body=json.dumps(record).encode(), ContentType="application/json", **condition
        )
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in LOST_RACE:
            held = _read(bucket)
            raise _refusal(held[0] if held else refused) from error
        raise
    return str(answer["ETag"])


def _refusal(going: dict[str, Any]) -> MigrationInProgress:
    run = f"The {going.get('operation', 'migration')} run {going.get('run_id')} is going"
    if going.get("execution"):
        message = (
            f"{run}, held by its execution {going['execution']}: one run at a time. Wait for it to end "
            "(GET /listings/migration shows it), or stop that execution."
        )
    else:
        seen = _last_seen(going)
        message = (
            f"{run}, held by process {going.get('holder', '(unnamed)')}, last heard from at {_utc(seen)}: one run "
            f"at a time. Wait for it to end; if that process has died, its lease lapses at {_utc(seen + LEASE_S)}."
        )
    return MigrationInProgress(
        message,
        details={
            key: going[key]
            for key in ("run_id", "operation", "started_at", "execution", "holder")
            if going.get(key) is not None
        },
    )


def _utc(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))
