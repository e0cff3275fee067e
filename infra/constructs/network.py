"""The existing VPC the Milvus- and OpenSearch-facing functions run in, and the endpoints they need.

The VPC, its subnets and security groups are referenced by id (context), never created. Inside
it, the functions reach S3 and DynamoDB through gateway endpoints and the SageMaker runtime and
Secrets Manager through interface endpoints (context `vpc_endpoints`, on by default); OpenSearch
and Milvus are reached directly. Functions that call OpenAI or Anthropic (caption, listing-ingest)
also need a route to the internet: a NAT gateway in these subnets (the README says so).
"""

from __future__ import annotations

from aws_cdk import aws_ec2 as ec2
from constructs import Construct

from infra.config import DeploymentConfig
from infra.constructs.service_function import Network


def private_network(scope: Construct, config: DeploymentConfig) -> Network:
    assert config.vpc_id
    vpc = ec2.Vpc.from_vpc_attributes(
        scope,
        "Vpc",
        vpc_id=config.vpc_id,
        availability_zones=config.availability_zones,
        private_subnet_ids=config.subnet_ids,
        private_subnet_route_table_ids=config.route_table_ids or None,
    )
    groups = [
        ec2.SecurityGroup.from_security_group_id(scope, f"FunctionsSg{index}", group_id, mutable=False)
        for index, group_id in enumerate(config.security_group_ids)
    ]
    subnets = ec2.SubnetSelection(subnets=vpc.private_subnets)
    if config.vpc_endpoints:
        for name, service in (
            ("S3Endpoint", ec2.GatewayVpcEndpointAwsService.S3),
            ("DynamoDbEndpoint", ec2.GatewayVpcEndpointAwsService.DYNAMODB),
        ):
            vpc.add_gateway_endpoint(name, service=service, subnets=[subnets])
        for name, interface in (
            ("SageMakerRuntimeEndpoint", ec2.InterfaceVpcEndpointAwsService.SAGEMAKER_RUNTIME),
            ("SecretsManagerEndpoint", ec2.InterfaceVpcEndpointAwsService.SECRETS_MANAGER),
        ):
            endpoint = vpc.add_interface_endpoint(name, service=interface, subnets=subnets, open=False)
            for group in groups:
                endpoint.connections.allow_default_port_from(group, "functions of the platform")
    return Network(vpc=vpc, subnets=subnets, security_groups=groups)
