"""The deploy provisions what CloudFormation does not create (infra/constructs/provisioning.py): a
trigger runs the `provision` function once the stores and the functions exist, with the settings
it provisions from and, under fine-grained access control, the roles it maps."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from local.call_recorder import ACCOUNT_ID, OPENSEARCH_DOMAIN, REGION
from tests.infra.conftest import SETTINGS, Synthesized, synthesize
from tests.infra.iam import Grant, RolePolicies

DOMAIN = f"arn:aws:es:{REGION}:{ACCOUNT_ID}:domain/{OPENSEARCH_DOMAIN}"  # the listings domain, in recorded names


def trigger_of(synthesized: Synthesized) -> dict[str, Any]:
    triggers = synthesized.of_type("Custom::Trigger")
    assert len(triggers) == 1
    return next(iter(triggers.values()))


def environment_of(synthesized: Synthesized) -> dict[str, Any]:
    function = synthesized.resources[synthesized.logical_id(synthesized.stack.provisioning.function.function)]
    return dict(function["Properties"]["Environment"]["Variables"])


@pytest.fixture(scope="module")
def fine_grained(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    return synthesize(
        tmp_path_factory.mktemp("fine-grained"), {**SETTINGS, "opensearch_access": "fine_grained"}, "InfraTestFgac"
    )


def test_a_trigger_runs_the_provisioning_function_on_deploy(synthesized: Synthesized) -> None:
    # Given the synthesized stack, Then one trigger invokes the provisioning function's current version,
    # synchronously (its failure fails the deploy), again whenever the function or its settings change
    trigger = trigger_of(synthesized)["Properties"]
    version = synthesized.stack.provisioning.function.function.current_version
    # (a version's logical id ends in a hash of the function's code and configuration: a change makes a new one)
    assert trigger["HandlerArn"]["Ref"].startswith(synthesized.logical_id(version))
    assert trigger["InvocationType"] == "RequestResponse" and trigger["ExecuteOnHandlerChange"] is True
    assert int(trigger["Timeout"]) == synthesized.stack.provisioning.function.spec.timeout_s * 1000


def test_the_trigger_runs_after_the_stores_and_every_function_whose_role_it_maps(synthesized: Synthesized) -> None:
    depends = set(trigger_of(synthesized)["DependsOn"])
    stack = synthesized.stack
    # the tables and buckets
    for construct in [*stack.storage.tables.values(), *stack.storage.buckets.values()]:
        if construct.node.default_child is not None:  # made by this stack (not an existing one)
            assert synthesized.logical_id(construct) in depends
    # and every function of the capabilities, with its role's policy (a mapped role must exist first)
    for name, function in stack.functions.items():
        if name in ("provision", "authorizer"):
            continue
        assert synthesized.logical_id(function.function) in depends, name
        assert synthesized.logical_id(function.role) in depends, name


def test_the_trigger_runs_once_the_endpoint_can_name_its_model(synthesized: Synthesized) -> None:
    # Given the collection records the signature of the model the endpoint serves (vector_index.py)
    stack = synthesized.stack
    endpoint = str(stack.resolve(stack.get_logical_id(stack.clip.endpoint)))
    # Then the trigger waits for the endpoint, and the provisioning function may invoke it (that one only)
    assert synthesized.resources[endpoint]["Type"] == "AWS::SageMaker::Endpoint"
    assert endpoint in trigger_of(synthesized)["DependsOn"]
    policies = RolePolicies(synthesized.stack, synthesized.template.to_json())

    def invoked(function: str) -> set[str]:
        return {grant.resource for grant in policies.grants(function) if grant.action == "sagemaker:InvokeEndpoint"}

    assert invoked("provision") == invoked("dedupe") and len(invoked("provision")) == 1


def test_the_provisioning_function_gets_the_stores_it_provisions(synthesized: Synthesized) -> None:
    environment = environment_of(synthesized)
    assert environment["MILVUS_COLLECTION"] == synthesized.config.milvus_collection
    assert environment["LISTINGS_INDEX"] == synthesized.config.listings_index
    assert environment["OPENSEARCH_URL"] == synthesized.config.opensearch_endpoint
    assert environment["MILVUS_TOKEN_SECRET"] == synthesized.config.milvus_token_secret
    # IAM-only access (the default): nothing to map
    assert "OPENSEARCH_ACCESS" not in environment and "OPENSEARCH_ROLE_ARNS" not in environment


def test_iam_access_grants_the_listings_index_only(synthesized: Synthesized) -> None:
    grants = RolePolicies(synthesized.stack, synthesized.template.to_json()).grants("provision")
    domain = DOMAIN
    es = {(grant.action, grant.resource) for grant in grants if grant.action.startswith("es:")}
    assert es == {
        ("es:ESHttpHead", f"{domain}/listings-v2"),
        ("es:ESHttpPut", f"{domain}/listings-v2"),
        ("es:ESHttpGet", f"{domain}/listings-v2/_mapping"),
    }


def test_fine_grained_access_maps_the_opensearch_functions_roles(fine_grained: Synthesized) -> None:
    # Given a stage whose domain uses fine-grained access control
    environment = environment_of(fine_grained)
    # Then provisioning is told so, with the roles of the functions that call the listings index
    assert environment["OPENSEARCH_ACCESS"] == "fine_grained"
    listings = fine_grained.stack.listings.functions
    assert environment["OPENSEARCH_ROLE_ARNS"] == {
        "Fn::Join": [
            ",",
            [
                {"Fn::GetAtt": [fine_grained.logical_id(listings[name].role), "Arn"]}
                for name in ("listing-ingest", "listing-search", "migration")
            ],
        ]
    }
    # And its own role has the fixed name the domain's master user maps before the first deploy
    role = fine_grained.resources[fine_grained.logical_id(fine_grained.stack.provisioning.function.role)]
    assert role["Properties"]["RoleName"] == "listing-vision-test-provision"
    # And its role may read and write that one role and its mapping through the security plugin's API
    grants = set(RolePolicies(fine_grained.stack, fine_grained.template.to_json()).grants("provision"))
    domain = DOMAIN
    for kind in ("roles", "rolesmapping"):
        for action in ("es:ESHttpGet", "es:ESHttpPut"):
            assert Grant(action, f"{domain}/_plugins/_security/api/{kind}/listing-vision-listings-v2") in grants


def test_the_docs_say_how_to_rerun_provisioning() -> None:
    docs = Path(__file__).parents[2] / "docs"
    readme = (docs / "deploying.md").read_text() + (docs / "configuration.md").read_text()
    assert "aws lambda invoke --function-name listing-vision-<stage>-provision" in readme
    assert "python -m local --skip-provisioning" in readme
