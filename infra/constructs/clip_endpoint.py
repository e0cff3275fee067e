"""The GPU SageMaker endpoint serving the ONNX CLIP encoder, with invocation-based autoscaling.

Only functions given `grant_invoke` may call it; the endpoint's own role reads its model artefact,
pulls the inference image and writes logs and metrics.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import (
    Aws,
    Duration,
)
from aws_cdk import (
    aws_applicationautoscaling as autoscaling,
)
from aws_cdk import (
    aws_iam as iam,
)
from aws_cdk import (
    aws_s3_assets as s3_assets,
)
from aws_cdk import (
    aws_sagemaker as sagemaker,
)
from constructs import Construct

# The AWS Deep Learning Container for PyTorch inference (GPU): it carries the SageMaker inference
# toolkit that runs code/inference.py and installs code/requirements.txt (onnxruntime-gpu).
DEFAULT_IMAGE = (
    f"763104351884.dkr.ecr.{Aws.REGION}.amazonaws.com/pytorch-inference:2.6.0-gpu-py312-cu124-ubuntu22.04-sagemaker"
)
VARIANT = "AllTraffic"


@dataclass(frozen=True)
class EndpointOptions:
    instance_type: str = "ml.g5.xlarge"
    image_uri: str = DEFAULT_IMAGE
    min_instances: int = 1
    max_instances: int = 4
    invocations_per_instance_per_minute: int = 600  # target tracking; an embedding request is ~10 ms on a GPU
    fp16: bool = False


class ClipEndpoint(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, model_tarball: str, options: EndpointOptions) -> None:
        super().__init__(scope, construct_id)
        model_data = s3_assets.Asset(self, "ModelData", path=model_tarball)
        role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description="Execution role of the CLIP embedding endpoint",
        )
        model_data.grant_read(role)
        role.add_to_policy(
            iam.PolicyStatement(
                actions=[
                    "ecr:GetAuthorizationToken",
                    "ecr:BatchGetImage",
                    "ecr:GetDownloadUrlForLayer",
                    "ecr:BatchCheckLayerAvailability",
                ],
                resources=["*"],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=[
                    "logs:CreateLogGroup",
                    "logs:CreateLogStream",
                    "logs:PutLogEvents",
                    "logs:DescribeLogStreams",
                    "cloudwatch:PutMetricData",
                ],
                resources=["*"],
            )
        )
        model = sagemaker.CfnModel(
            self,
            "Model",
            execution_role_arn=role.role_arn,
            primary_container=sagemaker.CfnModel.ContainerDefinitionProperty(
                image=options.image_uri,
                model_data_url=model_data.s3_object_url,
                environment={
                    "SAGEMAKER_PROGRAM": "inference.py",
                    "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
                    "CLIP_FP16": "true" if options.fp16 else "false",
                },
            ),
        )
        model.node.add_dependency(role)
        config = sagemaker.CfnEndpointConfig(
            self,
            "Config",
            production_variants=[
                sagemaker.CfnEndpointConfig.ProductionVariantProperty(
                    variant_name=VARIANT,
                    model_name=model.attr_model_name,
                    instance_type=options.instance_type,
                    initial_instance_count=options.min_instances,
                    initial_variant_weight=1.0,
                )
            ],
        )
        self.endpoint = sagemaker.CfnEndpoint(self, "Endpoint", endpoint_config_name=config.attr_endpoint_config_name)
        self.endpoint_name = self.endpoint.attr_endpoint_name
        target = autoscaling.ScalableTarget(
            self,
            "Scaling",
            service_namespace=autoscaling.ServiceNamespace.SAGEMAKER,
            resource_id=f"endpoint/{self.endpoint_name}/variant/{VARIANT}",
            scalable_dimension="sagemaker:variant:DesiredInstanceCount",
            min_capacity=options.min_instances,
            max_capacity=options.max_instances,
        )
        target.node.add_dependency(self.endpoint)
        target.scale_to_track_metric(
            "Invocations",
            target_value=options.invocations_per_instance_per_minute,
            predefined_metric=autoscaling.PredefinedMetric.SAGEMAKER_VARIANT_INVOCATIONS_PER_INSTANCE,
            scale_in_cooldown=Duration.minutes(5),
            scale_out_cooldown=Duration.minutes(1),
        )

    def grant_invoke(self, grantee: iam.IGrantable) -> None:
        grantee.grant_principal.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["sagemaker:InvokeEndpoint"],
                resources=[
                    f"arn:{Aws.PARTITION}:sagemaker:{Aws.REGION}:{Aws.ACCOUNT_ID}:endpoint/{self.endpoint_name}"
                ],
            )
        )
