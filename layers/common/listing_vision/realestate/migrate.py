"""The migration from a terminal: `python -m listing_vision.realestate.migrate OPERATION [options]`.

    coverage  [--sample N]                         dry-run [--sample N | --zpids A,B] [--force]
    backup    [--destination s3://…|PATH]          execute [--zpids …] [--batch-size N] [--force]
    verify    [--backup LOCATION] [--zpids A,B]    rollback [--mode remove|restore] [--backup LOCATION]
    classify-phrases [--dry-run] [--limit N] [--segments N]
    analyse-missing  [--dry-run] [--limit N] [--zpids A,B]   (in this process only)

By default the operation runs in this process with a progress bar. `--via-stepfunctions` starts it
as an execution of the `visual-features-migration` state machine instead (fan-out over batches)
and follows it, showing progress as the number of migrated listings in the index (the
migration's monitoring figure). Results print as JSON; the exit status is 0 only when the operation
succeeded (verify: passed). One run at a time: an execute or rollback here, or any fanned-out run,
holds the run's lease (`run_lease`) while it runs, and one started meanwhile is refused
(`migration_in_progress`, exit status 3; on Step Functions, its execution fails at Plan with that error).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from listing_vision import aws
from listing_vision.errors import InvalidRequest
from listing_vision.events import parse_event
from listing_vision.realestate import missing_analyses
from listing_vision.realestate.features import SPLIT_FIELDS
from listing_vision.realestate.listings_index import ListingsIndex
from listing_vision.realestate.migration import Migration
from listing_vision.realestate.migration_tasks import (
    ZPID_PATTERN,
    ClassifyPhrasesRequest,
    ExecuteRequest,
    MigrationTask,
    RollbackRequest,
    run_classify_phrases,
    run_task,
)
from listing_vision.realestate.run_lease import MigrationInProgress
from listing_vision.resources import MIGRATION_STATE_MACHINE


def _bar(total: int | None, desc: str, unit: str = "listing") -> Any:
    try:
        from tqdm import tqdm

        return tqdm(total=total, unit=unit, desc=desc)
    except ImportError:  # plain lines without tqdm

        class Lines:
            done = 0

            def update(self, n: int) -> None:
                self.done += n
                print(f"{desc}: {self.done}/{total}", flush=True)

            def close(self) -> None:
                pass

        return Lines()


def chosen_zpids(text: str) -> list[str]:
    """The listing ids of `--zpids A,B`: spaces around each are dropped (`A, B` is how people type a
    list), and an id that is not one (a full-width or Arabic-Indic digit, a zero-width space, a
    Cyrillic letter: it would silently match no listing, and execute and rollback take the ids as
    given) stops the command before anything runs."""
    zpids = [z.strip(" \t") for z in text.split(",") if z.strip(" \t")]
    wrong = [z for z in zpids if not re.fullmatch(ZPID_PATTERN, z, re.ASCII)]
    if wrong:
        raise SystemExit(
            f"--zpids: {ascii(wrong[0])[:60]} is not a listing id (ASCII letters, digits, _ or -; 1 to 40)."
        )
    return zpids


def _event(args: argparse.Namespace) -> dict[str, Any]:
    event: dict[str, Any] = {"operation": args.operation.replace("-", "_")}
    for name in ("sample", "destination", "batch_size", "backup", "mode", "spot_checks", "limit", "segments"):
        value = getattr(args, name, None)
        if value is not None:
            event[name] = value
    if getattr(args, "zpids", None):
        event["zpids"] = chosen_zpids(args.zpids)
    for flag in ("force", "dry_run"):
        if getattr(args, flag, False):
            event[flag] = True
    return event


def run_here(args: argparse.Namespace) -> dict[str, Any]:
    migration = Migration.from_settings()
    event = _event(args)
    operation = event["operation"]
    zpids = event.get("zpids")
    if operation in ("execute", "rollback"):
        # the same request models as on Step Functions: an option out of range is refused here too
        request = parse_event(event, ExecuteRequest if operation == "execute" else RollbackRequest)
        total = len(request.zpids) if request.zpids else migration.listings.count()

        def work(renew: Callable[[int], None]) -> dict[str, Any]:
            bar = _bar(total, operation)  # drawn once the run holds the lease: a refused one draws none

            def progress(count: int) -> None:
                renew(count)
                bar.update(count)

            try:
                if isinstance(request, ExecuteRequest):
                    # each batch checks its part once written (only those chosen): verify needs no second pass
                    return migration.execute_verified(
                        request.zpids, request.batch_size, request.force, request.backup, progress=progress
                    )
                return migration.rollback(
                    request.mode, request.backup, request.zpids, request.batch_size, progress=progress
                )
            finally:
                bar.close()

        # a run as a Step Functions one is: one at a time (the lease), its result kept as the last run
        return migration.run_in_process(operation, total, request.batch_size, work)
    if operation == "analyse_missing":
        bar = _bar(None, "analyse-missing", unit="image")
        try:
            return missing_analyses.run(
                migration, zpids, event.get("limit"), bool(event.get("dry_run")), progress=bar.update
            )
        finally:
            bar.close()
    task = parse_event(event, MigrationTask)
    if isinstance(task, ClassifyPhrasesRequest):
        bar = _bar(None, "classify-phrases", unit="phrase")  # how many is known once the cache has been read
        try:
            return run_classify_phrases(task, migration, progress=bar.update)
        finally:
            bar.close()
    return run_task(task, migration)


def run_on_step_functions(args: argparse.Namespace, poll_s: float = 2.0) -> dict[str, Any]:
    sfn = aws.client("stepfunctions")
    machines = [m for m in sfn.list_state_machines()["stateMachines"] if m["name"] == args.state_machine]
    if not machines:
        raise SystemExit(f"No state machine named {args.state_machine!r} in this account and region.")
    event = _event(args)
    name = f"{event['operation']}-{time.strftime('%Y%m%dT%H%M%S')}-{time.time_ns() % 10**6}"
    execution = sfn.start_execution(stateMachineArn=machines[0]["stateMachineArn"], name=name, input=json.dumps(event))[
        "executionArn"
    ]
    print(f"started {execution}", file=sys.stderr, flush=True)
    listings = ListingsIndex.from_settings()  # the run's progress: listings with all three fields
    total = listings.count()
    bar = (
        _bar(total, f"{event['operation']} (listings with all three fields)")
        if event["operation"] in ("execute", "rollback")
        else None
    )
    shown = listings.field_presence(SPLIT_FIELDS)["all_fields"] if bar else 0
    if bar and event["operation"] == "execute":
        bar.update(shown)
    try:
        while True:
            described = sfn.describe_execution(executionArn=execution)
            if bar:
                now = listings.field_presence(SPLIT_FIELDS)["all_fields"]
                delta = now - shown if event["operation"] == "execute" else shown - now
                if delta > 0:
                    bar.update(delta)
                    shown = now
            if described["status"] != "RUNNING":
                break
            time.sleep(poll_s)
    finally:
        if bar:
            bar.close()
    if described["status"] != "SUCCEEDED":
        return {
            "operation": event["operation"],
            "status": described["status"],
            "execution": execution,
            "error": described.get("error"),
            **_cause(described.get("cause")),
            "passed": False,
        }
    return {"execution": execution, **json.loads(described["output"])}


def _cause(cause: str | None) -> dict[str, Any]:
    """A failed execution's cause as a person reads it: a function's error is its message (the stack
    trace stays in the execution's history); any other cause as it is."""
    try:
        failure = json.loads(cause or "")
    except ValueError:
        return {"cause": cause}
    if isinstance(failure, dict) and "errorMessage" in failure:
        return {"message": failure["errorMessage"]}
    return {"cause": cause}


@contextlib.contextmanager
def _stopped_as_interrupted() -> Iterator[None]:
    """SIGTERM (a `timeout`, a CI cancel, systemd) and SIGHUP (a dropped terminal) end the command as
    Ctrl-C does, unwinding it: an in-process run releases its lease rather than hold it till it lapses."""

    def stop(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    if threading.current_thread() is not threading.main_thread():  # signals reach the main thread only
        yield
        return
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"a whole number of at least 1, not {text!r}")
    return int(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m listing_vision.realestate.migrate", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--via-stepfunctions", action="store_true", help="run as a state machine execution")
    parser.add_argument("--state-machine", default=MIGRATION_STATE_MACHINE)
    commands = parser.add_subparsers(dest="operation", required=True)
    coverage = commands.add_parser("coverage", help="cache coverage and stale splits of a sample")
    coverage.add_argument("--sample", type=int, default=100)
    dry = commands.add_parser("dry-run", help="before and after, nothing written")
    dry.add_argument("--sample", type=int, default=5)
    dry.add_argument("--zpids")
    dry.add_argument("--force", action="store_true", help="say what a forced execute would do")
    backup = commands.add_parser("backup", help="every listing's source to JSONL with a checksum manifest")
    backup.add_argument("--destination", help="s3://bucket/key.jsonl or a local path (default: the artifacts bucket)")
    execute = commands.add_parser("execute", help="write the three fields where missing or stale (resumable)")
    execute.add_argument("--zpids")
    execute.add_argument("--batch-size", type=int, default=100)
    execute.add_argument("--force", action="store_true", help="recompute listings whose split is fresh too")
    execute.add_argument("--backup", help="a backup to prove nothing else changed")
    verify = commands.add_parser("verify", help="the success criteria: >= 90 %% migrated, nothing else changed")
    verify.add_argument("--backup", help="a backup to prove nothing else changed")
    verify.add_argument("--spot-checks", type=int, default=10)
    verify.add_argument("--zpids", help="verify these listings only (a small run's)")
    rollback = commands.add_parser("rollback", help="remove the three fields or restore from a backup")
    rollback.add_argument("--mode", choices=["remove", "restore"], default="remove")
    rollback.add_argument("--backup", help="required for --mode restore; proves the result either way")
    rollback.add_argument("--zpids")
    classify = commands.add_parser(
        "classify-phrases", help="classify, once each, the cached feature phrases the taxonomy does not know"
    )
    classify.add_argument("--dry-run", action="store_true", help="count what would be classified; store nothing")
    classify.add_argument("--limit", type=int, help="classify at most N phrases in this run (rerun to go on)")
    classify.add_argument("--segments", type=int, help="parallel scan segments of the vision cache (default 4)")
    analyse = commands.add_parser(
        "analyse-missing", help="analyse the listings' images the vision cache lacks, then split those listings"
    )
    analyse.add_argument("--dry-run", action="store_true", help="count what would be analysed; call no model")
    analyse.add_argument("--limit", type=_positive, help="analyse at most N images in this run (rerun to go on)")
    analyse.add_argument("--zpids", help="these listings only")
    args = parser.parse_args(argv)
    if args.operation == "analyse-missing" and args.via_stepfunctions:
        parser.error("analyse-missing runs in this process only (it calls the vision model; rerun to resume)")
    try:
        with _stopped_as_interrupted():
            result = run_on_step_functions(args) if args.via_stepfunctions else run_here(args)
    except InvalidRequest as error:  # an option out of its range (--sample 0): a usage error, not a traceback
        named = "" if error.code == InvalidRequest.code else f" [{error.code}]"
        parser.error(str(error).removeprefix("The event is not valid: ") + named)
    except MigrationInProgress as error:  # another run holds the lease (or took this one's lapsed lease)
        print(f"{parser.prog}: {error.message} [{error.code}]", file=sys.stderr)
        return 3
    except KeyboardInterrupt:  # Ctrl-C: the run has released its lease; a rerun resumes
        print(f"{parser.prog}: interrupted", file=sys.stderr)
        return 130
    print(json.dumps(result, indent=2, default=str))
    if result.get("error") == "MigrationInProgress":  # its Plan refused it: another run holds the lease
        return 3
    if result.get("passed") is False:
        return 1
    proof = result.get("proof")
    if proof is not None and not proof.get("identical"):
        return 1
    return 2 if result.get("failed") else 0


if __name__ == "__main__":
    sys.exit(main())
