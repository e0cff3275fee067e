"""Alarms and one dashboard per stage: what an operator of the platform is woken for.

Every alarm notifies one SNS topic, TLS only, which the stage's `alarm_subscription` (an email
address or an HTTPS endpoint) subscribes to. The topic is encrypted with its own KMS key, whose
policy lets CloudWatch use it: alarms cannot publish to a topic under the AWS managed
`alias/aws/sns` key, whose policy no one can change. What is watched, and why each threshold:

- the API: a 5xx rate over 1 % (of at least a trickle of requests), p95 latency over 10 s (API
  Gateway cuts a request at 29 s; answers here take well under a second);
- every function: any unhandled error, any throttle, p95 duration over 80 % of its timeout in 2
  of 3 minutes (the authorizer refuses an unknown key by raising `Unauthorized`, which Lambda
  counts as an error: its alarm subtracts the refusals it counts, `KeysRefused`, so a wrong key
  wakes no one);
- every failure queue: any message (an event that failed all its retries);
- a release (infra/constructs/releases.py) is rolled back when one of its function's release alarms
  goes off while CodeDeploy shifts traffic: errors and p95 duration of the NEW version (Lambda's
  `ExecutedVersion` under the `live` alias: the old version's errors roll back no good release),
  throttles of the alias (concurrency is the function's, not a version's), and for an API function
  its new version's 5xx answers (`Answered5xx`, which the resolver counts: the function returns its
  failures as 500, so Lambda's errors never see them; this one pages no one, `Api5xxRate` does).
  In 1-minute periods, so each fits the shortest canary (5 minutes). Not its failure queue's, which
  counts messages that may predate the release (a backlog awaiting a redrive would block every
  release of the function that fixes it). A model update of the CLIP endpoint, on its 5xx or
  p95-latency alarm during its baking period (infra/constructs/clip_endpoint.py);
- the migration: any failed execution, any failed batch (the Map tolerates a few, reported by
  its Verify step as the `BatchesFailed` metric), and bulk writes the domain rejected (429) in
  three 5-minute periods running (`BulkRejected`: it is asked for more than it takes);
- the CLIP endpoint: p95 model latency over 1 s in 2 of 3 minutes (a batch takes tens of ms on
  the GPU), any 5xx, saturation for 15 minutes (GPU or CPUs over 90 %, or the serverless concurrency 90 % used: its
  scaling is at its maximum);
- the image-edit rate limiter: a run waiting over 5 minutes in all for tokens (the provider's
  quota is too low for the load).
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import ArnFormat, Aws, Duration, RemovalPolicy, Stack
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from functions.routes import ROUTES
from functions.specs import RELEASE_ALIAS
from infra.config import DeploymentConfig
from infra.constructs.clip_endpoint import INSTANCE_VCPUS, VARIANT, ClipEndpoint
from infra.constructs.service_function import ServiceFunction

NAMESPACE = "ListingVision"  # the functions' own metrics (Powertools, dimension `service`)
FIVE_MINUTES = Duration.minutes(5)
# The release alarms' period: evaluated over at most RELEASE_PERIODS of it, they fit the shortest
# canary (5 minutes) and the endpoint's baking period (clip_endpoint.BAKE_S).
ONE_MINUTE = Duration.minutes(1)
RELEASE_PERIODS = 3
API_FUNCTIONS = frozenset(route.function for route in ROUTES)


@dataclass(frozen=True)
class Watched:
    config: DeploymentConfig
    functions: dict[str, ServiceFunction]
    api: apigw.RestApi
    state_machine: sfn.StateMachine
    endpoint: ClipEndpoint


class Monitoring(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, watched: Watched) -> None:
        super().__init__(scope, construct_id)
        config = watched.config
        self.prefix = config.name("alarms")
        self.topic = self._topic(config)
        self.alarms: dict[str, cloudwatch.Alarm] = {}
        self._api(watched.api, config.stage)
        for name, function in watched.functions.items():
            self._function(name, function)
        self._migration(watched.state_machine)
        self._endpoint(watched.endpoint)
        self.alarm(
            "RateLimitWaits",
            custom("RateLimitWaitSeconds", "generate-worker", "Maximum", Duration.minutes(15)),
            300,
            "A generation run waited over 5 minutes for image-edit tokens: the provider's quota is too low.",
        )
        self.alarm(
            "CatalogueRepairs",
            custom("ReconcileFindings", "dedupe-reconcile", "Sum", Duration.hours(1)),
            1,
            "The hourly reconcile found the catalogue's photos, records and vectors disagreeing (and repaired "
            "what it could; a quarantined conflict needs a person): see its log.",
        )
        self.dashboard = self._dashboard(watched)

    def _topic(self, config: DeploymentConfig) -> sns.Topic:
        """The alarms' topic, under a key CloudWatch may use, open to this stage's alarms only."""
        cloudwatch_service = iam.ServicePrincipal("cloudwatch.amazonaws.com")
        key = kms.Key(
            self,
            "AlarmsKey",
            description=f"Encrypts {self.prefix}, the SNS topic of the stage's alarms",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.RETAIN if config.removal_retains_data else RemovalPolicy.DESTROY,
        )
        # CloudWatch encrypts what it publishes to the topic with this key (AWS's documented key policy).
        key.add_to_resource_policy(
            iam.PolicyStatement(
                principals=[cloudwatch_service], actions=["kms:Decrypt", "kms:GenerateDataKey*"], resources=["*"]
            )
        )
        topic = sns.Topic(self, "Alarms", topic_name=self.prefix, master_key=key, enforce_ssl=True)
        # enforce_ssl gives the topic a policy, which replaces SNS's default one: allow the alarms again.
        topic.add_to_resource_policy(
            iam.PolicyStatement(
                principals=[cloudwatch_service],
                actions=["sns:Publish"],
                resources=[topic.topic_arn],
                conditions={
                    "ArnLike": {
                        "aws:SourceArn": Stack.of(self).format_arn(
                            service="cloudwatch",
                            resource="alarm",
                            resource_name=f"{self.prefix}-*",
                            arn_format=ArnFormat.COLON_RESOURCE_NAME,
                        )
                    },
                    "StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID},
                },
            )
        )
        endpoint = config.alarm_subscription
        topic.add_subscription(
            subscriptions.UrlSubscription(endpoint)
            if endpoint.startswith("https://")
            else subscriptions.EmailSubscription(endpoint)
        )
        return topic

    def alarm(
        self,
        name: str,
        metric: cloudwatch.IMetric,
        threshold: float,
        description: str,
        periods: int = 1,
        *,
        datapoints: int | None = None,
        notify: bool = True,
    ) -> cloudwatch.Alarm:
        """An alarm on `datapoints` (all, unset) of the last `periods` periods; `notify=False` for one
        only a release is rolled back on (another alarm pages for the same trouble)."""
        alarm = cloudwatch.Alarm(
            self,
            name,
            alarm_name=f"{self.prefix}-{name}",
            alarm_description=description,
            metric=metric,
            threshold=threshold,
            evaluation_periods=periods,
            datapoints_to_alarm=datapoints,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        if notify:
            alarm.add_alarm_action(actions.SnsAction(self.topic))
        self.alarms[name] = alarm
        return alarm

    def _api(self, api: apigw.RestApi, stage: str) -> None:
        requests = api.metric_count(period=FIVE_MINUTES, statistic="Sum")
        errors = api.metric_server_error(period=FIVE_MINUTES, statistic="Sum")
        rate = cloudwatch.MathExpression(
            expression="IF(requests >= 20, 100 * errors / requests, 0)",
            using_metrics={"errors": errors, "requests": requests},
            label="5xx, % of requests",
            period=FIVE_MINUTES,
        )
        self.alarm("Api5xxRate", rate, 1, "Over 1 % of API requests answered 5xx (of at least 20 in 5 minutes).", 2)
        latency = api.metric_latency(period=FIVE_MINUTES, statistic="p95")
        self.alarm("ApiLatencyP95", latency, 10_000, "API p95 latency over 10 s (API Gateway cuts at 29 s).", 2)

    def _function(self, name: str, function: ServiceFunction) -> None:
        fn = function.function
        prefix = "".join(part.capitalize() for part in name.split("-"))
        # What a release is judged by: the alias's invocations that ran the version it is moving to
        # (the template's current version: CloudFormation updates these alarms before CodeDeploy starts)
        version = function.alias.version.version
        alias = {"FunctionName": fn.function_name, "Resource": f"{fn.function_name}:{RELEASE_ALIAS}"}
        new = {**alias, "ExecutedVersion": version}

        def measured(metric_name: str, dimensions: dict[str, str], statistic: str) -> cloudwatch.Metric:
            return cloudwatch.Metric(
                namespace="AWS/Lambda",
                metric_name=metric_name,
                dimensions_map=dimensions,
                statistic=statistic,
                period=ONE_MINUTE,
            )

        errors: cloudwatch.IMetric = measured("Errors", new, "Sum")
        refusals = function.spec.refusals_metric
        if refusals:  # requests it refuses by raising: Lambda counts each as an error, but none is one
            errors = cloudwatch.MathExpression(
                expression="errors - FILL(refusals, 0)",
                using_metrics={"errors": errors, "refusals": per_version(refusals, name, version)},
                label=f"errors other than {refusals}",
                period=ONE_MINUTE,
            )
        released = [
            self.alarm(f"{prefix}Errors", errors, 1, f"{name}: an unhandled error (its live version)."),
            self.alarm(f"{prefix}Throttles", measured("Throttles", alias, "Sum"), 1, f"{name}: throttled."),
            self.alarm(
                f"{prefix}DurationP95",
                measured("Duration", new, "p95"),
                0.8 * function.spec.timeout_s * 1000,
                f"{name}: p95 duration over 80 % of its {function.spec.timeout_s} s timeout (its live version).",
                RELEASE_PERIODS,
                datapoints=2,
            ),
        ]
        if name in API_FUNCTIONS:  # it answers its failures as 5xx, which Lambda does not count as errors
            released.append(
                self.alarm(
                    f"{prefix}Answered5xx",
                    per_version("Answered5xx", name, version),
                    1,
                    f"{name}: its new version answered 5xx (rolls a release back; Api5xxRate pages).",
                    notify=False,
                )
            )
        for alarm in released:  # any of them during a release rolls it back
            function.release.add_alarm(alarm)
            function.alias.node.add_dependency(alarm)  # watching the new version before traffic moves
        if function.failure_queue is not None:
            depth = function.failure_queue.metric_approximate_number_of_messages_visible(
                period=FIVE_MINUTES, statistic="Maximum"
            )
            self.alarm(f"{prefix}FailureQueue", depth, 1, f"{name}: events failed every retry; see its failure queue.")

    def _migration(self, machine: sfn.StateMachine) -> None:
        self.alarm(
            "MigrationFailed",
            machine.metric_failed(period=FIVE_MINUTES, statistic="Sum"),
            1,
            "A visual-features migration execution failed.",
        )
        self.alarm(
            "MigrationBatchesFailed",
            custom("BatchesFailed", "migration", "Sum", FIVE_MINUTES),
            1,
            "Migration batches failed every retry (the run carried on; Verify lists them).",
        )
        # A few rejections are the backoff working; rejections in three 5-minute periods running mean
        # the Map asks more of the domain than it takes (infra/migration_sizing.py): lower the concurrency.
        self.alarm(
            "MigrationBulkRejected",
            custom("BulkRejected", "migration", "Sum", FIVE_MINUTES),
            1,
            "OpenSearch kept rejecting the migration's bulk writes (429): lower migration_max_concurrency.",
            3,
        )

    def _endpoint(self, endpoint: ClipEndpoint) -> None:
        dimensions = {"EndpointName": endpoint.endpoint_name, "VariantName": VARIANT}

        def metric(namespace: str, name: str, statistic: str, period: Duration = ONE_MINUTE) -> cloudwatch.Metric:
            return cloudwatch.Metric(
                namespace=namespace, metric_name=name, dimensions_map=dimensions, statistic=statistic, period=period
            )

        slow = self.alarm(
            "EndpointLatencyP95",
            metric("AWS/SageMaker", "ModelLatency", "p95"),
            1_000_000,  # microseconds
            "CLIP endpoint p95 model latency over 1 s (2 of 3 minutes).",
            RELEASE_PERIODS,
            datapoints=2,
        )
        failing = self.alarm(
            "EndpointErrors", metric("AWS/SageMaker", "Invocation5XXErrors", "Sum"), 1, "CLIP endpoint 5xx."
        )
        endpoint.roll_back_on([failing, slow])  # a model update that errs or slows is rolled back
        # Saturation, in the mode's own terms: the GPU; the CPUs (CPUUtilization sums its cores, 100 % each);
        # or the share of the serverless concurrency in use (beyond it, invocations are throttled).
        if endpoint.options.on_gpu:
            saturated = ("Gpu", "/aws/sagemaker/Endpoints", "GPUUtilization", 90.0, "GPU over 90 %")
        elif endpoint.options.serverless:
            saturated = (
                "Concurrency",
                "AWS/SageMaker",
                "ServerlessConcurrentExecutionsUtilization",
                0.9,
                "serverless concurrency over 90 %",
            )
        else:
            vcpus = INSTANCE_VCPUS.get(endpoint.options.instance_type or "", 1)
            saturated = ("Cpu", "/aws/sagemaker/Endpoints", "CPUUtilization", 90.0 * vcpus, "CPUs over 90 %")
        resource, namespace, name, threshold, what = saturated
        self.saturation = f"Endpoint{resource}Saturated"
        raise_it = "clip_serverless_max_concurrency" if endpoint.options.serverless else "clip_max_instances"
        self.alarm(
            self.saturation,
            metric(namespace, name, "Average", FIVE_MINUTES),
            threshold,
            f"CLIP endpoint {what} for 15 minutes: its scaling is at its maximum (raise {raise_it}).",
            3,
        )

    def _dashboard(self, watched: Watched) -> cloudwatch.Dashboard:
        dashboard = cloudwatch.Dashboard(self, "Dashboard", dashboard_name=watched.config.name("operations"))
        api = watched.api
        dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="API requests and errors",
                left=[api.metric_count(), api.metric_client_error(), api.metric_server_error()],
                width=12,
            ),
            cloudwatch.GraphWidget(
                title="API latency (p50, p95)",
                left=[api.metric_latency(statistic="p50"), api.metric_latency(statistic="p95")],
                width=12,
            ),
        )
        functions = watched.functions.values()
        dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Function errors", left=[f.function.metric_errors() for f in functions], width=8
            ),
            cloudwatch.GraphWidget(
                title="Function p95 duration",
                left=[f.function.metric_duration(statistic="p95") for f in functions],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="Failure queues",
                left=[
                    f.failure_queue.metric_approximate_number_of_messages_visible()
                    for f in functions
                    if f.failure_queue
                ],
                width=8,
            ),
        )
        dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Migration",
                left=[watched.state_machine.metric_succeeded(), watched.state_machine.metric_failed()],
                right=[custom("BatchesFailed", "migration", "Sum", FIVE_MINUTES)],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="CLIP endpoint",
                left=[self.alarms["EndpointLatencyP95"].metric],
                right=[self.alarms[self.saturation].metric],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="Generation",
                left=[custom("ImagesRendered", "generate-worker", "Sum", FIVE_MINUTES)],
                right=[custom("RateLimitWaitSeconds", "generate-worker", "Maximum", FIVE_MINUTES)],
                width=8,
            ),
        )
        dashboard.add_widgets(cloudwatch.AlarmStatusWidget(alarms=list(self.alarms.values()), width=24))
        return dashboard


def custom(name: str, service: str, statistic: str, period: Duration) -> cloudwatch.Metric:
    """A metric the functions emit (Powertools: namespace ListingVision, dimension service)."""
    return cloudwatch.Metric(
        namespace=NAMESPACE, metric_name=name, dimensions_map={"service": service}, statistic=statistic, period=period
    )


def per_version(name: str, service: str, version: str) -> cloudwatch.Metric:
    """A count a function emits per version (listing_vision.observability.count_per_version)."""
    return cloudwatch.Metric(
        namespace=NAMESPACE,
        metric_name=name,
        dimensions_map={"service": service, "ExecutedVersion": version},
        statistic="Sum",
        period=ONE_MINUTE,
    )
