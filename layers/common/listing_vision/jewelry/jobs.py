"""Image-generation jobs: the record in DynamoDB (`jobs` table, key `job_id`, expiring after 30 days)
and the event that starts the worker on one run of a job.

A job is submitted once and may be run again for one type (`/regenerate-image`); each run has its
own `run_id`. The record moves queued → running → done | partial | failed, and every run ends:
the worker finishes it whatever it raises, and a run still unfinished past its deadline (a worker
that timed out, died past its retries or was never started) ends with its undelivered types failed
with reason `worker_timeout`. Conditional
writes keep the record consistent under concurrency: one run at a time (a second regeneration is
a 409), one worker per run (a redelivered event finds the run taken or finished), and results are
recorded with their run id, so a redelivered run skips the images it already delivered.

A worker can die between two of its writes (killed, out of memory, timed out). Lambda then retries
the event with the same request id: the claim names the request that holds it, so the retry takes
its own claim over at once instead of waiting out the dead attempt's lease. A result is written only
while its run is still the job's run in progress, so a late worker never rewrites a run that was
ended (by its deadline) or superseded. A run past its deadline ends over what it delivered: `partial`
keeping the images it stored, each undelivered type recorded failed with `worker_timeout`.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from botocore.exceptions import ClientError
from pydantic import BaseModel, Field

from listing_vision import aws
from listing_vision.config import get_settings
from listing_vision.dynamodb_items import conditional_check_failed, expression_values, from_item, to_item
from listing_vision.errors import Conflict, NotFound
from listing_vision.jewelry.job_events import JobEvents
from listing_vision.resources import JOB_RETENTION_DAYS

TTL_S = JOB_RETENTION_DAYS * 86_400  # the generated bucket keeps its images a day longer
JOB_ID_PATTERN = r"^[0-9a-f]{32}$"
IN_PROGRESS = ("queued", "running")
FINISHED = ("done", "partial", "failed", "cancelled")
STATUSES = (*IN_PROGRESS, *FINISHED)
CANCELLED_MESSAGE = "The job was cancelled before this image was started."


class RunJob(BaseModel):
    """The asynchronous worker's event: render the types of one run of a job."""

    operation: Literal["run_job"] = "run_job"
    job_id: str = Field(pattern=JOB_ID_PATTERN)
    run_id: str = Field(pattern=JOB_ID_PATTERN)


@dataclass
class Job:
    job_id: str
    status: str  # queued | running | done | partial | failed | cancelled
    product: str
    website: str
    source_bucket: str
    source_key: str
    image_types: list[int]
    dimensions_mm: dict[str, float] | None = None
    results: dict[int, dict[str, Any]] = field(default_factory=dict)  # the latest result of each type
    zip_key: str | None = None
    timing: dict[str, Any] = field(default_factory=dict)  # the last run's batch timing
    run_id: str = ""
    run_types: list[int] = field(default_factory=list)
    deadline_at: float = 0.0  # after this, an unfinished run is reported failed
    reason: str | None = None  # why the last run failed, when it failed as a whole
    message: str | None = None
    created_at: int = 0
    updated_at: int = 0
    client_id: str = "anonymous"  # the client key that asked for the current run (its edit quota and turn)

    @property
    def in_progress(self) -> bool:
        return self.status in IN_PROGRESS

    def overall_status(self, failing: Iterable[int] = ()) -> str:
        """The job's status over every type it has, each by its latest run (a regeneration that
        succeeds makes its type delivered again): done when all are, failed when none is, partial
        otherwise. `failing`: types whose run in progress failed as a whole (no result recorded)."""
        types = set(self.image_types) | set(self.results)
        delivered = {n for n in types if n not in set(failing) and self.results.get(n, {}).get("status") == "ok"}
        return "done" if delivered == types else "failed" if not delivered else "partial"


class JobStore:
    """The jobs table; `events` announces each run that ends (job_events.py)."""

    def __init__(self, table: str | None = None, events: JobEvents | None = None):
        settings = get_settings()
        self.table = table or settings.jobs_table
        self.deadline_s = settings.generation_deadline_s
        self.dynamodb = aws.client("dynamodb")
        self._events = events

    @property
    def events(self) -> JobEvents:
        if self._events is None:
            self._events = JobEvents()
        return self._events

    def create(
        self,
        product: str,
        website: str,
        bucket: str,
        key: str,
        image_types: list[int],
        dimensions_mm: dict[str, float] | None,
        client_id: str = "anonymous",
    ) -> Job:
        now = time.time()
        job = Job(
            job_id=uuid.uuid4().hex,
            status="queued",
            product=product,
            website=website,
            source_bucket=bucket,
            source_key=key,
            image_types=image_types,
            dimensions_mm=dimensions_mm,
            run_id=uuid.uuid4().hex,
            run_types=image_types,
            deadline_at=round(now + self.deadline_s, 3),
            created_at=int(now),
            updated_at=int(now),
            client_id=client_id,
        )
        item = {
            "job_id": job.job_id,
            "status": job.status,
            "product": product,
            "website": website,
            "source_bucket": bucket,
            "source_key": key,
            "image_types": image_types,
            "dimensions_mm": dimensions_mm,
            "run_id": job.run_id,
            "run_types": job.run_types,
            "deadline_at": job.deadline_at,
            "created_at": job.created_at,
            "updated_at": job.updated_at,
            "expires_at": job.created_at + TTL_S,
            "client_id": client_id,
        }
        self.dynamodb.put_item(
            TableName=self.table, Item=to_item(item), ConditionExpression="attribute_not_exists(job_id)"
        )
        return job

    def get(self, job_id: str) -> Job:
        if not re.fullmatch(JOB_ID_PATTERN, job_id):  # not an id this API made (and maybe over DynamoDB's key size)
            raise NotFound("No such job.", code="job_not_found")
        item = self.dynamodb.get_item(TableName=self.table, Key=self._key(job_id), ConsistentRead=True).get("Item")
        if not item:
            raise NotFound(f"No job {job_id!r}.", code="job_not_found")
        return job_from_item(item)

    def cancel(self, job_id: str) -> tuple[Job, bool]:
        """End a job in progress as `cancelled` (its worker starts no further image: it reads the job
        before each one), keeping the results recorded; (the job, True) when this call cancelled it,
        (the job, False) when it was already cancelled. A job that ended otherwise is a 409."""
        attributes = self._update_if(
            job_id,
            "SET #s = :cancelled, reason = :cancelled, message = :message, "
            "cancelled_at = :now, updated_at = :now REMOVE lease_until",
            "attribute_exists(job_id) AND #s IN (:queued, :running)",
            cancelled="cancelled",
            message="Cancelled by the client; the images delivered before are kept.",
            now=int(time.time()),
            queued="queued",
            running="running",
        )
        if attributes is None:
            job = self.get(job_id)  # NotFound for an unknown job
            if job.status == "cancelled":
                return job, False
            raise Conflict(
                f"The job has already finished ({job.status}); there is nothing to cancel.",
                code="job_already_finished",
                details={"status": job.status},
            )
        job = job_from_item(attributes)
        self.events.finished(job)  # after the write that won: one event per run
        return job, True

    def cancelled(self, job_id: str, run_id: str) -> bool:
        """Whether this run may start no further image: the job was cancelled, or the run is no longer its run."""
        item = self.dynamodb.get_item(
            TableName=self.table,
            Key=self._key(job_id),
            ConsistentRead=True,
            ProjectionExpression="#s, run_id",
            ExpressionAttributeNames={"#s": "status"},
        ).get("Item")
        values = from_item(item) if item else {}
        return values.get("status") == "cancelled" or values.get("run_id") != run_id

    def settle_cancelled(self, job_id: str, run_id: str, zip_key: str | None, timing: dict[str, Any]) -> bool:
        """The ZIP and timing of a run that was cancelled under its worker (the images it delivered are kept)."""
        values: dict[str, Any] = {"run": run_id, "cancelled": "cancelled", "timing": timing}
        update = "SET timing = :timing"
        if zip_key:
            update, values["zip"] = update + ", zip_key = :zip", zip_key
        return (
            self._update_if(job_id, update + " REMOVE claimed_by", "run_id = :run AND #s = :cancelled", **values)
            is not None
        )

    def start_run(self, job_id: str, types: list[int], client_id: str = "anonymous") -> Job:
        """A new run of a finished job (a regeneration) for this client; a job still in progress is a 409."""
        now = time.time()
        attributes = self._update_if(
            job_id,
            "SET #s = :queued, run_id = :run, run_types = :types, deadline_at = :deadline, "
            "updated_at = :now, client_id = :client REMOVE lease_until, reason, message",
            "attribute_exists(job_id) AND #s IN (:done, :partial, :failed, :cancelled)",
            queued="queued",
            run=uuid.uuid4().hex,
            types=types,
            deadline=round(now + self.deadline_s, 3),
            now=int(now),
            client=client_id,
            done="done",
            partial="partial",
            failed="failed",
            cancelled="cancelled",
        )
        if attributes is None:
            self.get(job_id)  # NotFound for an unknown job
            raise Conflict(
                "The job is still running; regenerate an image once it has finished.", code="job_in_progress"
            )
        return job_from_item(attributes)

    def claim(self, job_id: str, run_id: str, lease_s: float, holder: str | None = None) -> Job | None:
        """Take this run for one worker until `lease_s` from now, in the name of `holder` (the
        invocation's request id, which Lambda keeps when it retries the event: a retry takes over the
        claim of its own dead attempt at once). None when the run is finished or superseded, or
        another invocation holds it (a duplicated event)."""
        now = time.time()
        attributes = self._update_if(
            job_id,
            "SET #s = :running, lease_until = :lease, claimed_by = :holder, updated_at = :now",
            "run_id = :run AND #s IN (:queued, :running) "
            "AND (attribute_not_exists(lease_until) OR lease_until < :now_exact OR claimed_by = :holder)",
            running="running",
            queued="queued",
            run=run_id,
            lease=round(now + lease_s, 3),
            holder=holder or uuid.uuid4().hex,  # no holder: no earlier attempt of its own
            now=int(now),
            now_exact=round(now, 3),
        )
        return None if attributes is None else job_from_item(attributes)

    def record(self, job_id: str, run_id: str, image_type: int, result: dict[str, Any]) -> bool:
        """One type's outcome (each type is its own attribute, so parallel types never collide),
        written only while `run_id` is the job's run in progress, or was when it was cancelled (an
        image paid for before the cancel is kept); False when it no longer is (ended by its deadline,
        or superseded): the result is dropped, never rewriting what was reported."""
        written = self._update_if(
            job_id,
            "SET #r = :r, updated_at = :now",
            "run_id = :run AND #s IN (:queued, :running, :cancelled)",
            names={"#r": f"result_{image_type}"},
            r=result,
            now=int(time.time()),
            run=run_id,
            queued="queued",
            running="running",
            cancelled="cancelled",
        )
        return written is not None

    def finish(
        self,
        job_id: str,
        run_id: str,
        status: str,
        zip_key: str | None = None,
        timing: dict[str, Any] | None = None,
        reason: str | None = None,
        message: str | None = None,
        results: dict[int, dict[str, Any]] | None = None,
    ) -> bool:
        """End this run (if it is still the job's run in progress), with `results` of types written
        in the same update; False when it had already ended."""
        values: dict[str, Any] = {
            "status": status,
            "now": int(time.time()),
            "timing": timing or {},
            "run": run_id,
            "queued": "queued",
            "running": "running",
        }
        names: dict[str, str] = {}
        update = "SET #s = :status, updated_at = :now, timing = :timing"
        for name, value in (("zip_key", zip_key), ("reason", reason), ("message", message)):
            if value:
                update += f", {name} = :{name}"
                values[name] = value[:500]
        for number, result in sorted((results or {}).items()):
            update += f", #r{number} = :r{number}"
            names[f"#r{number}"] = f"result_{number}"
            values[f"r{number}"] = result
        attributes = self._update_if(
            job_id,
            update + " REMOVE lease_until, claimed_by",
            "run_id = :run AND #s IN (:queued, :running)",
            names=names,
            **values,
        )
        if attributes is None:
            return False
        self.events.finished(job_from_item(attributes))  # only the write that ended the run announces it
        return True

    def end_if_overdue(self, job: Job) -> Job:
        """A run still unfinished past its deadline (its worker timed out, died past its retries, or
        never started) ends over what it delivered: each of its types without a result of this run
        is recorded failed with `worker_timeout`, the images it stored are kept, and the job is
        `partial` (or `failed` when nothing is delivered, `done` when everything was). Anything
        else is returned as it is."""
        if not job.in_progress or time.time() <= job.deadline_at:
            return job
        message = "The worker did not finish this run before its deadline; regenerate to try again."
        undelivered = {
            number: {"status": "failed", "reason": "worker_timeout", "message": message, "run_id": job.run_id}
            for number in job.run_types
            if job.results.get(number, {}).get("run_id") != job.run_id
        }
        ended = Job(**{**job.__dict__, "results": {**job.results, **undelivered}})
        status = ended.overall_status()
        self.finish(
            job.job_id,
            job.run_id,
            status,
            reason="worker_timeout" if status == "failed" else None,
            message=message,
            results=undelivered,
        )
        return self.get(job.job_id)

    def _update_if(
        self, job_id: str, update: str, condition: str, names: dict[str, str] | None = None, **values: Any
    ) -> dict[str, Any] | None:
        """The job's item after `update` (`#s` names its status), or None when `condition` did not hold."""
        try:
            answer = self.dynamodb.update_item(
                TableName=self.table,
                Key=self._key(job_id),
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeNames={"#s": "status", **(names or {})},
                ExpressionAttributeValues=expression_values(**values),
                ReturnValues="ALL_NEW",
            )
        except ClientError as error:
            if conditional_check_failed(error):
                return None
            raise
        return answer["Attributes"]

    @staticmethod
    def _key(job_id: str) -> dict[str, Any]:
        return to_item({"job_id": job_id})


def job_from_item(item: dict[str, Any]) -> Job:
    """A job from its item (DynamoDB's typed attributes)."""
    values = from_item(item)
    results = {int(name.split("_", 1)[1]): value for name, value in values.items() if name.startswith("result_")}
    return Job(
        job_id=values["job_id"],
        status=values["status"],
        product=values["product"],
        website=values["website"],
        source_bucket=values["source_bucket"],
        source_key=values["source_key"],
        image_types=[int(t) for t in values["image_types"]],
        dimensions_mm=values.get("dimensions_mm"),
        results=results,
        zip_key=values.get("zip_key"),
        timing=values.get("timing", {}),
        run_id=values.get("run_id", ""),
        run_types=[int(t) for t in values.get("run_types", values["image_types"])],
        deadline_at=float(values.get("deadline_at", 0)),
        reason=values.get("reason"),
        message=values.get("message"),
        created_at=values["created_at"],
        updated_at=values["updated_at"],
        client_id=values.get("client_id", "anonymous"),
    )
