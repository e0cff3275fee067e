"""Least privilege, proven from what the code really does: every AWS call each function made while
the integration and workflow tests ran (recorded on the local stack) is allowed by that function's
role in the synthesized template, and every grant of the role was used by some recorded call.

These tests run after all the others. In one pytest process (tests/conftest.py orders them last)
they read the calls the session's local stack recorded; run on their own, they have nothing to check
and say so. `make test` runs the others in parallel (pytest-xdist, a stack per worker) with
LOCAL_RECORDED_CALLS naming a folder, each worker's stack writes its calls there, and then runs
these over every worker's calls: there, a folder with no recording fails. There too, the roles'
grants are those of the stack the parallel run's infrastructure tests synthesized, left beside the
calls (tests/infra/conftest.py), rather than a second synthesis of the same stack; run any other way,
these tests synthesize it themselves.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from functions.specs import FUNCTIONS
from local.call_recorder import Call
from tests.conftest import GRANTS_FROM_THIS_RUN, RECORDED_CALLS
from tests.infra.conftest import Synthesized, grants_file
from tests.infra.iam import Grant, RolePolicies, read_grants

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
def grants(request: pytest.FixtureRequest) -> dict[str, list[Grant]]:
    """Each function's grants: read back from the stack `make test`'s parallel run synthesized when this
    is its next step (GRANTS_FROM_THIS_RUN; the folder was emptied before that run, so they are this
    run's), else from a synthesis of its own, as when these tests run alone."""
    if os.environ.get(GRANTS_FROM_THIS_RUN) and os.environ.get(RECORDED_CALLS):
        saved = grants_file(os.environ[RECORDED_CALLS])
        if saved.exists():  # absent when the run left the infrastructure tests out (PYTEST_ARGS)
            return read_grants(saved)
    synthesized: Synthesized = request.getfixturevalue("synthesized")
    policies = RolePolicies(synthesized.stack, synthesized.template.to_json())
    return {spec.name: policies.grants(spec.name) for spec in FUNCTIONS}


def test_every_function_made_calls(recorded: dict[str, set[Call]]) -> None:
    # Each function ran under the tests: a function that made no call would prove nothing here
    assert {name for name, calls in recorded.items() if not calls} == set()


def test_every_recorded_call_is_allowed_by_its_functions_role(
    recorded: dict[str, set[Call]], grants: dict[str, list[Grant]]
) -> None:
    denied = {
        f"{call.function}: {call.action} on {call.resource}"
        for name, calls in recorded.items()
        for call in calls
        if not any(grant.allows(call) for grant in grants[name])
    }
    assert not denied, "calls the deployed roles would refuse (AccessDenied on AWS):\n" + "\n".join(sorted(denied))


def test_every_grant_is_used_by_a_recorded_call(recorded: dict[str, set[Call]], grants: dict[str, list[Grant]]) -> None:
    unused = {
        f"{name}: {grant.action} on {grant.resource}"
        for name in recorded
        for grant in grants[name]
        if not any(grant.allows(call) for call in recorded[name])
    }
    assert not unused, "grants no recorded call uses (remove them, or exercise them in a test):\n" + "\n".join(
        sorted(unused)
    )
