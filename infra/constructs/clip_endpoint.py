"""The GPU SageMaker endpoint serving the ONNX CLIP encoder, with invocation-based autoscaling.

Serving stack, chosen so its CUDA versions match: the AWS PyTorch 2.6 GPU inference container
(CUDA 12.4, cuDNN 9; its inference toolkit runs code/inference.py and installs
code/requirements.txt) with onnxruntime-gpu 1.26.0, the last PyPI build linking CUDA 12 and
cuDNN 9 (1.27 and later link CUDA 13 libraries, which this container lacks, so ONNX Runtime
would fall back to CPU). `model_fn` preloads the CUDA libraries, logs the execution providers it
got, and refuses to serve on CPU unless `CLIP_ALLOW_CPU` is set (context `clip_allow_cpu`, for
CPU instance types).

The endpoint also answers the duplicate check's model side: features of uploads and verdicts on
candidates (ORB + RANSAC + colour, OpenCV on the instance's CPUs; opencv-python-headless is in
code/requirements.txt). Lambda functions never load OpenCV, which does not fit beside their layers.

Only functions given `grant_invoke` may call it; the endpoint's own role reads its model
artefact (that one object), pulls its image (that one repository) and writes its own log group.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from aws_cdk import Aws, Duration, RemovalPolicy
from aws_cdk import aws_applicationautoscaling as autoscaling
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3_assets as s3_assets
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from infra.nag import acknowledge
from serving.clip.model_report import fp16_refusal

IMAGE_ACCOUNT = "763104351884"  # AWS Deep Learning Containers
DEFAULT_IMAGE = (
    f"{IMAGE_ACCOUNT}.dkr.ecr.{Aws.REGION}.amazonaws.com/pytorch-inference:2.6.0-gpu-py312-cu124-ubuntu22.04-sagemaker"
)
VARIANT = "AllTraffic"
# vCPUs of the instance types an embedding endpoint is likely to run on; the serving processes are
# sized from them (model_server_layout).
INSTANCE_VCPUS = {
    f"ml.{family}.{size}": vcpus
    for family in ("g4dn", "g5", "g6", "g6e", "c5", "c6i", "c7i", "m5", "m6i", "m7i")
    for size, vcpus in (
        ("large", 2),
        ("xlarge", 4),
        ("2xlarge", 8),
        ("4xlarge", 16),
        ("8xlarge", 32),
        ("12xlarge", 48),
        ("16xlarge", 64),
        ("24xlarge", 96),
    )
}
THREADS_PER_WORKER = 2


def model_server_layout(instance_type: str, workers: int | None = None) -> tuple[int, int]:
    """(model-server worker processes, host threads per worker) for an instance type.

    The host path (decoding, resizing, ORB features) runs on Python threads, and one process's
    GIL caps it at about 5 busy cores, so the endpoint runs several model-server workers (each its
    own process, ONNX Runtime session and GPU context) of THREADS_PER_WORKER threads each:
    measured on a 16-vCPU GPU host, 8 workers × 2 threads embedded 1,896 images/s against 443 for
    one worker × 16 threads, and on 4 vCPUs 2 × 2 beat 1 × 4 (README, Benchmarks)."""
    vcpus = INSTANCE_VCPUS.get(instance_type)
    if vcpus is None:
        return workers or 1, 0  # unknown size: one thread per vCPU in each worker
    chosen = workers or max(1, vcpus // THREADS_PER_WORKER)
    return chosen, max(1, vcpus // chosen)


@dataclass(frozen=True)
class EndpointOptions:
    name: str = "listing-vision-clip"
    instance_type: str = "ml.g5.xlarge"
    image_uri: str = DEFAULT_IMAGE
    min_instances: int = 1
    max_instances: int = 4
    invocations_per_instance_per_minute: int = 600  # target tracking; an embedding request is ~10 ms on a GPU
    fp16: bool = False
    allow_cpu: bool = False
    retain_logs: bool = False
    workers: int | None = None  # model-server worker processes; None: from the instance type's vCPUs


def repository_arn(image_uri: str) -> str:
    """The ECR repository of an image URI (`ACCOUNT.dkr.ecr.REGION.amazonaws.com/REPO:TAG`)."""
    match = re.match(r"^(?P<account>\d{12})\.dkr\.ecr\.(?P<region>.+?)\.amazonaws\.com/(?P<repo>[^:@]+)", image_uri)
    if not match:
        raise ValueError(f"{image_uri!r} is not an ECR image URI")
    return f"arn:{Aws.PARTITION}:ecr:{match['region']}:{match['account']}:repository/{match['repo']}"


class ClipEndpoint(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, model_tarball: str, options: EndpointOptions) -> None:
        super().__init__(scope, construct_id)
        if options.fp16 and (refusal := fp16_refusal(model_tarball)):
            raise ValueError(refusal)  # an fp16 endpoint must load a packaged model measured faster than fp32
        self.endpoint_name = options.name
        workers, threads = model_server_layout(options.instance_type, options.workers)
        model_data = s3_assets.Asset(self, "ModelData", path=model_tarball)
        self.log_group = logs.LogGroup(
            self,
            "Logs",
            log_group_name=f"/aws/sagemaker/Endpoints/{options.name}",
            retention=logs.RetentionDays.ONE_MONTH,
            removal_policy=RemovalPolicy.RETAIN if options.retain_logs else RemovalPolicy.DESTROY,
        )
        role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description="Execution role of the CLIP embedding endpoint",
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["s3:GetObject"], resources=[model_data.bucket.arn_for_objects(model_data.s3_object_key)]
            )
        )
        role.add_to_policy(iam.PolicyStatement(actions=["ecr:GetAuthorizationToken"], resources=["*"]))
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"],
                resources=[repository_arn(options.image_uri)],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                resources=[self.log_group.log_group_arn],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={"StringLike": {"cloudwatch:namespace": "/aws/sagemaker/*"}},
            )
        )
        acknowledge(
            role,
            "AwsSolutions-IAM5[Resource::*]",
            "ecr:GetAuthorizationToken and cloudwatch:PutMetricData accept no resource ARN (metrics are limited "
            "to SageMaker's namespaces by condition).",
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
                    "SAGEMAKER_MODEL_SERVER_WORKERS": str(workers),
                    "CLIP_HOST_THREADS": str(threads),
                    "CLIP_FP16": "true" if options.fp16 else "false",
                    "CLIP_ALLOW_CPU": "true" if options.allow_cpu else "false",
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
        self.endpoint = sagemaker.CfnEndpoint(
            self, "Endpoint", endpoint_name=options.name, endpoint_config_name=config.attr_endpoint_config_name
        )
        self.endpoint.node.add_dependency(self.log_group)
        target = autoscaling.ScalableTarget(
            self,
            "Scaling",
            service_namespace=autoscaling.ServiceNamespace.SAGEMAKER,
            resource_id=f"endpoint/{options.name}/variant/{VARIANT}",
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

    @property
    def endpoint_arn(self) -> str:
        return f"arn:{Aws.PARTITION}:sagemaker:{Aws.REGION}:{Aws.ACCOUNT_ID}:endpoint/{self.endpoint_name}"

    def grant_invoke(self, grantee: iam.IGrantable) -> None:
        grantee.grant_principal.add_to_principal_policy(
            iam.PolicyStatement(actions=["sagemaker:InvokeEndpoint"], resources=[self.endpoint_arn])
        )
