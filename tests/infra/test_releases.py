"""Safe releases in the synthesized template: every function is a version behind the `live` alias,
everything that invokes a function names the alias, and each alias is moved by a CodeDeploy
deployment group with the stage's configuration, rolled back on the function's alarms and on a
failed deployment. The stage's `release` key is checked at synth."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, get_args

import pytest

from functions.specs import FUNCTIONS, RELEASE_ALIAS
from infra.config import ContextError, Release, validate
from infra.constructs.monitoring import API_FUNCTIONS
from infra.constructs.releases import deployment_config
from tests.infra.conftest import SETTINGS, Synthesized

ROOT = Path(__file__).resolve().parents[2]
# Where a template invokes a function: the resource types and the property that names the target
INVOKERS = {
    "AWS::ApiGateway::Method": "Integration",
    "AWS::ApiGateway::Authorizer": "AuthorizerUri",
    "AWS::Lambda::Permission": "FunctionName",
    "Custom::S3BucketNotifications": "NotificationConfiguration",
    "AWS::Events::Rule": "Targets",
    "AWS::StepFunctions::StateMachine": "DefinitionString",
    "AWS::Lambda::EventSourceMapping": "FunctionName",
}


def references(value: Any) -> set[str]:
    """The logical ids a template value points at (Ref, Fn::GetAtt), however deep."""
    found: set[str] = set()
    if isinstance(value, dict):
        if set(value) == {"Ref"}:
            found.add(value["Ref"])
        elif set(value) == {"Fn::GetAtt"}:
            found.add(value["Fn::GetAtt"][0])
        for item in value.values():
            found |= references(item)
    elif isinstance(value, list):
        for item in value:
            found |= references(item)
    return found


def ids(synthesized: Synthesized) -> tuple[dict[str, str], dict[str, str]]:
    """Function logical id → name, and alias logical id → name, for the platform's functions."""
    functions = synthesized.stack.functions
    return (
        {synthesized.logical_id(fn.function): name for name, fn in functions.items()},
        {synthesized.logical_id(fn.alias): name for name, fn in functions.items()},
    )


def test_every_function_is_a_version_behind_the_live_alias(synthesized: Synthesized) -> None:
    # Given the synthesized stack
    resources = synthesized.resources
    _, aliases = ids(synthesized)
    # Then every declared function has an alias named live
    assert sorted(aliases.values()) == sorted(spec.name for spec in FUNCTIONS)
    for alias_id, name in aliases.items():
        props = resources[alias_id]["Properties"]
        assert props["Name"] == RELEASE_ALIAS
        function_id = synthesized.logical_id(synthesized.stack.functions[name].function)
        assert props["FunctionName"] == {"Ref": function_id}
        # pointing at a published version of that same function (not $LATEST)
        (version_id,) = references(props["FunctionVersion"])
        version = resources[version_id]
        assert version["Type"] == "AWS::Lambda::Version"
        assert version["Properties"]["FunctionName"] == {"Ref": function_id}
        # which a later release keeps, so a rollback has it to go back to
        assert version["DeletionPolicy"] == "Retain"


def test_everything_that_invokes_a_function_names_its_alias(synthesized: Synthesized) -> None:
    # Given the invokers of the template: API Gateway's integrations and authorizer, Lambda permissions,
    # S3 notifications, EventBridge targets, the state machine's tasks, event source mappings
    functions, aliases = ids(synthesized)
    invoked: dict[str, set[str]] = {}
    for logical, resource in synthesized.resources.items():
        prop = INVOKERS.get(resource["Type"])
        if prop is not None:
            invoked[logical] = references(resource["Properties"].get(prop))
    # Then none names a function itself ($LATEST), only aliases
    unqualified = {
        logical: sorted(functions[t] for t in targets if t in functions) for logical, targets in invoked.items()
    }
    assert {logical: names for logical, names in unqualified.items() if names} == {}
    # and every function reached from outside (API, authorizer, S3, schedule, state machine) is reached by its alias
    reached = {aliases[t] for targets in invoked.values() for t in targets if t in aliases}
    assert reached >= {"authorizer", "dedupe", "caption", "generate", "dedupe-indexer", "listing-ingest"}
    assert reached >= {"dedupe-reconcile", "migration"}


def test_a_function_that_invokes_another_is_allowed_its_alias_only(synthesized: Synthesized) -> None:
    # Given the generate API function, which starts the worker asynchronously
    stack = synthesized.stack
    worker = stack.functions["generate-worker"]
    api = synthesized.resources[synthesized.logical_id(stack.functions["generate"].function)]
    # Then it is told the worker's alias, and may invoke that alias, not the function's $LATEST
    named = api["Properties"]["Environment"]["Variables"]["GENERATE_WORKER_FUNCTION"]
    assert named["Fn::Join"][1][-1] == f":{RELEASE_ALIAS}"
    grants = [
        statement["Resource"]
        for policy in synthesized.of_type("AWS::IAM::Policy").values()
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        if "lambda:InvokeFunction" in statement["Action"]
        and {"Ref": synthesized.logical_id(stack.functions["generate"].role)} in policy["Properties"]["Roles"]
    ]
    assert grants == [{"Ref": synthesized.logical_id(worker.alias)}]


def test_each_alias_is_released_by_codedeploy_and_rolled_back_on_its_functions_alarms(
    synthesized: Synthesized,
) -> None:
    # Given the stage's release setting (unset: the default canary) and the function alarms of Monitoring
    resources = synthesized.resources
    groups = synthesized.of_type("AWS::CodeDeploy::DeploymentGroup")
    alarm_ids = {synthesized.logical_id(alarm): name for name, alarm in synthesized.stack.monitoring.alarms.items()}
    assert synthesized.config.release == "canary_10_percent_5_minutes"
    # Then each function's alias has its own deployment group in the stage's one application
    (application,) = synthesized.of_type("AWS::CodeDeploy::Application").values()
    assert application["Properties"] == {
        "ApplicationName": "listing-vision-test-releases",
        "ComputePlatform": "Lambda",
    }
    assert len(groups) == len(FUNCTIONS)
    for name, function in synthesized.stack.functions.items():
        alias = resources[synthesized.logical_id(function.alias)]
        update = alias["UpdatePolicy"]["CodeDeployLambdaAliasUpdate"]
        group = groups[update["DeploymentGroupName"]["Ref"]]["Properties"]
        assert group["DeploymentGroupName"] == f"listing-vision-test-{name}"
        # shifting traffic as configured: 10 % for 5 minutes, then the rest
        assert group["DeploymentConfigName"] == "CodeDeployDefault.LambdaCanary10Percent5Minutes"
        assert group["DeploymentStyle"] == {"DeploymentOption": "WITH_TRAFFIC_CONTROL", "DeploymentType": "BLUE_GREEN"}
        # rolled back by itself on a failed deployment, a stop, and an alarm while it runs
        rollback = group["AutoRollbackConfiguration"]
        assert rollback["Enabled"] is True
        assert set(rollback["Events"]) == {
            "DEPLOYMENT_FAILURE",
            "DEPLOYMENT_STOP_ON_REQUEST",
            "DEPLOYMENT_STOP_ON_ALARM",
        }
        # watching exactly this function's errors, throttles and p95-duration alarms, and an API
        # function's 5xx answers (it returns its failures as 500s, which Lambda's Errors never count)
        assert group["AlarmConfiguration"]["Enabled"] is True
        watched = {alarm_ids[alarm["Name"]["Ref"]] for alarm in group["AlarmConfiguration"]["Alarms"]}
        prefix = "".join(part.capitalize() for part in name.split("-"))
        answered = {f"{prefix}Answered5xx"} if name in API_FUNCTIONS else set()
        assert watched == {f"{prefix}Errors", f"{prefix}Throttles", f"{prefix}DurationP95"} | answered
    assert {"dedupe", "caption", "generate", "listing-search"} <= API_FUNCTIONS


def deployment_group(synthesized: Synthesized, name: str) -> dict[str, Any]:
    """The properties of the deployment group that moves function `name`'s alias."""
    resources = synthesized.resources
    alias = resources[synthesized.logical_id(synthesized.stack.functions[name].alias)]
    return dict(
        resources[alias["UpdatePolicy"]["CodeDeployLambdaAliasUpdate"]["DeploymentGroupName"]["Ref"]]["Properties"]
    )


def release_alarms(synthesized: Synthesized, name: str) -> dict[str, dict[str, Any]]:
    """The alarms that group rolls back on, by their names less the function's prefix (Errors,
    Throttles, DurationP95, Answered5xx)."""
    resources = synthesized.resources
    prefix = "".join(part.capitalize() for part in name.split("-"))
    found = {}
    for watched in deployment_group(synthesized, name)["AlarmConfiguration"]["Alarms"]:
        alarm = resources[watched["Name"]["Ref"]]["Properties"]
        found[alarm["AlarmName"].removeprefix(f"listing-vision-test-alarms-{prefix}")] = alarm
    return found


def metric_stats(alarm: dict[str, Any]) -> list[dict[str, Any]]:
    """The metrics an alarm reads: its own, or those of its metric-math expression."""
    if "MetricName" in alarm:
        keys = ("Namespace", "MetricName", "Dimensions", "Period")
        return [{key: alarm[key] for key in keys}]
    return [
        {**m["MetricStat"]["Metric"], "Period": m["MetricStat"]["Period"]}
        for m in alarm["Metrics"]
        if "MetricStat" in m
    ]


def test_each_release_is_judged_by_its_new_version_behind_the_alias(synthesized: Synthesized) -> None:
    # Given each function's alias and the version it moves to (the template's current version)
    resources = synthesized.resources
    for name, function in synthesized.stack.functions.items():
        alias = resources[synthesized.logical_id(function.alias)]
        (version_id,) = references(alias["Properties"]["FunctionVersion"])
        function_ref = {"Ref": synthesized.logical_id(function.function)}
        new_version = {"Fn::GetAtt": [version_id, "Version"]}
        on_alias = [
            {"Name": "FunctionName", "Value": function_ref},
            {"Name": "Resource", "Value": {"Fn::Join": ["", [function_ref, f":{RELEASE_ALIAS}"]]}},
        ]
        alarms = release_alarms(synthesized, name)
        # Then its errors and p95 duration are the alias's invocations that ran the new version
        # (Lambda's ExecutedVersion), so the old version's errors roll back no good release
        for watched in ("Errors", "DurationP95"):
            lambda_metrics = [m for m in metric_stats(alarms[watched]) if m["Namespace"] == "AWS/Lambda"]
            assert [m["Dimensions"] for m in lambda_metrics] == [
                [{"Name": "ExecutedVersion", "Value": new_version}, *on_alias]  # CloudFormation's order
            ], (name, watched)
        # its throttles the alias's (concurrency is the function's, shared by both versions)
        assert metric_stats(alarms["Throttles"])[0]["Dimensions"] == on_alias
        # the counts the function emits per version (an API function's 5xx answers, the authorizer's
        # refusals its errors alarm subtracts) are the new version's too
        own = [m for alarm in alarms.values() for m in metric_stats(alarm) if m["Namespace"] == "ListingVision"]
        for metric in own:
            assert metric["Dimensions"] == [
                {"Name": "ExecutedVersion", "Value": new_version},
                {"Name": "service", "Value": name},
            ], name
        if name in API_FUNCTIONS:
            answered = alarms["Answered5xx"]
            assert (answered["MetricName"], answered["Statistic"], answered["Threshold"]) == ("Answered5xx", "Sum", 1)
            assert "AlarmActions" not in answered  # it rolls back; Api5xxRate is the one that pages
        # and CloudFormation points them at the new version before CodeDeploy moves the alias
        assert {
            watched["Name"]["Ref"] for watched in deployment_group(synthesized, name)["AlarmConfiguration"]["Alarms"]
        } <= set(alias["DependsOn"])


def test_every_release_alarm_decides_within_the_shortest_canary(synthesized: Synthesized) -> None:
    # Given the shortest traffic shift a stage may choose: 10 % for 5 minutes, then all
    shortest_s = 5 * 60
    assert min(int(r.split("_")[3]) for r in get_args(Release) if r.startswith("canary")) * 60 == shortest_s
    for name in synthesized.stack.functions:
        for watched, alarm in release_alarms(synthesized, name).items():
            # Then each release alarm reads 1-minute periods, and decides within the canary
            periods = {m["Period"] for m in metric_stats(alarm)}
            assert periods == {60}, (name, watched)
            assert alarm["EvaluationPeriods"] * 60 < shortest_s, (name, watched)
    # the p95 duration on 2 of 3 minutes (one slow minute, a cold start say, is not a failed release)
    slow = release_alarms(synthesized, "dedupe")["DurationP95"]
    assert (slow["EvaluationPeriods"], slow["DatapointsToAlarm"]) == (3, 2)


@pytest.mark.parametrize("release", get_args(Release))
def test_every_release_setting_is_a_codedeploy_configuration(release: str) -> None:
    # Given each value the stage's `release` key accepts (canary_10_percent_5_minutes, ...)
    # Then it names CodeDeploy's predefined configuration of that name (LambdaCanary10Percent5Minutes, ...)
    expected = "CodeDeployDefault.Lambda" + "".join(word.capitalize() for word in release.split("_"))
    assert deployment_config(release).deployment_config_name == expected


def test_an_unknown_release_setting_is_refused_at_synth_naming_the_key_and_the_choices() -> None:
    # Given a stage context with a release CodeDeploy has no configuration for
    # When it is validated, then the synth stops, naming the key and the values it takes
    with pytest.raises(ContextError) as refused:
        validate({**SETTINGS, "release": "canary_50_percent"})
    message = str(refused.value)
    assert "-c release=..." in message
    assert "'all_at_once'" in message and "'canary_10_percent_5_minutes'" in message


def test_the_example_dev_stage_releases_all_at_once() -> None:
    # Given the example dev context, then its releases switch at once (prod leaves the canary default)
    example = json.loads((ROOT / "infra/stages/dev.example.json").read_text())
    assert example["release"] == "all_at_once"
    assert deployment_config(example["release"]).deployment_config_name == "CodeDeployDefault.LambdaAllAtOnce"


def test_a_model_update_is_blue_green_baked_and_rolled_back_on_the_endpoints_alarms(
    synthesized: Synthesized,
) -> None:
    # Given the CLIP endpoint and its alarms
    from infra.constructs.clip_endpoint import BAKE_S, UPDATE_TIMEOUT_S

    monitoring = synthesized.stack.monitoring
    (endpoint,) = synthesized.of_type("AWS::SageMaker::Endpoint").values()
    deployment = endpoint["Properties"]["DeploymentConfig"]
    # Then an update makes a new fleet beside the old, shifts all traffic to it, and bakes it (the wait
    # interval after the shift, when SageMaker watches the alarms) before the old goes
    policy = deployment["BlueGreenUpdatePolicy"]
    assert policy["TrafficRoutingConfiguration"] == {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": BAKE_S}
    assert "TerminationWaitInSeconds" not in policy  # no unwatched wait after the bake, on two fleets' bill
    assert 600 <= BAKE_S < policy["MaximumExecutionTimeoutInSeconds"] == UPDATE_TIMEOUT_S <= 28800
    # and rolls back when the endpoint's 5xx or p95-latency alarm goes off meanwhile
    named = [alarm["AlarmName"] for alarm in deployment["AutoRollbackConfiguration"]["Alarms"]]
    expected = [monitoring.alarms[name] for name in ("EndpointErrors", "EndpointLatencyP95")]
    assert named == [{"Ref": synthesized.logical_id(alarm)} for alarm in expected]
    # each of which decides well within the bake: 1-minute periods, the p95 on 2 of 3
    for alarm in expected:
        props = synthesized.resources[synthesized.logical_id(alarm)]["Properties"]
        assert props["Period"] == 60 and props["EvaluationPeriods"] * 60 <= BAKE_S / 2
    latency = synthesized.resources[synthesized.logical_id(expected[1])]["Properties"]
    assert (latency["EvaluationPeriods"], latency["DatapointsToAlarm"]) == (3, 2)
    # which SageMaker may read with the endpoint's role, and only those
    role = synthesized.logical_id(synthesized.stack.clip.role)
    reads = [
        statement["Resource"]
        for policy in synthesized.of_type("AWS::IAM::Policy").values()
        if {"Ref": role} in policy["Properties"]["Roles"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        if statement["Action"] == "cloudwatch:DescribeAlarms"
    ]
    assert reads == [[{"Fn::GetAtt": [synthesized.logical_id(alarm), "Arn"]} for alarm in expected]]


@pytest.mark.parametrize(
    ("function_name", "qualifier", "resource"),
    [
        ("generate-worker:live", None, "function:generate-worker:live"),
        ("arn:aws:lambda:us-east-1:123456789012:function:migration:live", None, "function:migration:live"),
        ("generate-worker", "live", "function:generate-worker:live"),
        ("generate-worker", None, "function:generate-worker"),
    ],
)
def test_a_recorded_invoke_keeps_its_qualifier_as_iam_sees_it(
    function_name: str, qualifier: str | None, resource: str
) -> None:
    # Given an invoke as the code makes it (a name, an ARN, or a separate Qualifier)
    from local.call_recorder import describe

    params = {"FunctionName": function_name, **({"Qualifier": qualifier} if qualifier else {})}
    # When the recorder describes it, then the resource is the qualified ARN a grant must cover
    ((action, arn),) = describe("lambda", "Invoke", params)
    assert action == "lambda:InvokeFunction" and arn == f"arn:aws:lambda:us-east-1:123456789012:{resource}"


def test_a_grant_on_the_alias_does_not_allow_invoking_latest() -> None:
    # Given the grant the generate function has (its worker's alias), then $LATEST stays refused, as on AWS
    from local.call_recorder import Call
    from tests.infra.iam import Grant

    alias = "arn:aws:lambda:us-east-1:123456789012:function:generate-worker:live"
    grant = Grant("lambda:InvokeFunction", alias)
    assert grant.allows(Call("generate", "lambda:InvokeFunction", alias))
    assert not grant.allows(Call("generate", "lambda:InvokeFunction", alias.removesuffix(":live")))
