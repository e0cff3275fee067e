"""The CDK stack, synthesized without building the layer (an empty asset stands in for it)."""

from __future__ import annotations

from pathlib import Path

import aws_cdk as cdk
import pytest
from aws_cdk import aws_lambda as lambda_
from aws_cdk.assertions import Match, Template

from functions.routes import FUNCTIONS, ROUTES
from infra.nag import add_checks
from infra.stack import ListingVisionStack
from listing_vision.resources import TABLES


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    layer = tmp_path_factory.mktemp("layer")
    (layer / "python").mkdir()
    app = cdk.App(outdir=str(tmp_path_factory.mktemp("cdk.out")))
    tarball = tmp_path_factory.mktemp("clip") / "model.tar.gz"
    tarball.write_bytes(b"not needed to synthesize")
    stack = ListingVisionStack(
        app, "Test", layer_code=lambda_.Code.from_asset(str(layer)), stage="test", clip_model_tarball=str(tarball)
    )
    # cdk-nag runs on synth and fails it on any unacknowledged finding
    add_checks(app, stack, list(stack.storage.buckets.values()), stack.nag_acknowledgements())
    app.synth()
    return Template.from_stack(stack)


def test_every_function_is_python312_traced_json_logged_with_the_layer(template: Template) -> None:
    functions = template.find_resources("AWS::Lambda::Function", {"Properties": {"Runtime": "python3.12"}})
    assert len(functions) == len(FUNCTIONS) + 1  # and the generation worker
    for function in functions.values():
        props = function["Properties"]
        assert props["TracingConfig"] == {"Mode": "Active"}
        assert props["LoggingConfig"]["LogFormat"] == "JSON"
        assert props["Handler"] == "handler.lambda_handler"
        assert len(props["Layers"]) == 1


def test_each_function_has_its_own_role(template: Template) -> None:
    functions = template.find_resources("AWS::Lambda::Function", {"Properties": {"Runtime": "python3.12"}})
    roles = {str(f["Properties"]["Role"]) for f in functions.values()}
    assert len(roles) == len(FUNCTIONS) + 1


def test_stores_are_private_encrypted_and_recoverable(template: Template) -> None:
    template.all_resources_properties(
        "AWS::S3::Bucket",
        {
            "PublicAccessBlockConfiguration": {
                "BlockPublicAcls": True,
                "BlockPublicPolicy": True,
                "IgnorePublicAcls": True,
                "RestrictPublicBuckets": True,
            },
            "BucketEncryption": Match.any_value(),
        },
    )
    template.resource_count_is("AWS::DynamoDB::Table", len(TABLES))
    template.has_resource_properties(
        "AWS::DynamoDB::Table",
        {
            "KeySchema": [{"AttributeName": "image_url", "KeyType": "HASH"}],
            "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
        },
    )
    template.has_resource_properties(
        "AWS::DynamoDB::Table",
        {
            "KeySchema": [{"AttributeName": "job_id", "KeyType": "HASH"}],
            "TimeToLiveSpecification": {"AttributeName": "expires_at", "Enabled": True},
        },
    )


def test_api_serves_every_route_with_binary_media_and_api_keys(template: Template) -> None:
    template.has_resource_properties(
        "AWS::ApiGateway::RestApi",
        {
            "BinaryMediaTypes": ["multipart/form-data", "image/*", "application/octet-stream"],
        },
    )
    methods = template.find_resources("AWS::ApiGateway::Method", {"Properties": {"ApiKeyRequired": True}})
    assert sorted(m["Properties"]["HttpMethod"] for m in methods.values()) == sorted(r.method for r in ROUTES)
    path_parts = {r["Properties"]["PathPart"] for r in template.find_resources("AWS::ApiGateway::Resource").values()}
    assert path_parts >= {
        "image_similarity_search",
        "generate_caption",
        "generate-images",
        "regenerate-image",
        "jobs",
        "{job_id}",
    }


def test_cdk_json_points_at_the_app() -> None:
    import json

    config = json.loads((Path(__file__).resolve().parents[2] / "cdk.json").read_text())
    assert config["app"].endswith("-m infra.app")


def test_clip_endpoint_is_gpu_autoscaled_and_invocable_only_by_embedding_functions(template: Template) -> None:
    template.has_resource_properties(
        "AWS::SageMaker::EndpointConfig",
        {
            "ProductionVariants": [Match.object_like({"InstanceType": "ml.g5.xlarge", "VariantName": "AllTraffic"})],
        },
    )
    template.has_resource_properties(
        "AWS::SageMaker::Model",
        {
            "PrimaryContainer": Match.object_like(
                {
                    "Environment": Match.object_like({"SAGEMAKER_PROGRAM": "inference.py"}),
                }
            ),
        },
    )
    template.has_resource_properties(
        "AWS::ApplicationAutoScaling::ScalingPolicy",
        {
            "TargetTrackingScalingPolicyConfiguration": Match.object_like(
                {
                    "PredefinedMetricSpecification": {"PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"},
                }
            ),
        },
    )
    # Which roles may invoke the endpoint: exactly the functions that embed images
    functions = template.find_resources("AWS::Lambda::Function", {"Properties": {"Runtime": "python3.12"}})
    role_of = {
        f["Properties"]["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"]: f["Properties"]["Role"]["Fn::GetAtt"][0]
        for f in functions.values()
    }
    invokers = set()
    for policy in template.find_resources("AWS::IAM::Policy").values():
        actions = [s["Action"] for s in policy["Properties"]["PolicyDocument"]["Statement"]]
        if "sagemaker:InvokeEndpoint" in actions:
            invokers.update(r["Ref"] for r in policy["Properties"]["Roles"])
    assert invokers == {role_of["dedupe"], role_of["caption"], role_of["regenerate"]}
    for function in functions.values():
        assert "SAGEMAKER_ENDPOINT_NAME" in function["Properties"]["Environment"]["Variables"]


def test_storefront_uploads_notify_the_dedupe_function(template: Template) -> None:
    notifications = template.find_resources("Custom::S3BucketNotifications")
    assert len(notifications) == 3  # alya and blysk to dedupe; listing uploads to regenerate
    targets = []
    for resource in notifications.values():
        config = resource["Properties"]["NotificationConfiguration"]["LambdaFunctionConfigurations"]
        assert [c["Events"] for c in config] == [["s3:ObjectCreated:*"]]
        targets.append(config[0]["LambdaFunctionArn"]["Fn::GetAtt"][0])
    assert sum("DedupeFunction" in t for t in targets) == 2 and sum("RegenerateFunction" in t for t in targets) == 1


def test_migration_state_machine_fans_out_with_a_distributed_map(template: Template) -> None:
    import json

    machines = template.find_resources("AWS::StepFunctions::StateMachine")
    assert len(machines) == 1
    definition = json.loads(resolve_join(next(iter(machines.values()))["Properties"]["DefinitionString"]))
    plan_branch = definition["States"]["Operation"]["Choices"][0]
    assert plan_branch["Next"] == "Plan"
    fan_out = definition["States"]["Fan out batches"]
    assert fan_out["ItemProcessor"]["ProcessorConfig"]["Mode"] == "DISTRIBUTED"
    assert fan_out["ItemReader"]["Resource"].endswith(":states:::s3:getObject")
    assert fan_out["ItemReader"]["ReaderConfig"]["InputType"] == "JSON"
    assert fan_out["ItemReader"]["Parameters"]["Key.$"] == "$.plan.manifest.key"
    assert fan_out["MaxConcurrency"] == 10
    assert fan_out["ToleratedFailurePercentage"] == 5  # moto ignores it, so it is asserted here
    assert fan_out["ResultWriter"]["Resource"].endswith(":states:::s3:putObject")
    batch = fan_out["ItemProcessor"]["States"]["Migrate batch"]
    assert "Throttled" in batch["Retry"][0]["ErrorEquals"] and batch["Retry"][0]["BackoffRate"] == 2
    assert batch["Catch"][0]["Next"] == "Record failed batch"
    assert fan_out["Next"] == "Verify"


def resolve_join(value):
    if isinstance(value, dict) and "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return separator.join(p if isinstance(p, str) else "X" for p in parts)
    return value
