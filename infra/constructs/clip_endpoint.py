"""The SageMaker endpoint serving the ONNX CLIP encoder, in the stage's endpoint mode.

Modes (context `endpoint_mode`, README "Endpoint modes and cost"):
- `realtime_gpu`: instances (ml.g5.xlarge) with target-tracking autoscaling on invocations per
  instance, at least one always on. Production, and the mode backfills are fastest on.
- `realtime_cpu`: the same on CPU instances (ml.c6i.xlarge), ONNX Runtime's CPU provider, on the
  CPU inference container; a tenth of the GPU's idle cost, ample for a catalogue's upload rate.
  The CPU modes serve a package built for the `cpu` target (the CPU `onnxruntime` wheel), the GPU
  mode one built for `gpu` (onnxruntime-gpu); the synth refuses a package of the other target
  (serving/clip/targets.py), naming the `make clip-model CLIP_TARGET=...` to run.
- `serverless_cpu`: SageMaker serverless inference (SERVERLESS_MEMORY_MB, at most
  `clip_serverless_max_concurrency` invocations at once), nothing billed while idle; cold starts
  of seconds after idle, requests under 4 MB (the invoking functions are told SERVERLESS_PAYLOAD_BYTES),
  and no network isolation or VPC (the synth refuses them).

Serving stack, chosen so its CUDA versions match: the AWS PyTorch 2.6 GPU inference container
(CUDA 12.4, cuDNN 9; its inference toolkit runs code/inference.py and installs
code/requirements.txt, here the hash-pinned wheels packed in the model: serving/clip/wheels.py) with
onnxruntime-gpu 1.26.0, the last PyPI build linking CUDA 12 and
cuDNN 9 (1.27 and later link CUDA 13 libraries, which this container lacks, so ONNX Runtime
would fall back to CPU). `model_fn` preloads the CUDA libraries, logs the execution providers it
got, and refuses to serve on CPU unless `CLIP_ALLOW_CPU` is set (context `clip_allow_cpu`, for
CPU instance types).

The endpoint also answers the duplicate check's model side: features of uploads and verdicts on
candidates (ORB + RANSAC + colour, OpenCV on the instance's CPUs; opencv-python-headless is in
code/requirements.txt). Lambda functions never load OpenCV, which does not fit beside their layers.

A model change (a new model.tar.gz, image or setting makes a new model and endpoint configuration)
is rolled out by SageMaker's deployment guardrails (`roll_back_on`, wired by Monitoring): blue/green,
the new fleet taking all traffic at once and baking for BAKE_S while the old one stays up, and rolled
back to the old fleet if the endpoint's error or latency alarm goes off meanwhile (or the update
fails). All at once in every mode: guardrails exclude serverless endpoints only from rolling updates,
and a canary step needs a fleet of two instances or more to be a fraction of it.

Only functions given `grant_invoke` may call it; the endpoint's own role reads its model
artefact (that one object), pulls its image (that one repository) and writes its own log group.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from aws_cdk import Aws, Duration, RemovalPolicy
from aws_cdk import aws_applicationautoscaling as autoscaling
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3_assets as s3_assets
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from infra.config import DeploymentConfig, is_gpu_instance
from infra.nag import acknowledge
from serving.clip.model_report import fp16_refusal
from serving.clip.targets import target_refusal

IMAGE_ACCOUNT = "763104351884"  # AWS Deep Learning Containers
DEFAULT_IMAGE = (
    f"{IMAGE_ACCOUNT}.dkr.ecr.{Aws.REGION}.amazonaws.com/pytorch-inference:2.6.0-gpu-py312-cu124-ubuntu22.04-sagemaker"
)
CPU_IMAGE = (
    f"{IMAGE_ACCOUNT}.dkr.ecr.{Aws.REGION}.amazonaws.com/pytorch-inference:2.6.0-cpu-py312-ubuntu22.04-sagemaker"
)
VARIANT = "AllTraffic"
SERVERLESS_MEMORY_MB = 6144  # the most serverless inference offers; its vCPUs grow with memory
# Serverless inference caps a request at 4 MB (real-time: 6 MB); the functions batch under this.
SERVERLESS_PAYLOAD_BYTES = 3_500_000
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
GPU_THREADS_PER_WORKER = 2
CPU_THREADS_PER_WORKER = 1
SERVERLESS_LAYOUT = (2, 2)  # (workers, threads each) on serverless_cpu's about 4 vCPUs


def model_server_layout(instance_type: str, workers: int | None = None) -> tuple[int, int]:
    """(model-server worker processes, host threads per worker) for an instance type.

    The host path (decoding, resizing, ORB features) runs on Python threads, and one process's
    GIL caps it at about 5 busy cores, so the endpoint runs several model-server workers (each its
    own process, ONNX Runtime session and GPU context). On a GPU instance each has
    GPU_THREADS_PER_WORKER threads: measured on a 16-vCPU GPU host, 8 workers × 2 threads embedded
    1,896 images/s against 443 for one worker × 16 threads, and on 4 vCPUs 2 × 2 beat 1 × 4 (README,
    Benchmarks). On a CPU instance the model shares the cores with the host path, and one worker per
    vCPU with one thread beat one per 2 vCPUs with two (`make bench BENCH_ARGS=clip_layout`)."""
    vcpus = INSTANCE_VCPUS.get(instance_type)
    if vcpus is None:
        return workers or 1, 0  # unknown size: one thread per vCPU in each worker
    per_worker = GPU_THREADS_PER_WORKER if is_gpu_instance(instance_type) else CPU_THREADS_PER_WORKER
    chosen = workers or max(1, vcpus // per_worker)
    return chosen, max(1, vcpus // chosen)


@dataclass(frozen=True)
class EndpointOptions:
    name: str = "listing-vision-clip"
    mode: str = "realtime_gpu"  # realtime_gpu, realtime_cpu or serverless_cpu (module docstring)
    instance_type: str | None = "ml.g5.xlarge"  # None with serverless_cpu
    image_uri: str = DEFAULT_IMAGE
    min_instances: int = 1
    max_instances: int = 4
    invocations_per_instance_per_minute: int = 600  # target tracking; an embedding request is ~10 ms on a GPU
    serverless_memory_mb: int = SERVERLESS_MEMORY_MB
    serverless_max_concurrency: int = 5
    fp16: bool = False
    allow_cpu: bool = False
    network_isolation: bool = False
    retain_logs: bool = False
    workers: int | None = None  # model-server worker processes; None: from the instance type's vCPUs

    @property
    def serverless(self) -> bool:
        return self.mode == "serverless_cpu"

    @property
    def on_gpu(self) -> bool:
        return self.mode == "realtime_gpu"

    @property
    def max_payload_bytes(self) -> int | None:
        """The request size the invoking functions must stay under, where smaller than their default."""
        return SERVERLESS_PAYLOAD_BYTES if self.serverless else None

    def refusal(self) -> str | None:
        """Why these options cannot make a working endpoint, or None."""
        if self.serverless:
            if self.network_isolation:
                return "endpoint_mode=serverless_cpu: serverless inference does not support network isolation."
            if self.instance_type:
                return f"endpoint_mode=serverless_cpu has no instances, but instance_type={self.instance_type}."
        elif not self.instance_type:
            return f"endpoint_mode={self.mode} needs an instance type."
        if self.fp16 and not self.on_gpu:
            return f"clip_fp16 serves on a GPU; endpoint_mode={self.mode} runs on CPU."
        return None


def endpoint_options(config: DeploymentConfig) -> EndpointOptions:
    """The endpoint a stage's context declares (endpoint_mode and the clip_* keys)."""
    cpu = config.endpoint_mode != "realtime_gpu"
    return EndpointOptions(
        name=config.name("clip"),
        mode=config.endpoint_mode,
        instance_type=config.endpoint_instance_type,
        image_uri=config.clip_image_uri or (CPU_IMAGE if cpu else DEFAULT_IMAGE),
        max_instances=config.clip_max_instances,
        serverless_max_concurrency=config.clip_serverless_max_concurrency,
        fp16=config.clip_fp16,
        allow_cpu=cpu or config.clip_allow_cpu,
        # The container installs its wheels from the model package (serving/clip/wheels.py) and calls
        # nothing outside: isolated wherever the mode allows (serverless inference does not)
        network_isolation=config.endpoint_mode != "serverless_cpu",
        retain_logs=config.removal_retains_data,
        workers=config.clip_workers,
    )


def repository_arn(image_uri: str) -> str:
    """The ECR repository of an image URI (`ACCOUNT.dkr.ecr.REGION.amazonaws.com/REPO:TAG`)."""
    match = re.match(r"^(?P<account>\d{12})\.dkr\.ecr\.(?P<region>.+?)\.amazonaws\.com/(?P<repo>[^:@]+)", image_uri)
    if not match:
        raise ValueError(f"{image_uri!r} is not an ECR image URI")
    return f"arn:{Aws.PARTITION}:ecr:{match['region']}:{match['account']}:repository/{match['repo']}"


# The baking period of a model update (WaitIntervalInSeconds: SageMaker watches the rollback alarms
# this long after the shift): the new fleet serves everything, the old one stays up, and only then
# goes. The endpoint's alarms decide within 3 one-minute periods (monitoring.RELEASE_PERIODS).
BAKE_S = 600
# Creating the new fleet (a GPU instance and the image pull) plus the baking period, with room to spare
UPDATE_TIMEOUT_S = 3600


class ClipEndpoint(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, model_tarball: str, options: EndpointOptions) -> None:
        super().__init__(scope, construct_id)
        if refusal := options.refusal():
            raise ValueError(refusal)
        self.options = options
        if refusal := target_refusal(model_tarball, options.mode):
            raise ValueError(refusal)  # the package's ONNX Runtime is the other mode's (serving/clip/targets.py)
        if options.fp16 and (refusal := fp16_refusal(model_tarball)):
            raise ValueError(refusal)  # an fp16 endpoint must load a packaged model measured faster than fp32
        self.endpoint_name = options.name
        # serverless: 6 GB gets about 4 vCPUs (not published), kept at the layout it has run since the
        # mode was added (2 × 2), because how many requests one serverless container serves at once is
        # not published either: one worker per vCPU helps only when several arrive together
        workers, threads = (
            model_server_layout(options.instance_type, options.workers) if options.instance_type else SERVERLESS_LAYOUT
        )
        model_data = s3_assets.Asset(self, "ModelData", path=model_tarball)
        self.log_group = logs.LogGroup(
            self,
            "Logs",
            log_group_name=f"/aws/sagemaker/Endpoints/{options.name}",
            retention=logs.RetentionDays.ONE_MONTH,
            removal_policy=RemovalPolicy.RETAIN if options.retain_logs else RemovalPolicy.DESTROY,
        )
        self.role = role = iam.Role(
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
        if options.network_isolation:
            model.enable_network_isolation = True
        model.node.add_dependency(role)
        if options.serverless:
            variant = sagemaker.CfnEndpointConfig.ProductionVariantProperty(
                variant_name=VARIANT,
                model_name=model.attr_model_name,
                serverless_config=sagemaker.CfnEndpointConfig.ServerlessConfigProperty(
                    memory_size_in_mb=options.serverless_memory_mb,
                    max_concurrency=options.serverless_max_concurrency,
                ),
            )
        else:
            variant = sagemaker.CfnEndpointConfig.ProductionVariantProperty(
                variant_name=VARIANT,
                model_name=model.attr_model_name,
                instance_type=options.instance_type,
                initial_instance_count=options.min_instances,
                initial_variant_weight=1.0,
            )
        config = sagemaker.CfnEndpointConfig(self, "Config", production_variants=[variant])
        self.endpoint = sagemaker.CfnEndpoint(
            self, "Endpoint", endpoint_name=options.name, endpoint_config_name=config.attr_endpoint_config_name
        )
        self.endpoint.node.add_dependency(self.log_group)
        if options.serverless:
            return  # serverless inference scales itself, to zero when idle
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

    def roll_back_on(self, alarms: Sequence[cloudwatch.IAlarm]) -> None:
        """Blue/green model updates, baked for BAKE_S (the traffic routing's wait interval, during which
        SageMaker watches these alarms) and rolled back when one of them goes off (SageMaker reads them
        with the endpoint's role: DescribeAlarms on them); the old fleet goes when the bake passes."""
        self.endpoint.deployment_config = sagemaker.CfnEndpoint.DeploymentConfigProperty(
            blue_green_update_policy=sagemaker.CfnEndpoint.BlueGreenUpdatePolicyProperty(
                traffic_routing_configuration=sagemaker.CfnEndpoint.TrafficRoutingConfigProperty(
                    type="ALL_AT_ONCE", wait_interval_in_seconds=BAKE_S
                ),
                maximum_execution_timeout_in_seconds=UPDATE_TIMEOUT_S,
            ),
            auto_rollback_configuration=sagemaker.CfnEndpoint.AutoRollbackConfigProperty(
                alarms=[sagemaker.CfnEndpoint.AlarmProperty(alarm_name=alarm.alarm_name) for alarm in alarms]
            ),
        )
        self.role.add_to_policy(
            iam.PolicyStatement(actions=["cloudwatch:DescribeAlarms"], resources=[a.alarm_arn for a in alarms])
        )

    @property
    def endpoint_arn(self) -> str:
        return f"arn:{Aws.PARTITION}:sagemaker:{Aws.REGION}:{Aws.ACCOUNT_ID}:endpoint/{self.endpoint_name}"

    def grant_invoke(self, grantee: iam.IGrantable) -> None:
        grantee.grant_principal.add_to_principal_policy(
            iam.PolicyStatement(actions=["sagemaker:InvokeEndpoint"], resources=[self.endpoint_arn])
        )
