"""One migration run at a time, through the local stack: the run going holds the lease (the
current-run record, `run_lease`), a Step Functions run by its execution, an in-process run by its
process; a run started meanwhile, by Step Functions or in a process, is refused
(`migration_in_progress`) with nothing written, and the lease is free again once its holder has
ended: the execution stopped, or the process silent past the lease."""

from __future__ import annotations

import json
import os
import signal
from typing import Any

import pytest
import requests

from listing_vision import aws
from listing_vision.config import get_settings
from listing_vision.realestate import artifacts, run_lease
from listing_vision.realestate.listings_index import ListingsIndex
from listing_vision.realestate.migration import Migration
from local.stack import LocalStack
from tests.demo_migration import listings_a_forced_execute_would_update, printed
from tests.integration.test_migration_progress import invoke


def lease_record() -> dict[str, Any]:
    return dict(json.loads(artifacts.read_bytes(f"s3://{get_settings().artifacts_bucket}/{run_lease.KEY}")))


def sources(zpids: list[str]) -> dict[str, Any]:
    index = ListingsIndex.from_settings()
    docs = index.client.mget(index=index.name, body={"ids": zpids})["docs"]
    return {doc["_id"]: doc["_source"] for doc in docs}


def test_a_run_is_refused_while_an_execution_holds_the_lease_and_goes_once_it_has_stopped(
    local_stack: LocalStack, running_execution: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from listing_vision.realestate import migrate

    chosen = listings_a_forced_execute_would_update(capsys)
    # Given a run planned by an execution that is still running
    request = {"operation": "execute", "zpids": chosen, "force": True}
    held = invoke(local_stack, {"operation": "plan", "request": request, "execution": running_execution})
    before = sources(chosen)
    # When a Step Functions run of the deployed state machine starts
    assert migrate.main(["--via-stepfunctions", "execute", "--force", "--zpids", ",".join(chosen)]) == 3
    refused = printed(capsys)
    # Then its execution fails at Plan, saying which run is going
    assert (refused["status"], refused["error"]) == ("FAILED", "MigrationInProgress")
    assert held["run_id"] in refused["message"] and "one run at a time" in refused["message"]
    # When an in-process execute starts
    assert migrate.main(["execute", "--force", "--zpids", ",".join(chosen)]) == 3
    # Then it is refused with the stable code, before anything is written
    assert "[migration_in_progress]" in capsys.readouterr().err
    assert sources(chosen) == before
    assert lease_record()["run_id"] == held["run_id"] and lease_record()["execution"] == running_execution
    # And the progress shows the run going, held by its execution
    going = requests.get(f"{local_stack.url}/listings/migration", timeout=10).json()["current_run"]
    assert (going["run_id"], going["execution"]) == (held["run_id"], running_execution)
    # When the holding execution is stopped (as a person stops a run in the console)
    aws.client("stepfunctions").stop_execution(executionArn=running_execution)
    # Then the progress shows no run going, and a run takes the lease, runs and passes, and is the last run
    assert migrate.main(["--via-stepfunctions", "execute", "--force", "--zpids", ",".join(chosen)]) == 0
    run = printed(capsys)
    progress = requests.get(f"{local_stack.url}/listings/migration", timeout=10).json()
    assert progress["current_run"] is None and progress["last_run"]["run_id"] == run["run_id"]


def test_an_in_process_run_holds_the_lease_shows_its_progress_and_frees_it(
    local_stack: LocalStack, capsys: pytest.CaptureFixture[str]
) -> None:
    chosen = listings_a_forced_execute_would_update(capsys)
    migration = Migration.from_settings()
    seen: list[dict[str, Any]] = []
    refusals: list[str] = []

    def work(progress: Any) -> dict[str, Any]:
        # while the run goes: one batch done, the progress read, and a second run tried
        result = migration.execute_verified(chosen, batch_size=1, force=True, progress=progress)
        seen.append(requests.get(f"{local_stack.url}/listings/migration", timeout=10).json()["current_run"])
        try:
            migration.plan(1, chosen, operation="execute", execution=None)
        except run_lease.MigrationInProgress as error:
            refusals.append(error.code)
        return result

    # When an in-process execute runs over two listings, a batch each
    result = migration.run_in_process("execute", len(chosen), 1, work)
    # Then while it ran the progress showed it, held by this process, both batches done
    assert seen[0]["run_id"] == result["run_id"] and seen[0]["holder"].endswith(f":{os.getpid()}")
    assert (seen[0]["batches"], seen[0]["running"]) == (2, True)
    # And a run planned meanwhile was refused
    assert refusals == ["migration_in_progress"]
    # And once it ended, it is the last run and the lease is free
    progress = requests.get(f"{local_stack.url}/listings/migration", timeout=10).json()
    assert progress["current_run"] is None
    assert (progress["last_run"]["run_id"], progress["last_run"]["passed"]) == (result["run_id"], True)
    assert (progress["last_run"]["batches_failed"], progress["last_run"]["listings_failed"]) == (0, 0)


def test_an_in_process_run_that_failed_listings_shows_them_in_the_last_run(local_stack: LocalStack) -> None:
    migration = Migration.from_settings()

    def work(progress: Any) -> dict[str, Any]:
        progress(2)  # one batch of two listings, one of which the index refused
        return {"operation": "execute", "failed": {"42": "400 mapper_parsing_exception"}, "passed": False}

    # When an in-process run ends with a listing failed (its batch went on past it)
    result = migration.run_in_process("execute", 2, 2, work)
    # Then the last run counts the failed listing, beside its batches (none failed as a whole)
    last = requests.get(f"{local_stack.url}/listings/migration", timeout=10).json()["last_run"]
    assert last["run_id"] == result["run_id"] and last["passed"] is False
    assert (last["batches"], last["batches_failed"], last["listings_failed"]) == (1, 0, 1)


def test_a_process_silent_past_the_lease_loses_it_and_cannot_write_it_back(
    local_stack: LocalStack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from listing_vision.realestate import migrate

    chosen = listings_a_forced_execute_would_update(capsys)
    bucket = get_settings().artifacts_bucket
    # Given an in-process run that took the lease and then fell silent (its process killed)
    dead = run_lease.take(bucket, {"run_id": "dead-run", "operation": "execute", "started_at": 0})
    # Then while its lease lasts, an in-process execute is refused
    assert migrate.main(["execute", "--force", "--zpids", ",".join(chosen)]) == 3
    assert "dead-run" in capsys.readouterr().err
    # When the lease has lapsed (no renewal for LEASE_S: here, none at all)
    monkeypatch.setattr(run_lease, "LEASE_S", -1)
    # Then an execute takes it over, runs and passes
    assert migrate.main(["execute", "--force", "--zpids", ",".join(chosen)]) == 0
    taken = printed(capsys)
    assert lease_record()["run_id"] == taken["run_id"] and lease_record()["finished_at"] is not None
    # And the silent run, waking, cannot write the lease back: its conditional write is refused, and
    # it is told it lost the lease (not that it was refused before writing)
    with pytest.raises(run_lease.LeaseLost) as lost:
        dead.update(batches_done=1)
    assert lost.value.code == "migration_lease_lost" and "dead-run stopped" in lost.value.message
    assert lease_record()["run_id"] == taken["run_id"]


def test_a_run_stopped_by_a_signal_frees_the_lease_and_a_record_no_run_wrote_holds_nothing(
    local_stack: LocalStack, capsys: pytest.CaptureFixture[str]
) -> None:
    from listing_vision.realestate import migrate

    chosen = listings_a_forced_execute_would_update(capsys)
    migration = Migration.from_settings()

    def terminated(progress: Any) -> dict[str, Any]:
        os.kill(os.getpid(), signal.SIGTERM)  # as `timeout` or a CI cancel stops the command
        raise AssertionError("SIGTERM did not stop the run")

    # When an in-process run is sent SIGTERM mid-way (as the CLI runs it: SIGTERM ends it as Ctrl-C does)
    with pytest.raises(SystemExit) as stopped, migrate._stopped_as_interrupted():
        migration.run_in_process("execute", len(chosen), 1, terminated)
    # Then it ended, releasing the lease, marked failed
    assert stopped.value.code == 128 + signal.SIGTERM
    assert lease_record()["finished_at"] is not None and lease_record()["failed"] is True
    # Given a current-run record that no run wrote (not a JSON object)
    for body in (b"not json{", b"[1, 2]"):
        aws.client("s3").put_object(Bucket=get_settings().artifacts_bucket, Key=run_lease.KEY, Body=body)
        # Then the progress shows no run going, and an execute takes the lease and runs
        progress = requests.get(f"{local_stack.url}/listings/migration", timeout=10)
        assert progress.status_code == 200 and progress.json()["current_run"] is None
        assert migrate.main(["execute", "--force", "--zpids", ",".join(chosen)]) == 0
        assert lease_record()["run_id"] == printed(capsys)["run_id"]
