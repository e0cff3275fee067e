"""The existing VPC the Milvus- and OpenSearch-facing functions run in, and the endpoints they need.

The VPC, its subnets and security groups are referenced by id (context), never created. Inside
it, the functions reach S3 and DynamoDB through gateway endpoints and the SageMaker runtime,
Secrets Manager and Step Functions through interface endpoints, the only other AWS services their code calls
(INTERFACE_ENDPOINTS; a test derives them from the roles); OpenSearch and Milvus are reached
directly. A VPC holds these endpoints once (an interface endpoint's private DNS name, a gateway
endpoint's route, may exist once per VPC), so context `vpc_endpoints` says who makes them:
`create` (this stage: one per VPC), `existing` (another stage made them) or `none` (a NAT).
Functions that call OpenAI or Anthropic (caption, listing-ingest) also need a route to the
internet: a NAT gateway in these subnets (the README says so).
"""

from __future__ import annotations

from aws_cdk import aws_ec2 as ec2
from constructs import Construct

from infra.config import DeploymentConfig
from infra.constructs.service_function import Network

GATEWAY_ENDPOINTS = {
    "S3Endpoint": ec2.GatewayVpcEndpointAwsService.S3,
    "DynamoDbEndpoint": ec2.GatewayVpcEndpointAwsService.DYNAMODB,
}
INTERFACE_ENDPOINTS = {
    "SageMakerRuntimeEndpoint": ec2.InterfaceVpcEndpointAwsService.SAGEMAKER_RUNTIME,
    "SecretsManagerEndpoint": ec2.InterfaceVpcEndpointAwsService.SECRETS_MANAGER,
    # the migration's Plan asks whether the execution holding the run's lease still runs
    "StepFunctionsEndpoint": ec2.InterfaceVpcEndpointAwsService.STEP_FUNCTIONS,
}


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
    if config.vpc_endpoints == "create":
        for name, service in GATEWAY_ENDPOINTS.items():
            vpc.add_gateway_endpoint(name, service=service, subnets=[subnets])
        for name, interface in INTERFACE_ENDPOINTS.items():
            endpoint = vpc.add_interface_endpoint(
                name, service=interface, subnets=subnets, open=False, private_dns_enabled=True
            )
            for group in groups:
                endpoint.connections.allow_default_port_from(group, "functions of the platform")
    return Network(vpc=vpc, subnets=subnets, security_groups=groups)
