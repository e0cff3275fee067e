"""The migration state machine's input is a person's (typed into the console): only the operations
they may start reach the function, and what a location names is the S3 key it spells. Executions of
the deployed state machine on the local stack."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from listing_vision.config import get_settings
from listing_vision.realestate import artifacts, run_lease
from listing_vision.realestate.migration.plan import last_run_location
from local.stack import LocalStack
from tests.demo_migration import listings_a_forced_execute_would_update, run_execution
from tests.integration.test_migration_lease import sources


def run(local_stack: LocalStack, payload: Any) -> dict[str, Any]:
    """An execution of the deployed state machine with this input, once ended."""
    return run_execution(local_stack.migration_arn, payload, name="input")


def test_only_the_operations_a_person_may_start_reach_the_function(
    local_stack: LocalStack, capsys: pytest.CaptureFixture[str]
) -> None:
    chosen = listings_a_forced_execute_would_update(capsys)
    bucket = get_settings().artifacts_bucket
    last = artifacts.read_bytes(last_run_location(bucket)) if _exists(last_run_location(bucket)) else None
    before = sources(chosen)
    # When an execution's input is one of the tasks' own operations, or no operation at all
    inputs = [
        {"operation": "execute_batch", "run_id": "typed", "batch": 0, "zpids": chosen, "force": True},
        {"operation": "rollback_batch", "run_id": "typed", "batch": 0, "zpids": chosen},
        {"operation": "finish", "request": {"operation": "execute", "zpids": chosen}},
        {"operation": "plan", "request": {"operation": "execute"}, "execution": "arn:aws:states:x:1:execution:m:e"},
        {},
        {"operation": 5},
        ["execute"],
    ]
    for payload in inputs:
        ended = run(local_stack, payload)
        # Then it fails as not an operation, naming those it may be
        assert (ended["status"], ended.get("error")) == ("FAILED", "InvalidRequest"), payload
        assert "dry_run" in ended["cause"] and "execute" in ended["cause"], ended["cause"]
    # When an execute lists no listing at all, or says "yes" where true or false is meant
    refused = {
        "at least 1 item": {"operation": "execute", "zpids": []},
        "valid boolean": {"operation": "execute", "zpids": chosen, "force": "yes"},
    }
    for problem, payload in refused.items():
        ended = run(local_stack, payload)
        # Then it is refused (an empty list is no choice: not "every listing"; "yes" is not read as true)
        assert (ended["status"], ended.get("error")) == ("FAILED", "InvalidRequest"), payload
        assert problem in ended["cause"], ended["cause"]
    # And none of them wrote anything: the listings, the last run as they were
    assert sources(chosen) == before
    assert (artifacts.read_bytes(last_run_location(bucket)) if last is not None else None) == last


def test_a_backup_location_names_the_key_it_spells_and_a_backup_there_is_never_overwritten(
    local_stack: LocalStack,
) -> None:
    bucket = get_settings().artifacts_bucket
    # When a backup is written to a location that, read as a URL, would be the run's own lease record
    destination = f"s3://{bucket}/migrations/{run_lease.KEY.split('/')[-1]}#?v=1"
    ended = run(local_stack, {"operation": "backup", "destination": destination})
    # Then it is written under that very key, and the lease record is the run's, whole
    assert ended["status"] == "SUCCEEDED", ended
    result = json.loads(ended["output"])
    assert result["passed"] is True
    assert _exists(f"{destination}.manifest.json")
    lease = json.loads(artifacts.read_bytes(f"s3://{bucket}/{run_lease.KEY}"))
    assert lease["run_id"] == result["run_id"] and lease["finished_at"] is not None
    # When a second backup names the same location
    manifest = artifacts.read_bytes(f"{destination}.manifest.json")
    again = run(local_stack, {"operation": "backup", "destination": destination})
    # Then it is refused before it writes anything: the first backup, a restore point, stays whole
    assert (again["status"], again.get("error")) == ("FAILED", "BackupExists"), again
    assert "already" in again["cause"]
    assert artifacts.read_bytes(f"{destination}.manifest.json") == manifest


def _exists(location: str) -> bool:
    try:
        artifacts.read_bytes(location)
    except FileNotFoundError:
        return False
    return True


def test_a_run_id_names_one_run_whose_records_are_kept(
    local_stack: LocalStack, capsys: pytest.CaptureFixture[str]
) -> None:
    chosen = listings_a_forced_execute_would_update(capsys)
    bucket = get_settings().artifacts_bucket
    run_id = f"audit-{uuid.uuid4().hex[:8]}"
    # Given a run that named its run id
    first = run(local_stack, {"operation": "verify", "zpids": chosen, "run_id": run_id})
    assert first["status"] == "SUCCEEDED", first
    manifest = artifacts.read_bytes(f"s3://{bucket}/migrations/{run_id}/manifest.json")
    # When another run names the same id
    again = run(local_stack, {"operation": "execute", "zpids": chosen, "run_id": run_id})
    # Then it is refused, and the first run's records are as it left them
    assert (again["status"], again.get("error")) == ("FAILED", "InvalidRequest"), again
    assert "planned already" in again["cause"]
    assert artifacts.read_bytes(f"s3://{bucket}/migrations/{run_id}/manifest.json") == manifest
