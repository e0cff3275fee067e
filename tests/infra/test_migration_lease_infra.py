"""The migration's lease in the template: Plan hands the function its execution's ARN (the holder
of the run's lease, `run_lease`), and the function may ask Step Functions about that state
machine's executions, no other."""

from __future__ import annotations

import json

from functions.specs import MIGRATION_STATE_MACHINE
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

    def may(resource: str) -> bool:
        call = Call("migration", "states:DescribeExecution", resource)
        return any(grant.allows(call) for grant in policies.grants("migration"))

    assert may(f"{executions}:{MIGRATION_STATE_MACHINE}:execute-20261207T000000-1")
    assert not may(f"{executions}:another-machine:run-1")
    assert not any(grant.action.startswith("states:") for grant in policies.grants("listing-search"))
