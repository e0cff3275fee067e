"""The migration's Step Functions task protocol: the typed task inputs, and `run_task`.

The state machine (infra/constructs/migration.py) invokes the migration function with one of:

  a console request   {"operation": "coverage" | "dry_run" | "classify_phrases", ...} (the execution
                      input; "verify" too when invoked directly: by parts, in one invocation)
  plan                {"operation": "plan", "request": <an execute, rollback, backup or verify request>,
                       "execution": <its ARN, the run's lease holder: `run_lease`>}
  a batch             {"operation": "execute_batch" | "rollback_batch" | "backup_batch" | "verify_batch",
                       "run_id", "batch", "zpids", ...} (an item of the plan's manifest, read by the Map)
  a failed batch      {"operation": "record_failure", "request": <the batch item and the error caught>}
  finish              {"operation": "finish", "request": <the execution's state: request, plan, batches>}
                      (adds up the batches' records: verify parts, or a rollback's proof parts)

The handler parses the event into `MigrationTask` (a model per operation, told apart by `operation`)
and calls `run_task`. Unknown operations and malformed fields are refused before anything runs.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, model_validator

from listing_vision.observability import metrics
from listing_vision.realestate import artifacts
from listing_vision.realestate.backups import BackupReader, check_fan_out_location
from listing_vision.realestate.migration import BatchFailed, Migration
from listing_vision.realestate.migration.common import LEFT_ALONE_SHOWN
from listing_vision.realestate.migration.rollback import Compared
from listing_vision.realestate.migration.verify import Checked
from listing_vision.realestate.phrase_classification import classify_phrases


def _as_text(value: Any) -> Any:
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


# Listing ids: console users type numbers as often as strings.
ZPID_PATTERN = r"^[A-Za-z0-9_-]{1,40}$"  # ASCII only: a full-width or Arabic-Indic digit is another id
Zpid = Annotated[str, BeforeValidator(_as_text), Field(pattern=ZPID_PATTERN)]
# Listed zpids: at least one (an empty list is no choice, not "every listing": leave it out for that)
Zpids = Annotated[list[Zpid] | None, Field(min_length=1, max_length=100_000)]
RunId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,80}$")]  # a key segment of the artifacts bucket


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a mistyped option is refused, not silently ignored


class CoverageRequest(_Request):
    operation: Literal["coverage"]
    sample: int = Field(100, ge=1, le=1_000_000)
    zpids: Zpids = None


class DryRunRequest(_Request):
    operation: Literal["dry_run"]
    sample: int = Field(5, ge=1, le=1_000)
    zpids: Zpids = None
    force: StrictBool = False  # say what a forced execute would do


class BackupRequest(_Request):
    operation: Literal["backup"]
    destination: str | None = Field(None, max_length=1024)
    batch_size: int = Field(500, ge=1, le=1_000)  # listings per part
    zpids: Zpids = None
    run_id: RunId | None = None


class VerifyRequest(_Request):
    """On Step Functions, fanned out as an execute is (Plan, a Map of `verify_batch` parts, finish
    adding them up), nothing written."""

    operation: Literal["verify"]
    backup: str | None = Field(None, max_length=1024)
    spot_checks: int = Field(10, ge=0, le=1_000)
    zpids: Zpids = None  # the criteria on these listings only
    # listings a part reads: on Step Functions the stage's batch size unless set here (a Map batch
    # each); invoked directly, parts of this many read four at once (`verify_by_parts`)
    batch_size: int = Field(500, ge=1, le=1_000)
    run_id: RunId | None = None


class ClassifyPhrasesRequest(_Request):
    """Classify the feature phrases of the vision cache that the taxonomy does not know (run it
    before `execute` with `force`): a model when a key is set, else the offline rule."""

    operation: Literal["classify_phrases"]
    dry_run: StrictBool = False
    limit: int | None = Field(None, ge=1, le=1_000_000)  # phrases classified in this run at most
    segments: int = Field(4, ge=1, le=64)  # parallel scan segments of the vision cache


class ExecuteRequest(_Request):
    operation: Literal["execute"]
    zpids: Zpids = None
    batch_size: int = Field(100, ge=1, le=1_000)
    force: StrictBool = False  # true or false: "yes" is refused, not read as true
    backup: str | None = Field(None, max_length=1024)
    spot_checks: int = Field(10, ge=0, le=1_000)
    run_id: RunId | None = None


class RollbackRequest(_Request):
    operation: Literal["rollback"]
    mode: Literal["remove", "restore"] = "remove"
    backup: str | None = Field(None, max_length=1024)
    zpids: Zpids = None
    batch_size: int = Field(200, ge=1, le=1_000)
    run_id: RunId | None = None

    @model_validator(mode="after")
    def restore_needs_a_backup(self) -> RollbackRequest:
        if self.mode == "restore" and not self.backup:
            raise ValueError("rollback mode 'restore' needs a backup location")
        return self


FanOutRequest = Annotated[
    ExecuteRequest | RollbackRequest | BackupRequest | VerifyRequest, Field(discriminator="operation")
]


class PlanTask(_Request):
    operation: Literal["plan"]
    request: FanOutRequest
    # The stage's sizing, from the state machine: the batch size unless the request sets its own,
    # and the partial updates per _bulk request of each batch.
    batch_size: int | None = Field(None, ge=1, le=1_000)
    bulk_size: int | None = Field(None, ge=1, le=1_000)
    # The execution this plan belongs to ($$.Execution.Id): the holder of the run's lease while it runs
    execution: str = Field(pattern=r"^arn:aws[a-z-]*:states:[a-z0-9-]+:\d{12}:execution:[^\s]{1,400}$")


class BatchTask(_Request):
    """One item of the plan's manifest."""

    operation: Literal["execute_batch", "rollback_batch", "backup_batch", "verify_batch"]
    run_id: RunId
    batch: int = Field(ge=0)
    zpids: list[Zpid] = Field(max_length=1_000)
    force: bool = False
    mode: Literal["remove", "restore"] = "remove"
    backup: str | None = None
    destination: str | None = None  # backup_batch: the backup its part belongs to
    bulk_size: int | None = Field(None, ge=1, le=1_000)  # partial updates per _bulk request
    # The part this batch checks once written: verify's (execute_batch, `Verify.verify_batch`: its
    # chosen listings, or its range of the index: after the previous batch's last id, the last batch
    # to the end; verify_batch checks it and writes nothing), or the proof's (rollback_batch with a
    # backup, `compare_batch`: its range, or its chosen listings).
    verify: Literal["range", "chosen"] | None = None
    after: str | None = None
    to_end: bool = False
    spot_checks: int = Field(10, ge=0, le=1_000)


class CaughtError(BaseModel):
    """What a Step Functions Catch puts under ResultPath."""

    Error: str = "unknown"
    Cause: str = ""


class FailedBatch(BatchTask):
    error: CaughtError = Field(default_factory=CaughtError)


class RecordFailureTask(_Request):
    operation: Literal["record_failure"]
    request: FailedBatch


class PlanOutput(BaseModel):
    model_config = ConfigDict(extra="ignore")

    run_id: RunId
    manifest: dict[str, str]
    destination: str | None = None  # a fanned-out backup's location


class RunState(BaseModel):
    """The execution's state when the Map is done: the request, the plan's output, the Map's output."""

    model_config = ConfigDict(extra="ignore")

    operation: Literal["execute", "rollback", "backup", "verify"]
    mode: Literal["remove", "restore"] = "remove"
    backup: str | None = None
    spot_checks: int = 10
    zpids: Zpids = None  # a run over chosen listings: verified on those only
    plan: PlanOutput | None = None
    batches: Any = None


class FinishTask(_Request):
    operation: Literal["finish"]
    request: RunState


MigrationTask = Annotated[
    CoverageRequest
    | DryRunRequest
    | BackupRequest
    | VerifyRequest
    | ClassifyPhrasesRequest
    | PlanTask
    | BatchTask
    | RecordFailureTask
    | FinishTask,
    Field(discriminator="operation"),
]


def run_task(task: BaseModel, migration: Migration) -> dict[str, Any]:
    """Run one parsed task (see the module's docstring) over the migration's stores and return its
    JSON result."""
    if isinstance(task, CoverageRequest):
        return migration.coverage(sample=task.sample, zpids=task.zpids)
    if isinstance(task, DryRunRequest):
        return migration.dry_run(sample=task.sample, zpids=task.zpids, force=task.force)
    if isinstance(task, BackupRequest):
        return migration.backup(task.destination)
    if isinstance(task, VerifyRequest):  # in one invocation, by parts (the state machine fans them out)
        return migration.verify_by_parts(task.backup, task.spot_checks, task.zpids, task.batch_size)
    if isinstance(task, ClassifyPhrasesRequest):
        return run_classify_phrases(task, migration)
    if isinstance(task, PlanTask):
        request = task.request
        options: dict[str, Any]
        backup = {"backup": request.backup} if not isinstance(request, BackupRequest) and request.backup else {}
        check_fan_out_location(backup.get("backup"), reading=True)  # and a backup's destination, below
        if isinstance(request, ExecuteRequest | VerifyRequest):
            verify = {"verify": "chosen" if request.zpids else "range", "spot_checks": request.spot_checks}
            options = verify | backup | ({"force": request.force} if isinstance(request, ExecuteRequest) else {})
        elif isinstance(request, BackupRequest):
            check_fan_out_location(request.destination, reading=False)
            options = {"destination": migration.backup_location(request.destination)}
        else:
            options = {"mode": request.mode, **backup}
            if request.backup:  # each batch proves its part (range or chosen listings) against the backup
                options["verify"] = "chosen" if request.zpids else "range"
        if task.bulk_size and isinstance(request, ExecuteRequest | RollbackRequest):
            options["bulk_size"] = task.bulk_size
        own = "batch_size" in request.model_fields_set
        batch_size = request.batch_size if own or task.batch_size is None else task.batch_size
        planned = migration.plan(batch_size, request.zpids, request.run_id, request.operation, options, task.execution)
        return planned | ({"destination": options["destination"]} if "destination" in options else {})
    if isinstance(task, BatchTask):
        return run_batch(task, migration)
    if isinstance(task, RecordFailureTask):
        return record_failure(task.request, migration)
    if isinstance(task, FinishTask):
        return finish(task.request, migration)
    raise TypeError(f"not a migration task: {type(task).__name__}")


def run_classify_phrases(
    task: ClassifyPhrasesRequest, migration: Migration, progress: Callable[[int], None] | None = None
) -> dict[str, Any]:
    """classify_phrases over the whole vision cache, read as a parallel scan of `segments` segments."""
    sources = [migration.cache.scan_analyses(segment, task.segments) for segment in range(task.segments)]
    return classify_phrases(sources, migration.phrases, dry_run=task.dry_run, limit=task.limit, progress=progress)


def run_batch(task: BatchTask, migration: Migration) -> dict[str, Any]:
    """Migrate (or roll back) one batch and record its result under the run; a batch with listings
    that could not be written raises BatchFailed, which the state machine retries, then catches."""
    if task.operation == "backup_batch":
        if not task.destination:
            raise ValueError("a backup batch needs its destination")
        result = {
            "batch": task.batch,
            "zpids": task.zpids,
            **migration.backup_batch(task.destination, task.batch, task.zpids),
        }
        migration.record_batch(task.run_id, task.batch, result)
        return result
    if task.operation == "verify_batch":  # verify on its own: this batch's part, nothing written
        checked = migration.verify_batch(
            task.zpids, task.verify == "chosen", task.after, task.to_end, task.backup, task.spot_checks
        )
        verified = {"batch": task.batch, "zpids": task.zpids, "counts": {}, "verify": checked}
        migration.record_batch(task.run_id, task.batch, verified)
        return verified
    if task.operation == "execute_batch":
        report = migration.execute_batch(task.zpids, task.force, task.bulk_size)
    else:
        report = migration.rollback_batch(task.zpids, task.mode, task.backup, bulk_size=task.bulk_size)
    if report.failed:
        raise BatchFailed(f"{len(report.failed)} listings failed: {json.dumps(report.failed)[:500]}")
    result = {"batch": task.batch, "zpids": task.zpids, **report.to_json()}
    if task.operation == "execute_batch" and task.verify:
        # verify's part for these listings, just written: `finish` only adds the parts up
        result["verify"] = migration.verify_batch(
            task.zpids, task.verify == "chosen", task.after, task.to_end, task.backup, task.spot_checks
        )
    elif task.operation == "rollback_batch" and task.verify and task.backup:
        # the proof's part: this batch's range of the index (or its chosen listings) against the backup
        ignore_split = task.mode == "remove"
        chosen = task.verify == "chosen"
        result["proof"] = migration.compare_batch(
            task.zpids, task.after, task.to_end, task.backup, ignore_split, chosen
        )
    migration.record_batch(task.run_id, task.batch, result)
    return result


def record_failure(failed: FailedBatch, migration: Migration) -> dict[str, Any]:
    """A batch whose retries ran out is recorded as failed, with its error; the run carries on."""
    record = {
        "batch": failed.batch,
        "zpids": failed.zpids,
        "failed": True,
        "error": {"Error": failed.error.Error, "Cause": failed.error.Cause[:1000]},
        # its part of the index, which `finish` verifies itself
        **({"after": failed.after, "to_end": failed.to_end} if failed.verify == "range" else {}),
    }
    migration.record_batch(failed.run_id, failed.batch, record)
    return record


def summarise_batches(rows: Iterable[dict[str, Any]], parts: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Add up the batches' results, streamed (a backup's parts are collected into `parts`)."""
    counts: Counter[str] = Counter()
    failed = []
    left_alone: list[str] = []
    batches = 0
    for row in rows:
        batches += 1
        left_alone += (row.get("left_alone") or [])[: LEFT_ALONE_SHOWN - len(left_alone)]
        if parts is not None and row.get("part") and not row.get("failed"):
            parts.append(row["part"])
        if row.get("failed"):
            failed.append(
                {
                    "batch": row.get("batch"),
                    "zpids": len(row.get("zpids") or []),
                    "error": (row.get("error") or {}).get("Error", "unknown"),
                }
            )
        counts.update(row.get("counts") or {})
    summary = {"batches": batches, "batches_failed": len(failed), "failed_batches": failed[:20], "counts": dict(counts)}
    return summary | ({"left_alone": left_alone} if left_alone else {})


def finish(state: RunState, migration: Migration) -> dict[str, Any]:
    """After the Map: add up the batches, then verify (execute) or prove the rollback. The result is
    kept as the last finished run (`record_run`), which GET /listings/migration shows."""
    result = _finish(state, migration)
    migration.record_run(result)
    return result


def _finish(state: RunState, migration: Migration) -> dict[str, Any]:
    rows: Iterable[dict[str, Any]] = (
        migration.recorded_batches(state.plan.run_id, state.plan.manifest)
        if state.plan
        else artifacts.map_results(state.batches)  # no plan: what the Map itself returned
    )
    parts: list[dict[str, Any]] = []
    # The parts the batches checked once written: verify's (execute), the proof's (a rollback over
    # the index with a backup), added up as the records stream past
    checked = Checked()
    compared = Compared()
    read: _Parts | None = None
    if state.plan and state.operation in ("execute", "verify"):
        read = _Parts("verify", lambda part: checked.merge(Checked.from_json(part), state.spot_checks))
    elif state.plan and state.operation == "rollback" and state.backup:
        read = _Parts("proof", lambda part: compared.merge(Compared.from_json(part)))
    summary = summarise_batches(read.tap(rows) if read else rows, parts)
    metrics.add_metric(name="BatchesFailed", unit="Count", value=summary["batches_failed"])  # alarmed on
    result: dict[str, Any] = {
        "operation": state.operation,
        "run_id": state.plan.run_id if state.plan else None,
        **summary,
    }
    if state.operation == "backup":
        # The manifest makes the parts a backup: written only when every batch wrote its part.
        destination = state.plan.destination if state.plan else None
        result["passed"] = bool(destination) and not summary["batches_failed"]
        if result["passed"] and destination:
            result.update(migration.finish_backup(destination, [{"part": part} for part in parts]))
        return result
    chosen = bool(state.zpids)
    # a run planned before batches checked their parts (no range to a part; a chosen rollback's
    # batches proved nothing): one pass, as it was
    one_pass = read is None or (not chosen and any("after" not in row for row in read.unchecked))
    if read is not None and not chosen and not summary["batches"]:  # an empty index: one part, the whole
        read.unchecked.append({"zpids": [], "after": None, "to_end": True})
    if state.operation == "rollback":
        if state.backup:
            remove = state.mode == "remove"
            if one_pass:
                result["proof"] = migration.compare_with_backup(BackupReader(state.backup), ignore_split=remove)
            else:
                assert read is not None
                for row in read.unchecked:  # the batches that failed: their parts checked here
                    part = migration.compare_batch(
                        row["zpids"], row.get("after"), bool(row.get("to_end")), state.backup, remove, chosen
                    )
                    compared.merge(Compared.from_json(part))
                result["proof"] = compared.proof()
        return result
    if one_pass:
        result["verify"] = migration.verify(state.backup, state.spot_checks, zpids=state.zpids)
    else:
        assert read is not None
        for row in read.unchecked:  # the batches that failed: their parts verified here
            part = migration.verify_batch(
                row["zpids"], chosen, row.get("after"), bool(row.get("to_end")), state.backup, state.spot_checks
            )
            checked.merge(Checked.from_json(part), state.spot_checks)
        result["verify"] = migration.verify_from_parts(checked, state.backup, zpids=state.zpids)
    result["passed"] = result["verify"]["passed"] and not summary["batches_failed"]
    return result


class _Parts:
    """The batches' parts under `key` in their records, each handed to `merge` as the records
    stream past (`tap`); the batches that left none (failed) are kept for `finish` to check."""

    def __init__(self, key: str, merge: Callable[[dict[str, Any]], Any]):
        self.key = key
        self.merge = merge
        self.unchecked: list[dict[str, Any]] = []

    def tap(self, rows: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for row in rows:
            if row.get(self.key) is not None:
                self.merge(row[self.key])
            else:
                self.unchecked.append({key: row[key] for key in ("zpids", "after", "to_end") if key in row})
            yield row
