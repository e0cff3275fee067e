"""The CDK stack synthesized once per session with cdk-nag on, without building the layer (an empty
asset stands in for it), from a deployment configuration naming the same stores the local stack
uses, so the template's names line up with what the local stack records. The app gets cdk.json's
feature flags, as the CDK CLI gives them to `make synth` and `make deploy`."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_lambda as lambda_
from aws_cdk.assertions import Template

from infra.config import DeploymentConfig, validate
from infra.nag import add_checks
from infra.stack import ListingVisionStack
from tests.conftest import RECORDED_CALLS
from tests.infra.iam import RolePolicies, write_grants

STACK = "InfraTest"
SETTINGS: dict[str, Any] = {
    "stage": "test",
    "vision_cache_table": "hearth-vision-cache",
    "opensearch_endpoint": "https://search-listings-q7x3k2.us-east-1.es.amazonaws.com",
    "milvus_uri": "https://milvus.acme.net:19530",
    "milvus_token_secret": "milvus-token",
    "openai_key_secret": "openai-key",
    "anthropic_key_secret": "anthropic-key",
    "alarm_subscription": "oncall@acme.net",
    # the migration sized to a domain of 3 × r6g.xlarge (infra/migration_sizing.py), not the defaults
    "opensearch_data_nodes": 3,
    "opensearch_instance_type": "r6g.xlarge.search",
    "migration_batch_size": 200,
    "migration_bulk_size": 50,
}


@dataclass
class Synthesized:
    name: str
    config: DeploymentConfig
    stack: ListingVisionStack
    template: Template
    report: dict[str, Any]

    @property
    def resources(self) -> dict[str, Any]:
        return dict(self.template.to_json()["Resources"])

    def of_type(self, kind: str) -> dict[str, Any]:
        return {name: r for name, r in self.resources.items() if r["Type"] == kind}

    def logical_id(self, construct: Any) -> str:
        return str(self.stack.resolve(self.stack.get_logical_id(construct.node.default_child)))


ROOT = Path(__file__).resolve().parents[2]
# The feature flags of cdk.json (`@aws-cdk/...`): what the CLI passes to every synth and deploy.
FEATURE_FLAGS = {
    key: value for key, value in json.loads((ROOT / "cdk.json").read_text())["context"].items() if key.startswith("@")
}
LAYERS = [name for name in json.loads((ROOT / "layers/layers.json").read_text()) if name[:2] != "//"]


def synthesize(tmp: Path, settings: dict[str, Any], stack_name: str = STACK) -> Synthesized:
    for name in LAYERS:  # an empty asset stands in for each built layer
        (tmp / "layers" / name / "python").mkdir(parents=True)
    tarball = tmp / "model.tar.gz"
    tarball.write_bytes(b"not needed to synthesize")
    outdir = tmp / "cdk.out"
    app = cdk.App(outdir=str(outdir), context=FEATURE_FLAGS)
    config = validate(settings)
    stack = ListingVisionStack(
        app,
        stack_name,
        config=config,
        layer_code={name: lambda_.Code.from_asset(str(tmp / "layers" / name)) for name in LAYERS},
        clip_model_tarball=str(tarball),
    )
    add_checks(app)  # cdk-nag fails the synth on any finding that is not acknowledged
    app.synth()
    report = json.loads((outdir / "validation-report.json").read_text())
    return Synthesized(stack_name, config, stack, Template.from_stack(stack), report)


def grants_file(recorded_calls: str) -> Path:
    """Where `make test`'s parallel run leaves the grants of the stack it synthesized, beside the calls
    its stacks recorded, for the permission tests it runs next (test_permissions.py)."""
    return Path(recorded_calls) / "synthesized" / "grants.json"


@pytest.fixture(scope="session")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    synthesized = synthesize(tmp_path_factory.mktemp("synth"), SETTINGS)
    if os.environ.get(RECORDED_CALLS):
        policies = RolePolicies(synthesized.stack, synthesized.template.to_json())
        write_grants(grants_file(os.environ[RECORDED_CALLS]), policies)
    return synthesized


# The first stage of an account: in the shared VPC, making its endpoints and the account's API
# Gateway logging role, keeping its stores when deleted. (SETTINGS is a later stage: no VPC, no account
# role, stores deleted with it.) It also differs from SETTINGS wherever a test reads one setting's effect
# alone (one more console origin, a calibrated threshold, alya's photos in a bucket that already exists),
# so those tests share its synthesis instead of each synthesizing a stack of its own.
EXTRA_CONSOLE_ORIGIN = "https://review.acme.net"
EXISTING_ALYA_BUCKET = "acme-alya-photos"
CALIBRATED_THRESHOLD = 0.374
FIRST_STAGE: dict[str, Any] = {
    **SETTINGS,
    "vpc_id": "vpc-0a1b2c3d4e5f60718",
    "subnet_ids": "subnet-0a1b2c3d4e5f60718,subnet-0f1e2d3c4b5a60718",
    "security_group_ids": "sg-0a1b2c3d4e5f60718",
    "availability_zones": "us-east-1a,us-east-1b",
    "route_table_ids": "rtb-0a1b2c3d4e5f60718,rtb-0f1e2d3c4b5a60718",
    "vpc_endpoints": "create",
    "api_gateway_cloudwatch_role": True,
    "retain_data": True,  # a stage whose stores outlive it (README 'Tearing down without losing catalogue data')
    "console_origins": [EXTRA_CONSOLE_ORIGIN],
    "retrieval_threshold": CALIBRATED_THRESHOLD,
    "storefronts": [{"name": "alya", "bucket": EXISTING_ALYA_BUCKET}, {"name": "blysk"}],
}


@pytest.fixture(scope="session")
def first_stage(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    return synthesize(tmp_path_factory.mktemp("first-stage"), FIRST_STAGE, "InfraTestFirstStage")
