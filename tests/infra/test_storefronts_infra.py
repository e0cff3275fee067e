"""Storefronts come from the stage context (`storefronts`): a third one added there, and nowhere
else, gets its bucket, its S3 triggers, its grants and its place in every function's STOREFRONTS;
an existing bucket named there is referenced, not created."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from infra.config import ContextError, load, validate
from local.call_recorder import Call
from tests.infra.conftest import EXISTING_ALYA_BUCKET, SETTINGS, Synthesized, synthesize
from tests.infra.iam import RolePolicies

ROOT = Path(__file__).resolve().parents[2]
THREE = [{"name": "alya"}, {"name": "blysk"}, {"name": "corvo"}]
PHOTO_KEY = "catalogue/ab/" + "ab" * 32 + ".jpg"


@pytest.fixture(scope="module")
def three(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    # Given a stage whose context declares a third storefront, and nothing else changed
    return synthesize(tmp_path_factory.mktemp("three"), {**SETTINGS, "storefronts": THREE}, "InfraTestThree")


def _environment(synthesized: Synthesized) -> dict[str, Any]:
    functions = synthesized.of_type("AWS::Lambda::Function")
    dedupe = next(f for f in functions.values() if f["Properties"].get("FunctionName") == "listing-vision-test-dedupe")
    return dict(dedupe["Properties"]["Environment"]["Variables"])


def test_a_third_storefront_in_context_gets_its_bucket_triggers_and_grants(three: Synthesized) -> None:
    storage = three.stack.storage
    # Then it has its own bucket, made like the others (private, versioned, the storefront expiries)
    corvo = three.resources[three.logical_id(storage.buckets["corvo_bucket"])]
    alya = three.resources[three.logical_id(storage.buckets["alya_bucket"])]
    assert corvo["Properties"]["LifecycleConfiguration"] == alya["Properties"]["LifecycleConfiguration"]
    assert corvo["Properties"]["PublicAccessBlockConfiguration"] == alya["Properties"]["PublicAccessBlockConfiguration"]
    # And the indexer hears of photos created and removed in it, as in the other two
    bucket_ids = {three.logical_id(b): s for s, b in storage.buckets.items() if b.node.default_child}
    wired = [
        (bucket_ids[resource["Properties"]["BucketName"]["Ref"]], tuple(config["Events"]))
        for resource in three.of_type("Custom::S3BucketNotifications").values()
        for config in resource["Properties"]["NotificationConfiguration"]["LambdaFunctionConfigurations"]
    ]
    for name in ("alya", "blysk", "corvo"):
        assert (f"{name}_bucket", ("s3:ObjectCreated:*",)) in wired
        assert (f"{name}_bucket", ("s3:ObjectRemoved:*",)) in wired
    # And the API, the caption function and the generator may use it as they use the others
    policies = RolePolicies(three.stack, three.template.to_json())

    def may(function: str, action: str, resource: str) -> bool:
        return any(grant.allows(Call(function, action, resource)) for grant in policies.grants(function))

    for bucket in ("alyaimg", "corvoimg"):
        assert may("dedupe", "s3:PutObject", f"arn:aws:s3:::{bucket}/{PHOTO_KEY}"), bucket
        assert may("dedupe-indexer", "s3:GetObject", f"arn:aws:s3:::{bucket}/console/ring.jpg"), bucket
        assert may("caption", "s3:GetObject", f"arn:aws:s3:::{bucket}/{PHOTO_KEY}"), bucket
        assert may("generate", "s3:ListBucket", f"arn:aws:s3:::{bucket}"), bucket
    assert not may("dedupe", "s3:PutObject", f"arn:aws:s3:::elsewhere/{PHOTO_KEY}")
    # And every function learns the three, in order (the first stays the default), each with its bucket
    variables = _environment(three)
    assert "CORVO_BUCKET" not in variables and "ALYA_BUCKET" not in variables
    joined = json.dumps(variables["STOREFRONTS"])
    assert joined.index('\\"alya\\"') < joined.index('\\"blysk\\"') < joined.index('\\"corvo\\"')
    assert three.logical_id(storage.buckets["corvo_bucket"]) in joined


def test_an_existing_bucket_named_in_context_is_referenced_not_created(first_stage: Synthesized) -> None:
    # Given a storefront whose bucket already lives in the account (the first stage's alya)
    synthesized = first_stage
    # Then the template creates a bucket for blysk only, and hands alya's name to the functions
    assert synthesized.stack.storage.buckets["alya_bucket"].node.default_child is None
    assert synthesized.stack.storage.buckets["blysk_bucket"].node.default_child is not None
    assert EXISTING_ALYA_BUCKET in json.dumps(_environment(synthesized)["STOREFRONTS"])


@pytest.mark.parametrize(
    "storefronts",
    [
        [],  # none
        [{"name": "alya"}, {"name": "alya"}],  # twice
        # two storefronts in one bucket: a photo's bucket says whose it is (access, dedupe, triggers)
        [{"name": "alya", "bucket": "shared-photos"}, {"name": "blysk", "bucket": "shared-photos"}],
        [{"name": "Alya"}],  # not a plain lower-case name
        [{"name": "alya", "partition": "x"}],  # an unknown key
        "not json",
    ],
)
def test_a_wrong_storefront_declaration_stops_the_synth_naming_the_key(storefronts: Any) -> None:
    with pytest.raises(ContextError, match="-c storefronts"):
        validate({**SETTINGS, "storefronts": storefronts})


def test_a_stage_file_declares_its_storefronts_over_cdk_json_and_c_over_both(tmp_path: Path) -> None:
    # Given cdk.json's example declaration (the CLI hands its context to every synth) and a stage file
    cdk_json = json.loads((ROOT / "cdk.json").read_text())["context"]
    stage = tmp_path / "stage.json"
    stage.write_text(json.dumps({**SETTINGS, "storefronts": THREE}))

    def context(given: dict[str, Any]) -> Any:
        return lambda key: given.get(key)

    # When the stage file is read, Then its storefronts win over cdk.json's
    config = load(context({**cdk_json, "context_file": str(stage)}), ROOT)
    assert config.storefront_names == ("alya", "blysk", "corvo")
    # And without a stage file's, cdk.json's hold: alya first, the default
    assert load(context({**cdk_json, **SETTINGS}), ROOT).storefront_names == ("alya", "blysk")
    # And -c storefronts (text, as the CLI gives it) wins over the file
    given = {**cdk_json, "context_file": str(stage), "storefronts": json.dumps([{"name": "dore"}])}
    assert load(context(given), ROOT).storefront_names == ("dore",)


def test_a_stage_file_with_a_storefront_bucket_key_of_old_is_refused_not_ignored(tmp_path: Path) -> None:
    # Given a stage file from before `storefronts`, naming an existing bucket the old way
    stage = tmp_path / "stage.json"
    stage.write_text(json.dumps({**SETTINGS, "alya_bucket": "alya-prod-photos"}))
    # When it is loaded, Then the synth stops, saying where the bucket goes now (ignoring it would create a new one)
    with pytest.raises(ContextError, match="alya_bucket: a storefront's bucket is now part of `storefronts`"):
        load(lambda key: str(stage) if key == "context_file" else None, ROOT)
