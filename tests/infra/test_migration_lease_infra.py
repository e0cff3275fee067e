"""The migration's lease in the template: Plan hands the function its execution's ARN (the holder
of the run's lease, `run_lease`), and the function may ask Step Functions about that state
machine's executions, no other, as may the search function (GET /listings/migration)."""

from __future__ import annotations

import json

from listing_vision.resources import MIGRATION_STATE_MACHINE
from local.call_recorder import ACCOUNT_ID, REGION, Call
from tests.infra.conftest import Synthesized
from tests.infra.iam import RolePolicies
from tests.infra.test_stack import resolve_join


def test_a_plan_holds_the_runs_lease_by_its_execution_which_it_may_ask_about(synthesized: Synthesized) -> None:
    (machine,) = synthesized.of_type("AWS::StepFunctions::StateMachine").values()
    definition = json.loads(resolve_join(machine["Properties"]["DefinitionString"]))
    # Given the Plan state: it passes its execution's ARN, the holder of the run's lease
    assert definition["States"]["Plan"]["Parameters"]["execution.$"] == "$$.Execution.Id"
    # Then the migration function may ask Step Functions about this state machine's executions only
    policies = RolePolicies(synthesized.stack, synthesized.template.to_json())
    executions = f"arn:aws:states:{REGION}:{ACCOUNT_ID}:execution"

    def may(function: str, resource: str) -> bool:
        call = Call(function, "states:DescribeExecution", resource)
        return any(grant.allows(call) for grant in policies.grants(function))

    # (and the search function, which shows the run going only while its execution runs)
    for function in ("migration", "listing-search"):
        assert may(function, f"{executions}:{MIGRATION_STATE_MACHINE}:execute-20261207T000000-1")
        assert not may(function, f"{executions}:another-machine:run-1")
    search_states = {grant.action for grant in policies.grants("listing-search") if grant.action.startswith("states:")}
    assert search_states == {"states:DescribeExecution"}
