"""The one function factory: every Lambda of the platform is built here, the same way."""

from __future__ import annotations

from pathlib import Path

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

FUNCTIONS_DIR = Path(__file__).resolve().parents[2] / "functions"
API_TIMEOUT = Duration.seconds(29)  # API Gateway cuts a request at 29 s


class ServiceFunction(Construct):
    """A Python 3.12 Lambda with active tracing, JSON logs, the common layer, its own log group
    and its own role (logs only; capabilities grant the rest to `self.role`)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        name: str,
        layer: lambda_.ILayerVersion,
        environment: dict[str, str],
        memory_mb: int = 1024,
        timeout: Duration = API_TIMEOUT,
        log_retention: logs.RetentionDays = logs.RetentionDays.ONE_MONTH,
    ) -> None:
        super().__init__(scope, construct_id)
        self.log_group = logs.LogGroup(self, "Logs", retention=log_retention, removal_policy=RemovalPolicy.DESTROY)
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"Execution role of the {name} function",
        )
        self.log_group.grant_write(self.role)
        self.function = lambda_.Function(
            self,
            "Function",
            runtime=lambda_.Runtime.PYTHON_3_12,
            architecture=lambda_.Architecture.X86_64,  # the layer's wheels are manylinux x86_64
            handler="handler.lambda_handler",
            code=lambda_.Code.from_asset(str(FUNCTIONS_DIR / name), exclude=["__pycache__", "*.pyc"]),
            layers=[layer],
            role=self.role,
            memory_size=memory_mb,
            timeout=timeout,
            tracing=lambda_.Tracing.ACTIVE,
            logging_format=lambda_.LoggingFormat.JSON,
            log_group=self.log_group,
            environment={"POWERTOOLS_SERVICE_NAME": name, **environment},
        )
        # Tracing needs X-Ray writes; granted explicitly since the role is our own.
        self.role.add_to_policy(
            iam.PolicyStatement(actions=["xray:PutTraceSegments", "xray:PutTelemetryRecords"], resources=["*"])
        )
