"""Demo listings for the migration's tests on the local stack: the two a forced execute would update
(chosen by a dry run), and a Step Functions run over them; what the migration's command printed;
an execution of a state machine, run to its end."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest

from listing_vision import aws

DEMO_LISTINGS, DEMO_SEED = 40, 9


def printed(capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    """The JSON document the command printed last."""
    lines = capsys.readouterr().out.splitlines()
    start = max(i for i, line in enumerate(lines) if line == "{")
    return dict(json.loads("\n".join(lines[start:])))


def listings_a_forced_execute_would_update(capsys: pytest.CaptureFixture[str]) -> list[str]:
    """The zpids of two demo listings (loaded with their cached analyses) that a dry run says a
    forced execute would update."""
    from listing_vision.realestate import migrate
    from local import demo_listings

    demo_listings.load(DEMO_LISTINGS, seed=DEMO_SEED)
    ids = [str(10_000_000 + number * 7 + 3) for number in range(DEMO_LISTINGS)]
    assert migrate.main(["dry-run", "--zpids", ",".join(ids)]) == 0
    dry = printed(capsys)
    chosen = [row["zpid"] for row in dry["listings"] if row["status"] in ("would_update", "would_skip_migrated")][:2]
    assert len(chosen) == 2
    return chosen


def migrated_demo_listing(capsys: pytest.CaptureFixture[str]) -> tuple[str, dict[str, Any]]:
    """Two demo listings (with cached analyses) migrated by a Step Functions run of the stack: one
    of their zpids and the run's result."""
    from listing_vision.realestate import migrate

    chosen = listings_a_forced_execute_would_update(capsys)
    migrate.main(["--via-stepfunctions", "execute", "--force", "--zpids", ",".join(chosen)])
    return chosen[0], printed(capsys)


def run_execution(machine_arn: str, payload: Any, name: str = "run") -> dict[str, Any]:
    """Start an execution of the state machine with this input; its description once it has ended."""
    sfn = aws.client("stepfunctions")
    execution = sfn.start_execution(
        stateMachineArn=machine_arn, name=f"{name}-{uuid.uuid4().hex[:8]}", input=json.dumps(payload)
    )["executionArn"]
    deadline = time.monotonic() + 300  # a hang guard, generous for a loaded machine
    while time.monotonic() < deadline:
        described = dict(sfn.describe_execution(executionArn=execution))
        if described["status"] != "RUNNING":
            return described
        time.sleep(0.2)
    pytest.fail("execution did not end in 300 s")
