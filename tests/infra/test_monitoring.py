"""Alarms and the dashboard in the template: each watched thing has its alarm, with a sane
threshold, notifying the stage's encrypted topic, which CloudWatch may use and someone subscribes to."""

from __future__ import annotations

import json
from typing import Any

from functions.specs import FUNCTIONS
from infra.constructs.monitoring import API_FUNCTIONS
from tests.infra.conftest import SETTINGS, Synthesized


def alarms(synthesized: Synthesized) -> dict[str, dict[str, Any]]:
    found = synthesized.of_type("AWS::CloudWatch::Alarm").values()
    return {a["Properties"]["AlarmName"].removeprefix("listing-vision-test-alarms-"): a["Properties"] for a in found}


def prefix(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("-"))


def test_every_function_alarms_on_errors_throttles_and_duration_near_its_timeout(synthesized: Synthesized) -> None:
    found = alarms(synthesized)
    for spec in FUNCTIONS:
        assert found[f"{prefix(spec.name)}Errors"]["Threshold"] == 1
        if not spec.refusals_metric:
            assert found[f"{prefix(spec.name)}Errors"]["MetricName"] == "Errors"
        assert found[f"{prefix(spec.name)}Throttles"]["Threshold"] == 1
        duration = found[f"{prefix(spec.name)}DurationP95"]
        assert duration["ExtendedStatistic"] == "p95"
        assert duration["Threshold"] == 0.8 * spec.timeout_s * 1000  # milliseconds, under the timeout


def test_every_failure_queue_alarms_on_its_first_message(synthesized: Synthesized) -> None:
    found = alarms(synthesized)
    for spec in FUNCTIONS:
        if spec.asynchronous:
            queue = found[f"{prefix(spec.name)}FailureQueue"]
            assert queue["MetricName"] == "ApproximateNumberOfMessagesVisible" and queue["Threshold"] == 1


def test_the_api_migration_endpoint_and_rate_limiter_are_watched(synthesized: Synthesized) -> None:
    found = alarms(synthesized)
    rate = found["Api5xxRate"]
    assert rate["Threshold"] == 1 and any("errors / requests" in m.get("Expression", "") for m in rate["Metrics"])
    assert found["ApiLatencyP95"]["ExtendedStatistic"] == "p95" and found["ApiLatencyP95"]["Threshold"] == 10_000
    assert found["MigrationFailed"]["MetricName"] == "ExecutionsFailed" and found["MigrationFailed"]["Threshold"] == 1
    batches = found["MigrationBatchesFailed"]
    assert (batches["Namespace"], batches["MetricName"]) == ("ListingVision", "BatchesFailed")
    # the domain rejecting bulk writes period after period: the Map asks more than it takes
    rejected = found["MigrationBulkRejected"]
    assert (rejected["Namespace"], rejected["MetricName"]) == ("ListingVision", "BulkRejected")
    assert (rejected["Statistic"], rejected["Threshold"], rejected["EvaluationPeriods"]) == ("Sum", 1, 3)
    latency = found["EndpointLatencyP95"]
    assert (latency["MetricName"], latency["Threshold"]) == ("ModelLatency", 1_000_000)  # microseconds: 1 s
    assert found["EndpointErrors"]["MetricName"] == "Invocation5XXErrors"
    gpu = found["EndpointGpuSaturated"]
    assert (gpu["Namespace"], gpu["MetricName"], gpu["Threshold"]) == ("/aws/sagemaker/Endpoints", "GPUUtilization", 90)
    waits = found["RateLimitWaits"]
    assert (waits["MetricName"], waits["Threshold"]) == ("RateLimitWaitSeconds", 300)


def test_every_alarm_notifies_the_stages_encrypted_topic(synthesized: Synthesized) -> None:
    (topic_id, topic) = next(iter(synthesized.of_type("AWS::SNS::Topic").items()))
    assert topic["Properties"]["TopicName"] == "listing-vision-test-alarms"
    # but the API functions' per-version 5xx alarms, which only roll a release back (Api5xxRate pages)
    silent = {f"{prefix(name)}Answered5xx" for name in API_FUNCTIONS}
    for name, alarm in alarms(synthesized).items():
        assert alarm.get("AlarmActions") == (None if name in silent else [{"Ref": topic_id}]), name
        assert alarm["TreatMissingData"] == "notBreaching"
    assert silent <= set(alarms(synthesized))


def test_the_alarms_reach_someone(synthesized: Synthesized) -> None:
    (topic_id, topic) = next(iter(synthesized.of_type("AWS::SNS::Topic").items()))
    # The topic is encrypted with the stage's own key (CloudWatch cannot use the AWS managed alias/aws/sns)
    keys = synthesized.of_type("AWS::KMS::Key")
    key_id = topic["Properties"]["KmsMasterKeyId"]["Fn::GetAtt"][0]
    key = keys[key_id]["Properties"]
    assert key["EnableKeyRotation"] is True
    # whose policy lets CloudWatch encrypt what it publishes
    (cloudwatch,) = [
        s for s in key["KeyPolicy"]["Statement"] if s["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    ]
    assert cloudwatch["Effect"] == "Allow" and set(cloudwatch["Action"]) == {"kms:Decrypt", "kms:GenerateDataKey*"}
    # and the topic's policy (which replaces SNS's default one) lets this stage's alarms publish, over TLS
    (policy,) = [
        p["Properties"]["PolicyDocument"]["Statement"]
        for p in synthesized.of_type("AWS::SNS::TopicPolicy").values()
        if {"Ref": topic_id} in p["Properties"]["Topics"]
    ]
    (publish,) = [s for s in policy if s["Principal"] == {"Service": "cloudwatch.amazonaws.com"}]
    assert publish["Effect"] == "Allow" and publish["Action"] == "sns:Publish"
    assert ":alarm:listing-vision-test-alarms-*" in json.dumps(publish["Condition"]["ArnLike"]["aws:SourceArn"])
    assert publish["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
    assert any(s["Effect"] == "Deny" and "aws:SecureTransport" in json.dumps(s) for s in policy)
    # and the stage's subscription is on it
    (subscription,) = synthesized.of_type("AWS::SNS::Subscription").values()
    assert subscription["Properties"]["TopicArn"] == {"Ref": topic_id}
    assert (subscription["Properties"]["Protocol"], subscription["Properties"]["Endpoint"]) == (
        "email",
        SETTINGS["alarm_subscription"],
    )


def test_a_wrong_api_key_is_not_an_authorizer_error(synthesized: Synthesized) -> None:
    # The authorizer refuses a wrong key by raising Unauthorized (the only way to a 401), which Lambda
    # counts in Errors: its alarm counts the errors less the refusals it reports as KeysRefused
    spec = next(spec for spec in FUNCTIONS if spec.name == "authorizer")
    assert spec.refusals_metric == "KeysRefused"
    metrics = {m["Id"]: m for m in alarms(synthesized)["AuthorizerErrors"]["Metrics"]}
    assert metrics["expr_1"]["Expression"] == "errors - FILL(refusals, 0)"
    assert metrics["errors"]["MetricStat"]["Metric"]["MetricName"] == "Errors"
    refusals = metrics["refusals"]["MetricStat"]["Metric"]
    assert (refusals["Namespace"], refusals["MetricName"]) == ("ListingVision", "KeysRefused")
    assert [d["Name"] for d in refusals["Dimensions"]] == ["ExecutedVersion", "service"]  # per version, as errors
    assert {"Name": "service", "Value": "authorizer"} in refusals["Dimensions"]
    assert not metrics["errors"].get("ReturnData", True) and not metrics["refusals"].get("ReturnData", True)


def test_one_dashboard_per_stage(synthesized: Synthesized) -> None:
    (dashboard,) = synthesized.of_type("AWS::CloudWatch::Dashboard").values()
    assert dashboard["Properties"]["DashboardName"] == "listing-vision-test-operations"


def test_every_custom_metric_an_alarm_watches_is_emitted_by_the_code(synthesized: Synthesized) -> None:
    import ast
    from pathlib import Path

    library = Path(__file__).resolve().parents[2] / "layers" / "common" / "listing_vision"
    emitted = set()
    for path in library.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "add_metric":
                emitted.update(
                    k.value.value for k in node.keywords if k.arg == "name" and isinstance(k.value, ast.Constant)
                )
            # and the counts per function version (observability.count_per_version)
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "count_per_version":
                emitted.update(a.value for a in node.args[:1] if isinstance(a, ast.Constant))
    watched = {a["MetricName"] for a in alarms(synthesized).values() if a.get("Namespace") == "ListingVision"}
    watched |= {  # and the custom metrics of metric-math alarms
        m["MetricStat"]["Metric"]["MetricName"]
        for a in alarms(synthesized).values()
        for m in a.get("Metrics", [])
        if m.get("MetricStat", {}).get("Metric", {}).get("Namespace") == "ListingVision"
    }
    assert watched and watched <= emitted
