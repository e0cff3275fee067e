"""The migration's state machine on the local stack: the CDK construct synthesized with local ARNs
and names, intrinsic functions resolved, created in moto (whose interpreter runs it, with each
Lambda task answered by the in-process handler).

One difference from AWS, by necessity: moto rejects an integer ToleratedFailurePercentage and
ignores it at run time, so it is removed here (the infrastructure test asserts it on the real
template). A failed batch is recorded and fails its child execution as on AWS, and moto's Map
counts it failed, but carries on whatever the share: locally a run always reaches Verify, which
reports the failed batches.

Synthesizing starts CDK's Node.js runtime (seconds, at every start of the stack), so the definition
is kept in `build/local-cache/`, under a digest of its inputs: the arguments, aws-cdk-lib's version
and the source of infra/ and of this module (any change there synthesizes afresh).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

from functions.specs import RELEASE_ALIAS
from listing_vision import aws
from local.lambda_runtime import ACCOUNT_ID

REGION = "us-east-1"
ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "build" / "local-cache"
PSEUDO = {
    "AWS::Partition": "aws",
    "AWS::Region": REGION,
    "AWS::AccountId": ACCOUNT_ID,
    "AWS::URLSuffix": "amazonaws.com",
}


def resolve(value: Any) -> Any:
    """Resolve the intrinsic functions CDK leaves in a definition (Fn::Join, pseudo parameters)."""
    if isinstance(value, dict):
        if set(value) == {"Fn::Join"}:
            separator, parts = value["Fn::Join"]
            return separator.join(str(resolve(part)) for part in parts)
        if set(value) == {"Ref"} and value["Ref"] in PSEUDO:
            return PSEUDO[value["Ref"]]
        return {key: resolve(item) for key, item in value.items()}
    if isinstance(value, list):
        return [resolve(item) for item in value]
    return value


def synthesize_definition(function_name: str, artifacts_bucket: str, options: Any = None) -> dict[str, Any]:
    """The state machine's ASL, from the same construct the stack deploys (kept once synthesized)."""
    key = _inputs_digest(function_name, artifacts_bucket, options)
    cached = CACHE / f"migration-asl-{key}.json"
    if cached.exists():
        return dict(json.loads(cached.read_text()))
    definition = _synthesize(function_name, artifacts_bucket, options)
    CACHE.mkdir(parents=True, exist_ok=True)
    partial = cached.with_suffix(f".{os.getpid()}.partial")  # concurrent starts: each writes whole, then renames
    partial.write_text(json.dumps(definition))
    partial.replace(cached)
    return definition


def _inputs_digest(function_name: str, artifacts_bucket: str, options: Any) -> str:
    digest = hashlib.sha256(repr((function_name, artifacts_bucket, options, metadata.version("aws-cdk-lib"))).encode())
    sources = [*(ROOT / "infra").rglob("*.py"), ROOT / "local" / "workflow.py", ROOT / "functions" / "specs.py"]
    for source in sorted(sources):
        digest.update(source.relative_to(ROOT).as_posix().encode() + b"\0" + source.read_bytes())
    return digest.hexdigest()[:32]


def _synthesize(function_name: str, artifacts_bucket: str, options: Any) -> dict[str, Any]:
    import aws_cdk as cdk
    from aws_cdk import aws_lambda as lambda_
    from aws_cdk import aws_s3 as s3

    from infra.constructs.migration import VisualFeaturesMigration

    with tempfile.TemporaryDirectory() as outdir:
        app = cdk.App(outdir=outdir)
        stack = cdk.Stack(app, "LocalMigration", env=cdk.Environment(account=ACCOUNT_ID, region=REGION))
        # The function's alias, as the stack gives the construct (the tasks invoke the released version)
        function = lambda_.Function.from_function_arn(
            stack, "Function", f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{function_name}:{RELEASE_ALIAS}"
        )
        bucket = s3.Bucket.from_bucket_name(stack, "Artifacts", artifacts_bucket)
        VisualFeaturesMigration(
            stack, "Migration", function=function, artifacts=bucket, options=options, logs_enabled=False
        )
        template = app.synth().get_stack_by_name("LocalMigration").template
    machine = next(r for r in template["Resources"].values() if r["Type"] == "AWS::StepFunctions::StateMachine")
    definition = json.loads(resolve(machine["Properties"]["DefinitionString"]))
    _strip_tolerated_failure(definition)
    return definition


def _strip_tolerated_failure(node: Any) -> None:
    if isinstance(node, dict):
        node.pop("ToleratedFailurePercentage", None)
        for child in node.values():
            _strip_tolerated_failure(child)
    elif isinstance(node, list):
        for child in node:
            _strip_tolerated_failure(child)


def create_state_machine(name: str, definition: dict[str, Any]) -> str:
    """Create (or update) the state machine in moto; returns its ARN."""
    sfn = aws.client("stepfunctions")
    role = f"arn:aws:iam::{ACCOUNT_ID}:role/local-states"
    for machine in sfn.list_state_machines()["stateMachines"]:
        if machine["name"] == name:
            sfn.update_state_machine(stateMachineArn=machine["stateMachineArn"], definition=json.dumps(definition))
            return str(machine["stateMachineArn"])
    return str(sfn.create_state_machine(name=name, definition=json.dumps(definition), roleArn=role)["stateMachineArn"])
