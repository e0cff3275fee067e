"""Least privilege, proven from what the code really does: every AWS call each function made while
the integration and workflow tests ran (recorded on the local stack) is allowed by that function's
role in the synthesized template, and every grant of the role was used by some recorded call.

These tests run after all the others. In one pytest process (tests/conftest.py orders them last)
they read the calls the session's local stack recorded; run on their own, they have nothing to check
and say so. `make test` runs the others in parallel (pytest-xdist, a stack per worker) with
LOCAL_RECORDED_CALLS naming a folder, each worker's stack writes its calls there, and then runs
these over every worker's calls: there, a folder with no recording fails.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from functions.specs import FUNCTIONS
from local.call_recorder import Call
from tests.conftest import RECORDED_CALLS
from tests.infra.conftest import Synthesized
from tests.infra.iam import RolePolicies

pytestmark = pytest.mark.after_recording


def calls_written_to(folder: Path) -> set[Call]:
    """Every call the sessions recorded into the folder (one JSON file per session)."""
    files = sorted(folder.glob("*.json"))
    assert files, f"no recorded calls in {folder}: the run before this one (make test) wrote none"
    return {Call(**row) for file in files for row in json.loads(file.read_text())}


@pytest.fixture(scope="module")
def recorded(request: pytest.FixtureRequest) -> dict[str, set[Call]]:
    if os.environ.get(RECORDED_CALLS):  # written by the sessions of an earlier run
        calls = calls_written_to(Path(os.environ[RECORDED_CALLS]))
        return {spec.name: {call for call in calls if call.function == spec.name} for spec in FUNCTIONS}
    local_stack = request.getfixturevalue("local_stack")  # recorded by this session's stack
    assert local_stack.recorder is not None
    by_function = {spec.name: local_stack.recorder.for_function(spec.name) for spec in FUNCTIONS}
    if not any(by_function.values()):
        pytest.skip("no calls recorded: run the whole suite (make test), the integration tests record them")
    return by_function


@pytest.fixture(scope="module")
def policies(synthesized: Synthesized) -> RolePolicies:
    return RolePolicies(synthesized.stack, synthesized.template.to_json())


def test_every_function_made_calls(recorded: dict[str, set[Call]]) -> None:
    # Each function ran under the tests: a function that made no call would prove nothing here
    assert {name for name, calls in recorded.items() if not calls} == set()


def test_every_recorded_call_is_allowed_by_its_functions_role(
    recorded: dict[str, set[Call]], policies: RolePolicies
) -> None:
    denied = {
        f"{call.function}: {call.action} on {call.resource}"
        for name, calls in recorded.items()
        for call in calls
        if not any(grant.allows(call) for grant in policies.grants(name))
    }
    assert not denied, "calls the deployed roles would refuse (AccessDenied on AWS):\n" + "\n".join(sorted(denied))


def test_every_grant_is_used_by_a_recorded_call(recorded: dict[str, set[Call]], policies: RolePolicies) -> None:
    unused = {
        f"{name}: {grant.action} on {grant.resource}"
        for name in recorded
        for grant in policies.grants(name)
        if not any(grant.allows(call) for call in recorded[name])
    }
    assert not unused, "grants no recorded call uses (remove them, or exercise them in a test):\n" + "\n".join(
        sorted(unused)
    )
