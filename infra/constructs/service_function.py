"""The one function factory: every Lambda of the platform is built here from its declaration
(functions/specs.py), the same way: Python 3.12, active tracing, JSON logs with a retention, the
layers it needs, its declared reserved concurrency, its own role (logs and traces only; its
capability grants the rest), a version behind the `live` alias that every invoker names, released
through CodeDeploy (infra/constructs/releases.py), and, for a function invoked asynchronously,
retries and a maximum event age set on purpose (on the alias, which is what is invoked) and an SQS
failure queue for what still fails."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import jsii
from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_codedeploy as codedeploy
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from functions.routes import ROUTES
from functions.specs import PROVIDERS, RELEASE_ALIAS, FunctionSpec
from infra.config import DeploymentConfig
from infra.constructs.releases import Releases
from infra.nag import acknowledge
from listing_vision.config import Settings
from listing_vision.providers.worst_case import provider_worst_case_s

FUNCTIONS_DIR = Path(__file__).resolve().parents[2] / "functions"


@dataclass(frozen=True)
class Network:
    """Where functions that reach Milvus or OpenSearch run, when those live in a VPC."""

    vpc: ec2.IVpc
    subnets: ec2.SubnetSelection
    security_groups: list[ec2.ISecurityGroup] = field(default_factory=list)


@jsii.implements(lambda_.IDestination)
class FailureQueue:
    """An SQS queue as a function's on-failure destination, allowed exactly what Lambda does with it:
    SendMessage with the function's role (CDK's SqsDestination also grants GetQueueUrl and
    GetQueueAttributes, which nothing calls)."""

    def __init__(self, queue: sqs.IQueue) -> None:
        self.queue = queue

    def bind(
        self, scope: Construct, fn: lambda_.IFunction, *, type: lambda_.DestinationType | None = None
    ) -> lambda_.DestinationConfig:
        fn.add_to_role_policy(iam.PolicyStatement(actions=["sqs:SendMessage"], resources=[self.queue.queue_arn]))
        return lambda_.DestinationConfig(destination=self.queue.queue_arn)


API_GATEWAY_LIMIT_S = 29  # API Gateway cuts every request at 29 s
API_OTHER_WORK_S = 5  # what an API request does besides asking a model: the duplicate check, S3, Milvus


def check_provider_budget(spec: FunctionSpec) -> None:
    """An API function that asks a model must get its answer, in the worst case its settings allow,
    with time to spare before API Gateway cuts the request: else the synth stops, saying why."""
    if spec.name not in {route.function for route in ROUTES} or PROVIDERS not in spec.layers:
        return
    declared = dict(spec.settings)
    timeout_s = float(declared.get("PROVIDER_TIMEOUT_S", Settings.model_fields["provider_timeout_s"].default))
    retries = int(declared.get("PROVIDER_MAX_RETRIES", Settings.model_fields["provider_max_retries"].default))
    worst = provider_worst_case_s(timeout_s, retries)
    budget = min(spec.timeout_s, API_GATEWAY_LIMIT_S) - API_OTHER_WORK_S
    if worst > budget:
        raise ValueError(
            f"{spec.name}: a model answer may take {worst:g} s (PROVIDER_TIMEOUT_S={timeout_s:g}, "
            f"PROVIDER_MAX_RETRIES={retries}), over the {budget} s an API request has for it; "
            "set its settings in functions/specs.py"
        )


class ServiceFunction(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        spec: FunctionSpec,
        config: DeploymentConfig,
        layers: list[lambda_.ILayerVersion],
        environment: dict[str, str],
        releases: Releases,
        network: Network | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        check_provider_budget(spec)
        self.spec = spec
        removal = RemovalPolicy.RETAIN if config.removal_retains_data else RemovalPolicy.DESTROY
        self.log_group = logs.LogGroup(self, "Logs", retention=logs.RetentionDays.ONE_MONTH, removal_policy=removal)
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"Execution role of the {spec.name} function ({spec.description})",
        )
        self.failure_queue: sqs.Queue | None = None
        if spec.asynchronous is not None:
            self.failure_queue = sqs.Queue(
                self,
                "Failures",
                queue_name=config.name(spec.failure_queue or f"{spec.name}-failures"),
                retention_period=Duration.days(14),
                encryption=sqs.QueueEncryption.SQS_MANAGED,
                enforce_ssl=True,
                removal_policy=removal,
            )
        self.function = lambda_.Function(
            self,
            "Function",
            function_name=config.name(spec.name),
            description=spec.description,
            runtime=lambda_.Runtime.PYTHON_3_12,
            architecture=lambda_.Architecture.X86_64,  # the layers' wheels are manylinux x86_64
            handler=f"{spec.module}.lambda_handler",
            code=lambda_.Code.from_asset(str(FUNCTIONS_DIR / spec.package), exclude=["__pycache__", "*.pyc"]),
            layers=layers,
            role=self.role,
            memory_size=spec.memory_mb,
            timeout=Duration.seconds(spec.timeout_s),
            reserved_concurrent_executions=spec.reserved_concurrency,
            # A new version per change; the previous ones stay (deleted with the function), so a release can be
            # rolled back by hand to the version before it (README 'Releasing and rolling back')
            current_version_options=lambda_.VersionOptions(removal_policy=RemovalPolicy.RETAIN),
            tracing=lambda_.Tracing.ACTIVE,
            logging_format=lambda_.LoggingFormat.JSON,
            log_group=self.log_group,
            environment={"POWERTOOLS_SERVICE_NAME": spec.name, **environment, **dict(spec.settings)},
            vpc=network.vpc if network else None,
            vpc_subnets=network.subnets if network else None,
            security_groups=network.security_groups if network else None,
        )
        # What callers invoke: the alias, moved to each new version by CodeDeploy (the version is
        # published whenever the code, layers or configuration change; old versions stay to roll back to)
        self.alias = lambda_.Alias(self, "Live", alias_name=RELEASE_ALIAS, version=self.function.current_version)
        self.release: codedeploy.LambdaDeploymentGroup = releases.release(self, self.alias, spec.name)
        if spec.asynchronous is not None and self.failure_queue is not None:
            # Lambda applies the retry settings of the qualifier invoked: the alias's, not $LATEST's
            self.alias.configure_async_invoke(
                retry_attempts=spec.asynchronous.retry_attempts,
                max_event_age=Duration.seconds(spec.asynchronous.max_event_age_s),
                on_failure=FailureQueue(self.failure_queue),
            )
        # Tracing needs X-Ray writes (they take no resource); granted explicitly since the role is our own.
        self.role.add_to_principal_policy(
            iam.PolicyStatement(actions=["xray:PutTraceSegments", "xray:PutTelemetryRecords"], resources=["*"])
        )
        acknowledge(
            self.role,
            "AwsSolutions-IAM5[Resource::*]",
            "X-Ray's PutTraceSegments and PutTelemetryRecords accept no resource ARN.",
        )
        acknowledge(
            self.function,
            "AwsSolutions-L1",
            "Python 3.12 is the runtime the layers' wheels are built for (pip --python-version 3.12).",
        )
        if self.failure_queue is not None:
            acknowledge(
                self.failure_queue,
                "AwsSolutions-SQS3",
                "This queue is the function's on-failure destination, its dead-letter queue: failed events stay "
                "here to be inspected and redriven.",
            )
        self.log_group.grant_write(self.role)
        if network is not None:  # ENIs in the VPC (the AWS managed policy is what Lambda documents)
            self.role.add_managed_policy(
                iam.ManagedPolicy.from_aws_managed_policy_name("service-role/AWSLambdaVPCAccessExecutionRole")
            )
            acknowledge(
                self.role,
                "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
                "AWSLambdaVPCAccessExecutionRole]",
                "Lambda's documented policy for a function's network interfaces in a VPC (EC2's network-interface "
                "actions, which take no narrower resource) besides its logs.",
            )
