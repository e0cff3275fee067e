"""Stages share an account and a VPC: what exists once per account or per VPC is made by one stage,
on purpose, from its context. The first stage (FIRST_STAGE: in the VPC, `vpc_endpoints=create`,
`api_gateway_cloudwatch_role=true`) makes the VPC endpoints the functions' code needs, and no
other, and API Gateway's account logging role, kept when it goes; a later stage (SETTINGS, or
`vpc_endpoints=existing`) makes neither."""

from __future__ import annotations

import json
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Template

from infra.config import ContextError, validate
from infra.constructs.network import private_network
from tests.infra.conftest import FIRST_STAGE, Synthesized

# Where the functions in the VPC reach each AWS service their roles grant: an endpoint of this VPC,
# or, for OpenSearch, the domain itself (in the VPC, or through the NAT).
GATEWAY = {"s3", "dynamodb"}
INTERFACE = {"sagemaker": "sagemaker.runtime", "secretsmanager": "secretsmanager", "states": "states"}
DIRECT = {"es"}
LAMBDA_ITSELF = {"logs", "xray", "sqs"}


def services_of(name: Any) -> str:
    """`com.amazonaws.<region>.<service>` (a Fn::Join in the template) → `<service>`."""
    return "".join(part for part in name["Fn::Join"][1] if isinstance(part, str)).removeprefix("com.amazonaws.")[1:]


def roles_in_vpc(synthesized: Synthesized) -> set[str]:
    return {
        fn["Properties"]["Role"]["Fn::GetAtt"][0]
        for fn in synthesized.of_type("AWS::Lambda::Function").values()
        if "VpcConfig" in fn["Properties"]
    }


def test_the_first_stage_makes_exactly_the_endpoints_its_functions_call(first_stage: Synthesized) -> None:
    # Given the AWS services the roles of the functions in the VPC may call (what Lambda itself does with the
    # role, outside the VPC, aside: logs, traces, the on-failure destination's queue)
    roles = roles_in_vpc(first_stage)
    assert len(roles) == 9  # the four dedupe functions, caption, listing-ingest, listing-search, migration, provision
    called = set()
    for policy in first_stage.of_type("AWS::IAM::Policy").values():
        if roles & {r["Ref"] for r in policy["Properties"]["Roles"]}:
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
                actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                called |= {action.split(":")[0] for action in actions} - LAMBDA_ITSELF
    assert called == GATEWAY | set(INTERFACE) | DIRECT
    # Then the VPC gets a gateway endpoint for each gateway service, on the subnets' route tables
    gateways = [e["Properties"] for e in first_stage.of_type("AWS::EC2::VPCEndpoint").values()]
    assert {services_of(e["ServiceName"]) for e in gateways if e.get("VpcEndpointType") == "Gateway"} == GATEWAY
    assert all(
        len(e["RouteTableIds"]) == len(FIRST_STAGE["route_table_ids"].split(","))
        for e in gateways
        if e.get("VpcEndpointType") == "Gateway"
    )
    # and an interface endpoint, with private DNS, for each other service, and none more (no Lambda endpoint:
    # no function in the VPC invokes one)
    interfaces = [e for e in gateways if e.get("VpcEndpointType") == "Interface"]
    assert {services_of(e["ServiceName"]) for e in interfaces} == set(INTERFACE.values())
    assert all(e["PrivateDnsEnabled"] is True for e in interfaces)


def test_every_function_that_reaches_milvus_or_opensearch_runs_in_the_vpc(first_stage: Synthesized) -> None:
    functions = first_stage.of_type("AWS::Lambda::Function").values()
    in_vpc = {
        fn["Properties"]["FunctionName"].removeprefix("listing-vision-test-")
        for fn in functions
        if "VpcConfig" in fn["Properties"]
    }
    assert in_vpc == {
        "dedupe",
        "dedupe-indexer",
        "dedupe-backfill",
        "dedupe-reconcile",
        "caption",
        "listing-ingest",
        "listing-search",
        "migration",
        "provision",
    }
    for fn in functions:
        if "VpcConfig" in fn["Properties"]:
            config = fn["Properties"]["VpcConfig"]
            assert config["SubnetIds"] == FIRST_STAGE["subnet_ids"].split(",")
            assert config["SecurityGroupIds"] == [FIRST_STAGE["security_group_ids"]]


def test_a_later_stage_in_the_same_vpc_makes_no_endpoint(tmp_path: Any) -> None:
    # Given a second stage in the first stage's VPC, whose endpoints exist already
    config = validate({**FIRST_STAGE, "stage": "second", "vpc_endpoints": "existing"})
    stack = cdk.Stack(cdk.App(outdir=str(tmp_path)), "Second")
    network = private_network(stack, config)
    # Then it runs in the same subnets and makes no endpoint (a second one would clash on private DNS)
    assert [subnet.subnet_id for subnet in network.vpc.private_subnets] == config.subnet_ids
    assert Template.from_stack(stack).find_resources("AWS::EC2::VPCEndpoint") == {}


def test_a_stage_in_a_vpc_says_who_makes_its_endpoints() -> None:
    with pytest.raises(ContextError) as refused:
        validate({k: v for k, v in FIRST_STAGE.items() if k != "vpc_endpoints"})
    assert "vpc_id needs vpc_endpoints: create" in str(refused.value)
    with pytest.raises(ContextError):
        validate({**FIRST_STAGE, "vpc_endpoints": "true"})
    # and a stage that makes them gives the route tables for the gateway endpoints
    with pytest.raises(ContextError) as refused:
        validate({k: v for k, v in FIRST_STAGE.items() if k != "route_table_ids"})
    assert "route_table_ids" in str(refused.value)
    assert validate({**FIRST_STAGE, "vpc_endpoints": "none", "route_table_ids": ""}).vpc_endpoints == "none"


def test_only_the_stage_that_says_so_makes_the_accounts_api_gateway_logging_role(
    synthesized: Synthesized, first_stage: Synthesized
) -> None:
    # A later stage makes no AWS::ApiGateway::Account (one per account and region: a second would fight the first)
    assert synthesized.of_type("AWS::ApiGateway::Account") == {}
    # The first makes it, and keeps it and its role when it is deleted: every stage's API logs need it
    (account,) = first_stage.of_type("AWS::ApiGateway::Account").values()
    role_id = account["Properties"]["CloudWatchRoleArn"]["Fn::GetAtt"][0]
    role = first_stage.resources[role_id]
    assert account["DeletionPolicy"] == role["DeletionPolicy"] == "Retain"
    assert "AmazonAPIGatewayPushToCloudWatchLogs" in json.dumps(role["Properties"]["ManagedPolicyArns"])
    # and both stages log their API (access logs), which the role makes possible
    for stage in (synthesized, first_stage):
        (api_stage,) = stage.of_type("AWS::ApiGateway::Stage").values()
        assert "AccessLogSetting" in api_stage["Properties"]
