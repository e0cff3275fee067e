"""One migration run at a time: the run going holds the current-run record of the artifacts bucket
(`migrations/current-run.json`, which GET /listings/migration shows) as a lease, taken and updated
with S3's conditional writes (If-None-Match, If-Match), so of two runs that start at once only one
takes it, and a run whose lease another has taken cannot write it back.

The record names its holder. A Step Functions execution (its ARN, which the Plan state passes in):
the run is going while Step Functions says the execution is RUNNING, so an execution aborted, timed
out or failed before its last step frees the lease at once. A process (the CLI's in-process
execute and rollback, `Plan.run_in_process`): going while it renews the record, at least every
RENEW_S; one not renewed for LEASE_S has died (killed, its machine gone). A record marked finished
is free. A run refused, or a process whose lapsed lease another took, gets MigrationInProgress
(`migration_in_progress`), naming the run going; nothing else is written.
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

KEY = "migrations/current-run.json"
# An in-process run renews its lease at most this often (a batch takes seconds), and one not renewed
# for LEASE_S has died: as long as the longest a Lambda batch may run, so no live run lapses.
RENEW_S = 60
LEASE_S = 900
# What S3 answers a conditional write that lost: the object changed (412), or another conditional
# write of the same key was in flight (409).
LOST_RACE = frozenset({"PreconditionFailed", "ConditionalRequestConflict"})


class MigrationInProgress(Conflict):
    """Another run of the migration holds the lease: one run at a time."""

    code = "migration_in_progress"


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
        self.etag = _put(self.bucket, record, if_match=self.etag, refused=record)
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


def take(bucket: str, record: dict[str, Any], execution: str | None = None) -> Lease:
    """Take the lease for a run described by `record` (run_id, operation, started_at), held by the
    Step Functions `execution` or, without one, by this process."""
    held = _read(bucket)
    if held is not None and not _free(held[0], execution):
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


def _free(going: dict[str, Any], execution: str | None) -> bool:
    """Whether the run a record names has ended, so its lease may be taken."""
    if going.get("finished_at") is not None:
        return True
    if going.get("execution"):
        if going["execution"] == execution:  # this execution's Plan, retried after its function died
            return True
        return _execution_status(str(going["execution"])) != "RUNNING"
    # a process (or a record from before leases): alive while renewed
    last_seen = going.get("renewed_at") or going.get("started_at") or 0
    return time.time() - float(last_seen) > LEASE_S


def _execution_status(arn: str) -> str:
    try:
        return str(aws.client("stepfunctions").describe_execution(executionArn=arn)["status"])
    except ClientError as error:
        # gone with its history (kept 90 days), or with its state machine
        if error.response.get("Error", {}).get("Code") in ("ExecutionDoesNotExist", "StateMachineDoesNotExist"):
            return "GONE"
        raise


def _read(bucket: str) -> tuple[dict[str, Any], str] | None:
    try:
        answer = aws.client("s3").get_object(Bucket=bucket, Key=KEY)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            return None
        raise
    return dict(json.loads(answer["Body"].read())), str(answer["ETag"])


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
    holder = going.get("execution") or going.get("holder") or "an earlier run"
    return MigrationInProgress(
        f"The {going.get('operation', 'migration')} run {going.get('run_id')} is going, held by {holder}: "
        "one run at a time. Wait for it to end (GET /listings/migration shows it), or stop it.",
        details={
            key: going[key]
            for key in ("run_id", "operation", "started_at", "execution", "holder")
            if going.get(key) is not None
        },
    )
