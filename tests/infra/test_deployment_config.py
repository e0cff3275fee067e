"""Deployment settings from context: a missing or placeholder value stops the synth at once, naming
the key; the example context file synthesizes through the real app, referencing the existing
table and domain and creating no cache table."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import aws_cdk as cdk
import pytest

from infra import app as infra_app
from infra.config import ContextError, validate
from listing_vision.config import Settings
from tests.infra.conftest import FEATURE_FLAGS, LAYERS, SETTINGS

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "infra" / "stages" / "dev.example.json"


def stand_in_package(tarball: Path, requirements: str) -> None:
    """A CLIP package holding only its requirements: all a synth reads of it."""
    with tarfile.open(tarball, "w:gz") as tar:
        info = tarfile.TarInfo("code/requirements.txt")
        info.size = len(requirements.encode())
        tar.addfile(info, io.BytesIO(requirements.encode()))


OFFLINE_REQUIREMENTS = f"--no-index\n--find-links wheels\nnumpy==2.4.6 --hash=sha256:{'0' * 64}\n"


def app_context(tmp_path: Path, context: dict[str, object], model: bool = True) -> dict[str, object]:
    """The context the CDK CLI gives the app: cdk.json's merged in, the build inputs in tmp_path (with a
    stand-in CLIP package that installs offline, unless `model` is false)."""
    for name in LAYERS:
        (tmp_path / "layers" / name / "python").mkdir(parents=True, exist_ok=True)
    tarball = tmp_path / "model.tar.gz"
    if model and not tarball.exists():
        stand_in_package(tarball, OFFLINE_REQUIREMENTS)
    return {
        **FEATURE_FLAGS,  # the CLI merges cdk.json's context in
        "layers_dir": str(tmp_path / "layers"),
        "clip_model_tarball": str(tarball),
        **context,
    }


def run_app(tmp_path: Path, context: dict[str, object], model: bool = True) -> subprocess.CompletedProcess[str]:
    """`python -m infra.app` as the CDK CLI runs it: context in CDK_CONTEXT_JSON, output to CDK_OUTDIR;
    from a shell that set none of the Makefile's jsii settings (the app sets its own)."""
    env = {
        **{name: value for name, value in os.environ.items() if not name.startswith("JSII_SILENCE")},
        "CDK_CONTEXT_JSON": json.dumps(app_context(tmp_path, context, model)),
        "CDK_OUTDIR": str(tmp_path / "cdk.out"),
    }
    return subprocess.run(
        [sys.executable, "-m", "infra.app"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )


def run_app_in_process(
    tmp_path: Path, context: dict[str, object], model: bool = True
) -> subprocess.CompletedProcess[str]:
    """The same app (infra.app.main) with the same context, in this process, whose CDK runtime is loaded
    and warm (a new process loads it again: several times the cost of the synth itself). A `sys.exit` is
    what the program's would be: status 1, its message on stderr. (run_app proves the program reads its
    context as the CLI gives it.)"""
    app = cdk.App(outdir=str(tmp_path / "cdk.out"), context=app_context(tmp_path, context, model))
    stderr = io.StringIO()
    status = 0
    with contextlib.redirect_stderr(stderr):
        try:
            infra_app.main(app)
        except SystemExit as exit_:
            status = 0 if exit_.code in (None, 0) else 1
            print(exit_.code, file=sys.stderr)
    return subprocess.CompletedProcess(["infra.app.main"], status, "", stderr.getvalue())


def test_a_synth_without_context_fails_at_once_naming_each_missing_key(tmp_path: Path) -> None:
    # When the app runs with no deployment context at all
    result = run_app_in_process(tmp_path, {})
    # Then it stops before building anything, naming every required key and what it is
    assert result.returncode != 0
    for key in ("stage", "vision_cache_table", "opensearch_endpoint", "milvus_uri"):
        assert f"-c {key}=..." in result.stderr
    assert "existing DynamoDB table of per-image vision analyses" in result.stderr
    assert not (tmp_path / "cdk.out" / "manifest.json").exists()


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("migration_max_concurrency", 21),  # over the migration function's reserved concurrency
        ("milvus_uri", "https://milvus.example.internal:19530"),
        ("opensearch_endpoint", "https://search-hearth-abc.us-east-1.es.amazonaws.com/<domain>"),
        ("vision_cache_table", "CHANGE-ME"),
        ("opensearch_endpoint", "https://my-domain.internal:9200"),
        ("stage", "Prod Stage"),
    ],
)
def test_placeholders_and_malformed_values_are_refused_naming_the_key(key: str, value: str) -> None:
    with pytest.raises(ContextError) as refused:
        validate({**SETTINGS, key: value})
    assert f"-c {key}=..." in str(refused.value)


def test_a_migration_concurrency_the_domain_cannot_take_is_refused_with_the_most_it_can() -> None:
    # Given a small domain (2 × r6g.large: about 1,000 partial updates/s for the migration)
    small = {**SETTINGS, "opensearch_data_nodes": 2, "opensearch_instance_type": "r6g.large.search"}
    # When the stage asks for 10 batches of 100 at once (≈ 1,500 updates/s at in-region latencies)
    with pytest.raises(ContextError) as refused:
        validate({**small, "migration_max_concurrency": 10, "migration_batch_size": 100})
    # Then the synth stops, saying what it asks, what the domain takes and the concurrency that fits
    assert "1,493 partial updates/s" in str(refused.value) and "≤ 6" in str(refused.value)
    assert validate({**small, "migration_max_concurrency": 6, "migration_batch_size": 100})
    # and a bulk larger than its batch, or an instance type that is none, is refused too
    with pytest.raises(ContextError, match="migration_bulk_size must not exceed"):
        validate({**SETTINGS, "migration_batch_size": 100, "migration_bulk_size": 200})
    with pytest.raises(ContextError, match=r"-c opensearch_instance_type=\.\.\."):
        validate({**SETTINGS, "opensearch_instance_type": "r6g.large"})


@pytest.mark.parametrize("value", [None, "oncall", "http://hooks.acme.net/alarms", "https://", "on call@acme.net"])
def test_a_stage_without_a_reachable_alarm_subscription_is_refused(value: str | None) -> None:
    settings = {k: v for k, v in SETTINGS.items() if k != "alarm_subscription"}
    with pytest.raises(ContextError) as refused:
        validate(settings if value is None else {**settings, "alarm_subscription": value})
    assert "-c alarm_subscription=..." in str(refused.value) and "Who the alarms reach" in str(refused.value)


def test_a_calibrated_retrieval_threshold_reaches_every_functions_environment_and_is_checked() -> None:
    # Given a stage without one, the functions keep their default: nothing is set
    assert validate(SETTINGS).settings_environment() == {}
    # Given the threshold `python -m evaluation.calibrate --stage-file` wrote, it becomes RETRIEVAL_THRESHOLD
    assert validate({**SETTINGS, "retrieval_threshold": 0.374}).settings_environment() == {
        "RETRIEVAL_THRESHOLD": "0.374"
    }
    # and a distance no cosine can have is refused, naming the key
    with pytest.raises(ContextError, match=r"-c retrieval_threshold=\.\.\."):
        validate({**SETTINGS, "retrieval_threshold": 3})


def test_the_stages_image_edit_quota_reaches_every_function_as_the_setting_the_local_stack_reads() -> None:
    # Given a stage without one, the functions keep listing_vision.config's default (the local stack's too)
    assert "IMAGE_EDITS_PER_CLIENT_PER_DAY" not in validate(SETTINGS).settings_environment()
    # Given a quota in the stage context, it is the setting every function reads
    environment = validate({**SETTINGS, "image_edits_per_client_per_day": 50}).settings_environment()
    assert environment == {"IMAGE_EDITS_PER_CLIENT_PER_DAY": "50"}
    assert Settings.model_fields["image_edits_per_client_per_day"].default == 200  # the one declaration
    # and a negative quota is refused, naming the key
    with pytest.raises(ContextError, match=r"-c image_edits_per_client_per_day=\.\.\."):
        validate({**SETTINGS, "image_edits_per_client_per_day": -1})


def test_an_email_address_or_an_https_endpoint_subscribes_to_the_alarms() -> None:
    for value in ("oncall@acme.net", "https://hooks.acme.net/sns/alarms?team=vision"):
        assert validate({**SETTINGS, "alarm_subscription": value}).alarm_subscription == value


def test_a_vpc_needs_its_subnets_zones_and_route_tables() -> None:
    with pytest.raises(ContextError) as refused:
        validate(
            {**SETTINGS, "vpc_id": "vpc-0a1b2c3d", "subnet_ids": "subnet-1,subnet-2", "security_group_ids": "sg-1"}
        )
    assert "availability_zones" in str(refused.value)
    config = validate(
        {
            **SETTINGS,
            "vpc_id": "vpc-0a1b2c3d",
            "subnet_ids": "subnet-1,subnet-2",
            "security_group_ids": "sg-1",
            "availability_zones": "us-east-1a,us-east-1b",
            "route_table_ids": "rtb-1,rtb-2",
            "vpc_endpoints": "create",
        }
    )
    assert config.subnet_ids == ["subnet-1", "subnet-2"]


def test_the_example_context_file_synthesizes_with_the_existing_stores_referenced(tmp_path: Path) -> None:
    # Given the documented example context for a dev stage
    example = json.loads(EXAMPLE.read_text())
    # When the app synthesizes from it (the CLI's way: -c context_file=...)
    result = run_app_in_process(tmp_path, {"context_file": str(EXAMPLE)})
    assert result.returncode == 0, result.stderr[-3000:]
    template = json.loads((tmp_path / "cdk.out" / f"ListingVision-{example['stage']}.template.json").read_text())
    resources = template["Resources"].values()
    # Then the existing vision-cache table is referenced by name, never created
    tables = [r for r in resources if r["Type"] == "AWS::DynamoDB::Table"]
    assert tables and all(t["Properties"]["KeySchema"][0]["AttributeName"] != "image_url" for t in tables)
    functions = [r for r in resources if r["Type"] == "AWS::Lambda::Function" and "FunctionName" in r["Properties"]]
    variables = functions[0]["Properties"]["Environment"]["Variables"]
    assert variables["VISION_CACHE_TABLE"] == example["vision_cache_table"]
    assert variables["OPENSEARCH_URL"] == example["opensearch_endpoint"]
    # and the OpenSearch grants name the existing domain
    text = json.dumps(template)
    assert ":domain/hearth-dev/listings-v2" in text
    # and nothing is a placeholder
    assert "example.internal" not in text and "123456789012" not in text
    # and, the first stage of its account, it makes the account's API Gateway logging role
    assert [r["Type"] for r in resources].count("AWS::ApiGateway::Account") == 1
    # and its embedding endpoint is serverless, so it idles at $0: no instances, nothing autoscaled
    (config,) = [r for r in resources if r["Type"] == "AWS::SageMaker::EndpointConfig"]
    (variant,) = config["Properties"]["ProductionVariants"]
    assert variant["ServerlessConfig"] == {"MemorySizeInMB": 6144, "MaxConcurrency": 5}
    assert "InstanceType" not in variant and "InitialInstanceCount" not in variant
    assert not [r for r in resources if r["Type"].startswith("AWS::ApplicationAutoScaling::")]
    # and the functions calling it batch their requests under serverless inference's 4 MB
    assert variables["SAGEMAKER_MAX_PAYLOAD_BYTES"] == "3500000"


def test_without_a_clip_package_make_synth_stands_the_descriptor_in_and_a_deploy_refuses(tmp_path: Path) -> None:
    # Given a fresh clone: the example context, and no CLIP package built
    # When the app runs as `make synth` runs it (-c synth_only=true)
    synth = run_app_in_process(tmp_path / "synth", {"context_file": str(EXAMPLE), "synth_only": "true"}, model=False)
    # Then it synthesizes, saying loudly that the weight-free descriptor stands in for CLIP
    assert synth.returncode == 0, synth.stderr[-3000:]
    assert "NOTE: no CLIP model package" in synth.stderr and "do not deploy this cdk.out" in synth.stderr
    assert list((tmp_path / "synth" / "cdk.out").glob("*.template.json"))
    # When it runs as `make deploy` does (no synth_only), it refuses, naming what to build
    deploy = run_app_in_process(tmp_path / "deploy", {"context_file": str(EXAMPLE)}, model=False)
    assert deploy.returncode != 0 and "run `make clip-model` first" in deploy.stderr
    assert not list((tmp_path / "deploy" / "cdk.out").glob("*.template.json"))


def test_make_synth_synthesizes_the_example_context_on_a_fresh_clone() -> None:
    # `make synth` without a stage file falls back to the example context, and passes synth_only
    dry_run = subprocess.run(
        ["make", "-n", "synth", "CONTEXT=infra/stages/no-such-stage.json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "MAKEFLAGS": ""},
    )
    command = next(line for line in dry_run.stdout.splitlines() if "cdk synth" in line)
    assert f"-c context_file={EXAMPLE.relative_to(ROOT)}" in command and "-c synth_only=true" in command
    assert "clip-model" not in dry_run.stdout


def test_the_deploying_page_lists_every_context_key_as_generated() -> None:
    from infra.config import context_table

    text = (ROOT / "docs" / "deploying.md").read_text()
    start = text.index("<!-- context:start")
    body = text[text.index("\n", start) + 1 : text.index("<!-- context:end -->")].strip()
    assert body == context_table()


def test_cdk_json_sets_no_deployment_setting() -> None:
    # cdk.json's context reaches every synth as context: a stage or a store named there would override
    # the file's (a prod.json deploying as dev). Only the example storefronts live there, and a stage
    # file's own win over them (infra.config.load; test_storefronts_infra.py)
    context = json.loads((ROOT / "cdk.json").read_text())["context"]
    from infra.config import DeploymentConfig

    assert set(context) & set(DeploymentConfig.model_fields) == {"storefronts"}


def test_a_stage_asking_for_fp16_without_a_faster_fp16_model_is_refused_at_synth(tmp_path: Path) -> None:
    # Given a stage that sets clip_fp16, and a model package with no fp16 model measured faster than fp32
    result = run_app(tmp_path, {**SETTINGS, "clip_fp16": True})
    # Then the synth stops, saying why and what to do, and writes no template
    assert result.returncode != 0
    assert "clip_fp16 is set, but" in result.stderr and "model.fp16.onnx" in result.stderr
    assert not list((tmp_path / "cdk.out").glob("*.template.json"))
    # and only that: no jsii banner about this machine's Node version before it (infra/__init__.py)
    assert "end-of-life" not in result.stderr, result.stderr


def test_a_deploy_refuses_a_clip_package_that_would_download_its_dependencies_at_start(tmp_path: Path) -> None:
    # Given a CLIP package whose requirements name an index, not the wheels packed beside them
    tmp_path.mkdir(exist_ok=True)
    stand_in_package(tmp_path / "model.tar.gz", "onnxruntime-gpu==1.26.0\nnumpy==2.4.6\n")
    # When the app runs as `make deploy` does, Then it refuses, naming the way out, and synthesizes nothing
    deploy = run_app_in_process(tmp_path, {"context_file": str(EXAMPLE)})
    assert deploy.returncode != 0 and "rebuild it with `make clip-model`" in deploy.stderr
    assert not list((tmp_path / "cdk.out").glob("*.template.json"))
