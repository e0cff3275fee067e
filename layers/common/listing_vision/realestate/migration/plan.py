"""plan: the batches of zpids an execute, rollback or backup fans out over, written as an S3
manifest for the Map state; and the batches' records under the run, which `finish` reads back."""

from __future__ import annotations

import itertools
import json
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

from botocore.exceptions import ClientError

from listing_vision.concurrency import thread_map
from listing_vision.errors import InvalidRequest
from listing_vision.realestate import artifacts, run_lease
from listing_vision.realestate.migration.common import MigrationBase, Progress, batches, with_last

# Batch records `finish` reads at once, and how many it holds: one after another they were most of
# its time at a million listings (10,000 GETs; bench/migration_model.py). Order and memory kept.
RECORD_READS = 16
RECORD_WINDOW = 256


class Plan(MigrationBase):
    def plan(
        self,
        batch_size: int = 100,
        zpids: list[str] | None = None,
        run_id: str | None = None,
        operation: str = "execute",
        options: dict[str, Any] | None = None,
        execution: str | None = None,
    ) -> dict[str, Any]:
        """Write the batches as a JSON array manifest for the Map state's S3 ItemReader, once the run
        holds the lease (`run_lease`: one run at a time), held by its Step Functions `execution`
        (without one, by this process: end it with `end_run`)."""
        if not 1 <= batch_size <= 1000:
            raise InvalidRequest("batch_size must be between 1 and 1000.", code="invalid_batch_size")
        # a run id named twice would overwrite the first run's records, unless this is its own Plan, retried
        if run_id and self._run_recorded(run_id) and not self._retried(run_id, execution):
            raise InvalidRequest(
                f"A run {run_id} was planned already: its manifest and batch records are kept for audit. "
                "Name another run_id, or leave it out for a new one.",
                code="run_id_taken",
            )
        run_id = run_id or new_run_id()
        # The run going, which GET /listings/migration shows until `finish` marks it ended (`record_run`):
        # taken before anything is written, so a run refused writes nothing
        going = {"run_id": run_id, "operation": operation, "started_at": int(time.time())}
        lease = run_lease.take(self.artifacts_bucket, going, execution)
        if operation == "execute":
            self.listings.ensure_split_mapping()
        counted = Counter[str]()

        by_range = (options or {}).get("verify") == "range"

        def manifest() -> Iterator[bytes]:
            # A JSON array, one item a line: the ItemReader reads it whole, `recorded_batches` a line at a time.
            yield b"["
            after: str | None = None
            for number, (group, to_end) in enumerate(with_last(batches(self._ids(zpids), batch_size))):
                item = {"run_id": run_id, "operation": f"{operation}_batch", "batch": number, "zpids": group}
                if by_range:  # the batch verifies its part of the index: after the previous batch's last id
                    item |= {"after": after, "to_end": to_end}
                    after = max(group)
                yield (b"\n" if number == 0 else b",\n") + json.dumps(item | (options or {})).encode()
                counted["listings"] += len(group)
                counted["batches"] += 1
            yield b"\n]\n"

        key = manifest_key(run_id)
        artifacts.write_stream(f"s3://{self.artifacts_bucket}/{key}", manifest(), "application/json")
        lease.update(batches=counted["batches"], listings=counted["listings"])
        return {
            "operation": "plan",
            "run_id": run_id,
            "listings": counted["listings"],
            "batches": counted["batches"],
            "manifest": {"bucket": self.artifacts_bucket, "key": key},
            "results_prefix": f"migrations/{run_id}/results",
        }

    def _run_recorded(self, run_id: str) -> bool:
        try:
            artifacts.read_bytes(f"s3://{self.artifacts_bucket}/{manifest_key(run_id)}")
        except FileNotFoundError:  # artifacts.ArtifactNotFound: no run of that id
            return False
        return True

    def _retried(self, run_id: str, execution: str | None) -> bool:
        return execution is not None and run_lease.holds(self.artifacts_bucket, run_id, execution)

    def record_batch(self, run_id: str, batch: int, result: dict[str, Any]) -> None:
        """Each completed batch leaves its result under the run, for `finish` and for audit."""
        location = f"s3://{self.artifacts_bucket}/{batch_records_prefix(run_id)}{batch:05d}.json"
        artifacts.write_bytes(location, json.dumps(result).encode(), "application/json")

    def run_in_process(
        self,
        operation: str,
        listings: int,
        batch_size: int,
        work: Callable[[Progress], dict[str, Any]],
        progress: Progress | None = None,
    ) -> dict[str, Any]:
        """An execute or rollback in this process (the CLI's), as a run: it holds the lease while
        `work` runs (renewed as its batches pass, with how many have), and its result is kept as
        the last run, as a Step Functions run's is."""
        run_id = new_run_id()
        going = {
            "run_id": run_id,
            "operation": operation,
            "batches": -(-listings // batch_size),
            "listings": listings,
            "batches_done": 0,
            "started_at": int(time.time()),
        }
        lease = run_lease.take(self.artifacts_bucket, going)
        done = 0

        def batch_done(count: int) -> None:
            nonlocal done
            done += 1
            lease.renew_if_due(batches_done=done)
            if progress:
                progress(count)

        try:
            result = work(batch_done)
        except BaseException:
            lease.release(batches_done=done, failed=True)
            raise
        result = {"run_id": run_id, **result}
        # failed listings are counted, not failed batches (here a batch goes on past a listing that
        # failed; on Step Functions the listing fails its batch): the last run shows both figures
        failed = len(result.get("failed") or {})
        finished_at = self._record_last_run({"batches": done, "listings_failed": failed, **result})
        lease.release(batches_done=done, finished_at=finished_at)
        return result

    def record_run(self, result: dict[str, Any]) -> None:
        """A finished run's result (batches done and failed, verify's report) as the last run, which
        GET /listings/migration shows (`migration_progress.last_run`); the run going ends with it."""
        self.end_run(result.get("run_id"), self._record_last_run(result))

    def _record_last_run(self, result: dict[str, Any]) -> int:
        record = {"finished_at": int(time.time()), **result}
        artifacts.write_bytes(last_run_location(self.artifacts_bucket), json.dumps(record).encode(), "application/json")
        return int(record["finished_at"])

    def end_run(self, run_id: str | None, finished_at: int | None = None) -> None:
        """Mark the run going as ended, freeing the lease (when it is this one: a later run's record
        is left alone)."""
        finished_at = finished_at or int(time.time())
        if not run_id:  # a run without a plan (the Map's own output) recorded none
            return
        location = current_run_location(self.artifacts_bucket)
        try:
            current = json.loads(artifacts.read_bytes(location))
        except (ClientError, FileNotFoundError, ValueError):  # none, or not JSON: no run's, not this one's
            return
        if isinstance(current, dict) and current.get("run_id") == run_id:
            ended = current | {"finished_at": finished_at}
            artifacts.write_bytes(location, json.dumps(ended).encode(), "application/json")

    @staticmethod
    def planned_batches(manifest: dict[str, str]) -> Iterator[dict[str, Any]]:
        """The plan's items, a line at a time (plans write one item a line; an older one-line array is read whole)."""
        pending = b""
        for chunk in artifacts.read_chunks(f"s3://{manifest['bucket']}/{manifest['key']}"):
            *lines, pending = (pending + chunk).split(b"\n")
            for line in lines:
                yield from _plan_items(line)
        yield from _plan_items(pending)

    def recorded_batches(self, run_id: str, manifest: dict[str, str]) -> Iterator[dict[str, Any]]:
        """Every planned batch's result, streamed in plan order (read RECORD_READS at a time, a window of
        RECORD_WINDOW held); a batch with no record failed (its retries and Catch ran out)."""

        def record(item: dict[str, Any]) -> dict[str, Any]:
            location = f"s3://{self.artifacts_bucket}/migrations/{run_id}/batches/{item['batch']:05d}.json"
            try:
                return dict(json.loads(artifacts.read_bytes(location)))
            except (ClientError, FileNotFoundError):
                return {
                    "batch": item["batch"],
                    "zpids": item["zpids"],
                    "failed": True,
                    "error": {"Error": "no result recorded"},
                    **{key: item[key] for key in ("after", "to_end") if key in item},
                }

        items = self.planned_batches(manifest)
        while window := list(itertools.islice(items, RECORD_WINDOW)):
            yield from thread_map(record, window, RECORD_READS)


def new_run_id() -> str:
    return f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{uuid.uuid4().hex[:8]}"


def manifest_key(run_id: str) -> str:
    return f"migrations/{run_id}/manifest.json"


def last_run_location(bucket: str) -> str:
    return f"s3://{bucket}/migrations/last-run.json"


def current_run_location(bucket: str) -> str:
    return f"s3://{bucket}/{run_lease.KEY}"


def batch_records_prefix(run_id: str) -> str:
    """Where a run's batch records lie (`record_batch`), as a key prefix of the artifacts bucket."""
    return f"migrations/{run_id}/batches/"


def _plan_items(line: bytes) -> Iterator[dict[str, Any]]:
    text = line.strip().rstrip(b",")
    if text in (b"", b"[", b"]"):
        return
    if text.startswith(b"["):  # a plan written as one line
        yield from json.loads(text)
        return
    yield json.loads(text)
