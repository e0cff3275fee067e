"""Static analysis of the synthesized template, in `make test`: cfn-lint reports no error and no
warning but the ones accepted below, each for a true reason; cdk-nag fails the synth on any finding
not acknowledged on its resource (infra/nag.py), so a new finding fails the tests."""

from __future__ import annotations

import json
from pathlib import Path

import aws_cdk as cdk
import pytest
from aws_cdk import aws_sqs as sqs
from cfnlint.api import lint

from infra.nag import add_checks
from tests.infra.conftest import Synthesized

# cfn-lint warnings the template keeps, by rule, and why each is true and harmless.
ACCEPTED_WARNINGS = {
    "W3005": "CDK makes a resource that runs as a role (each function, the state machine, the SageMaker model, "
    "CDK's own providers) depend on the role and on its default policy (DependsOn), and also reads the role's ARN "
    "(GetAtt): the DependsOn on the role is redundant, and the one on the policy is what makes the grants exist "
    "before the first call.",
}


def lint_problems(template: dict[str, object]) -> list[str]:
    """What cfn-lint reports on a template (us-east-1, where the tests synthesize), as readable lines."""
    return [
        f"{match.rule.id} {match.message} (at {'/'.join(str(part) for part in match.path)})"
        for match in lint(json.dumps(template), regions=["us-east-1"])
    ]


@pytest.mark.parametrize("stage", ["synthesized", "first_stage"])
def test_cfn_lint_finds_no_error_and_only_accepted_warnings(stage: str, request: pytest.FixtureRequest) -> None:
    # Given a later stage of an account, and its first (in a VPC, making the endpoints and the logging role)
    synthesized: Synthesized = request.getfixturevalue(stage)
    problems = lint_problems(synthesized.template.to_json())
    # Then nothing but the accepted warnings is reported
    assert [p for p in problems if p.split()[0] not in ACCEPTED_WARNINGS] == []
    # and each accepted warning still fires (an acceptance no finding needs is removed)
    assert {p.split()[0] for p in problems} == set(ACCEPTED_WARNINGS)


def test_cfn_lint_reports_an_error_in_a_template() -> None:
    # Given a template with a resource property CloudFormation would refuse
    broken = {"Resources": {"Queue": {"Type": "AWS::SQS::Queue", "Properties": {"VisibilityTimeout": "forever"}}}}
    # Then the lint names the rule and where
    assert any(p.startswith("E") and "Resources/Queue" in p for p in lint_problems(broken))


def test_a_new_cdk_nag_finding_fails_the_synth(tmp_path: Path) -> None:
    # Given a stack with a resource cdk-nag flags (a queue without a dead-letter queue, TLS or encryption),
    # acknowledged nowhere
    app = cdk.App(outdir=str(tmp_path))
    sqs.Queue(cdk.Stack(app, "Unacknowledged"), "Queue")
    add_checks(app)
    # When it is synthesized, then the synth fails, naming the findings
    with pytest.raises(Exception, match="AwsSolutions-SQS3"):
        app.synth()
