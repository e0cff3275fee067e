"""The embedding endpoint's modes (context `endpoint_mode`): what each synthesizes, what the synth
refuses, and the cost table of docs/deploying.md as generated from the templates."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from infra import costs
from infra.config import ContextError, validate
from infra.constructs.clip_endpoint import EndpointOptions
from tests.infra.conftest import SETTINGS, Synthesized

ROOT = Path(__file__).resolve().parents[2]


def endpoint_resources(template: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [r["Properties"] for r in template["Resources"].values() if r["Type"] == kind]


def test_the_default_mode_is_a_gpu_endpoint_autoscaled_on_invocations(synthesized: Synthesized) -> None:
    # Given a stage that names no endpoint_mode (SETTINGS), synthesized with cdk-nag
    template = synthesized.template.to_json()
    # Then its one variant is an ml.g5.xlarge instance, at least one always on
    (config,) = endpoint_resources(template, "AWS::SageMaker::EndpointConfig")
    (variant,) = config["ProductionVariants"]
    assert (variant["InstanceType"], variant["InitialInstanceCount"]) == ("ml.g5.xlarge", 1)
    assert "ServerlessConfig" not in variant
    # and it tracks invocations per instance between 1 and clip_max_instances
    (target,) = endpoint_resources(template, "AWS::ApplicationAutoScaling::ScalableTarget")
    assert (target["MinCapacity"], target["MaxCapacity"]) == (1, 4)
    (policy,) = endpoint_resources(template, "AWS::ApplicationAutoScaling::ScalingPolicy")
    tracking = policy["TargetTrackingScalingPolicyConfiguration"]
    assert tracking["PredefinedMetricSpecification"]["PredefinedMetricType"] == "SageMakerVariantInvocationsPerInstance"
    # and its model runs with network isolation (it installs the wheels packed in its model package)
    (model,) = endpoint_resources(template, "AWS::SageMaker::Model")
    assert model["EnableNetworkIsolation"] is True
    # and the functions keep their 6 MB requests (no payload cap is set)
    assert all(
        "SAGEMAKER_MAX_PAYLOAD_BYTES" not in f["Properties"].get("Environment", {}).get("Variables", {})
        for f in synthesized.of_type("AWS::Lambda::Function").values()
    )


def test_the_cpu_mode_runs_cpu_instances_on_the_cpu_container_and_says_cpu_is_intended() -> None:
    # When the example stage's endpoint is synthesized in realtime_cpu
    template = costs.synthesize_endpoint("realtime_cpu", ROOT)
    # Then it is an ml.c6i.xlarge, autoscaled like the GPU mode
    (variant,) = endpoint_resources(template, "AWS::SageMaker::EndpointConfig")[0]["ProductionVariants"]
    assert variant["InstanceType"] == "ml.c6i.xlarge"
    assert len(endpoint_resources(template, "AWS::ApplicationAutoScaling::ScalingPolicy")) == 1
    # and the model runs the CPU container, told CPU is intended (the handler refuses CPU otherwise)
    (model,) = endpoint_resources(template, "AWS::SageMaker::Model")
    container = model["PrimaryContainer"]
    assert container["Environment"]["CLIP_ALLOW_CPU"] == "true" and container["Environment"]["CLIP_FP16"] == "false"
    assert "pytorch-inference:2.6.0-cpu-" in str(container["Image"])
    # and its 4 vCPUs serve as 4 model-server processes of 1 thread (the model shares the cores on CPU)
    environment = container["Environment"]
    assert (environment["SAGEMAKER_MODEL_SERVER_WORKERS"], environment["CLIP_HOST_THREADS"]) == ("4", "1")
    # and, like the GPU mode, with network isolation
    assert model["EnableNetworkIsolation"] is True


def test_the_serverless_mode_has_no_instances_no_autoscaling_and_runs_on_cpu() -> None:
    # When the example stage's endpoint is synthesized in serverless_cpu
    template = costs.synthesize_endpoint("serverless_cpu", ROOT)
    # Then its variant is serverless: memory and concurrency, no instance type or count
    (variant,) = endpoint_resources(template, "AWS::SageMaker::EndpointConfig")[0]["ProductionVariants"]
    assert variant["ServerlessConfig"] == {"MemorySizeInMB": 6144, "MaxConcurrency": 5}
    assert "InstanceType" not in variant and "InitialInstanceCount" not in variant
    # and nothing is autoscaled (serverless inference scales itself, to zero)
    assert not endpoint_resources(template, "AWS::ApplicationAutoScaling::ScalableTarget")
    # and the model serves on CPU on purpose, without network isolation (serverless has none)
    (model,) = endpoint_resources(template, "AWS::SageMaker::Model")
    assert model["PrimaryContainer"]["Environment"]["CLIP_ALLOW_CPU"] == "true"
    assert "EnableNetworkIsolation" not in model
    # and its about 4 vCPUs serve as 2 processes of 2 threads (not one per vCPU: a serverless
    # container may serve one request at a time)
    environment = model["PrimaryContainer"]["Environment"]
    assert (environment["SAGEMAKER_MODEL_SERVER_WORKERS"], environment["CLIP_HOST_THREADS"]) == ("2", "2")


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"endpoint_mode": "serverless_cpu", "clip_instance_type": "ml.c6i.xlarge"}, "unset clip_instance_type"),
        ({"endpoint_mode": "serverless_cpu", "clip_max_instances": 2}, "unset clip_max_instances"),
        ({"endpoint_mode": "serverless_cpu", "clip_workers": 2}, "unset clip_workers"),
        ({"endpoint_mode": "serverless_cpu", "clip_fp16": True}, "clip_fp16 serves on a GPU"),
        ({"endpoint_mode": "realtime_cpu", "clip_fp16": True}, "clip_fp16 serves on a GPU"),
        ({"endpoint_mode": "realtime_cpu", "clip_instance_type": "ml.g5.xlarge"}, "is a GPU type"),
        ({"clip_instance_type": "ml.c6i.xlarge"}, "set endpoint_mode=realtime_cpu"),
        ({"endpoint_mode": "on_demand"}, "endpoint_mode"),
        ({"endpoint_mode": "serverless_cpu", "clip_serverless_max_concurrency": 201}, "200"),
    ],
)
def test_a_mode_with_settings_it_cannot_honour_is_refused_naming_the_key(
    settings: dict[str, Any], message: str
) -> None:
    # Given a stage whose endpoint settings cannot work together
    # When its context is validated (what the synth does first)
    with pytest.raises(ContextError) as refused:
        validate({**SETTINGS, **settings})
    # Then the synth stops, saying what to change
    assert message in str(refused.value)


def test_a_gpu_stage_may_still_serve_a_cpu_instance_on_purpose() -> None:
    # Given the existing escape hatch: a GPU-mode stage on a CPU type with clip_allow_cpu
    config = validate({**SETTINGS, "clip_instance_type": "ml.c6i.xlarge", "clip_allow_cpu": True})
    # Then it is accepted as before
    assert config.endpoint_instance_type == "ml.c6i.xlarge"


def test_a_serverless_endpoint_with_network_isolation_is_refused() -> None:
    # Given serverless options asking for network isolation (which serverless inference lacks)
    options = EndpointOptions(mode="serverless_cpu", instance_type=None, network_isolation=True)
    # Then the construct refuses them, saying why
    assert "does not support network isolation" in (options.refusal() or "")
    assert EndpointOptions(mode="serverless_cpu", instance_type=None).refusal() is None


def test_serverless_cost_grows_with_uploads_and_idles_at_zero() -> None:
    # Given the serverless mode's billed shape (6 GB, no instances)
    billed = costs.Billed("serverless_cpu", None, 0, 6144)
    usage = costs.Usage(invocations=2, seconds_per_invocation=0.1, megabytes_processed=0.0)
    # Then idle costs nothing, and 1,000 uploads a day cost 30,000 × 2 × 0.1 s × 6 GB at the GB-second price
    assert billed.idle_per_month == 0
    assert billed.per_month(1_000, usage) == pytest.approx(30_000 * 2 * 0.1 * 6 * costs.SERVERLESS_USD_PER_GB_SECOND)


def test_the_deploying_page_cost_table_is_generated_from_the_templates() -> None:
    # Given the endpoint cost table of docs/deploying.md
    text = (ROOT / "docs" / "deploying.md").read_text()
    start = text.index("\n", text.index("<!-- endpoint-costs:start")) + 1
    end = text.index("<!-- endpoint-costs:end -->")
    # Then it is what `python -m infra.costs` generates now (regenerate with --write-readme)
    assert text[start:end].strip() == costs.cost_table(ROOT).strip()
