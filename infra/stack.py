"""The platform stack: storage, the CLIP endpoint, functions, API; one construct per capability."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_notifications as s3n
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from functions.routes import FUNCTIONS
from infra.constructs.api import RestApi
from infra.constructs.clip_endpoint import ClipEndpoint, EndpointOptions
from infra.constructs.migration import MigrationOptions, VisualFeaturesMigration
from infra.constructs.service_function import API_TIMEOUT, ServiceFunction
from infra.constructs.storage import Storage


@dataclass(frozen=True)
class MilvusConnection:
    """Where the functions find Milvus (a Milvus server or Zilliz Cloud; not provisioned here)."""

    uri: str = "https://milvus.example.internal:19530"
    collection: str = "image_embeddings_ip"
    token_secret_name: str | None = None  # Secrets Manager secret holding the token


@dataclass(frozen=True)
class OpenSearchDomain:
    """The existing OpenSearch Service domain holding the listings index (not provisioned here)."""

    endpoint: str = "https://search-hearth.us-east-1.es.amazonaws.com"
    domain_arn: str = "arn:aws:es:us-east-1:123456789012:domain/hearth"


@dataclass(frozen=True)
class ProviderSecrets:
    """Secrets Manager secret names of the model providers' keys (unset: that provider is off)."""

    openai_key_secret: str | None = None
    anthropic_key_secret: str | None = None


class ListingVisionStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        layer_code: lambda_.Code,
        stage: str,
        clip_model_tarball: str,
        clip_options: EndpointOptions | None = None,
        milvus: MilvusConnection | None = None,
        opensearch: OpenSearchDomain | None = None,
        providers: ProviderSecrets | None = None,
        migration_options: MigrationOptions | None = None,
        **kwargs: object,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)  # type: ignore[arg-type]
        removal = RemovalPolicy.RETAIN if stage == "prod" else RemovalPolicy.DESTROY
        milvus = milvus or MilvusConnection()
        opensearch = opensearch or OpenSearchDomain()
        providers = providers or ProviderSecrets()
        self.storage = Storage(self, "Storage", removal_policy=removal)
        self.layer = lambda_.LayerVersion(
            self,
            "CommonLayer",
            code=layer_code,
            compatible_runtimes=[lambda_.Runtime.PYTHON_3_12],
            compatible_architectures=[lambda_.Architecture.X86_64],
            description="listing_vision and its pinned runtime dependencies",
        )
        self.clip = ClipEndpoint(
            self, "Clip", model_tarball=clip_model_tarball, options=clip_options or EndpointOptions()
        )
        milvus_token_secret = (
            secretsmanager.Secret.from_secret_name_v2(self, "MilvusToken", milvus.token_secret_name)
            if milvus.token_secret_name
            else None
        )
        environment = {
            **self.storage.environment(),
            "SAGEMAKER_ENDPOINT_NAME": self.clip.endpoint_name,
            "MILVUS_URI": milvus.uri,
            "MILVUS_COLLECTION": milvus.collection,
            "OPENSEARCH_URL": opensearch.endpoint,
            "OPENSEARCH_AUTH": "sigv4",
            **({"MILVUS_TOKEN_SECRET": milvus.token_secret_name} if milvus.token_secret_name else {}),
            **({"OPENAI_API_KEY_SECRET": providers.openai_key_secret} if providers.openai_key_secret else {}),
            **({"ANTHROPIC_API_KEY_SECRET": providers.anthropic_key_secret} if providers.anthropic_key_secret else {}),
        }
        # regenerate runs migration batches and ingest: Lambda's 15 minutes; API functions keep 29 s.
        long_running = {"regenerate": Duration.minutes(15)}
        self.functions = {
            name: ServiceFunction(
                self,
                f"{name.capitalize()}Function",
                name=name,
                layer=self.layer,
                environment=environment,
                timeout=long_running.get(name, API_TIMEOUT),
            )
            for name in FUNCTIONS
        }
        # Generation runs in a worker (the same code; image edits take minutes, API Gateway 29 s):
        # the API function invokes it asynchronously.
        self.generate_worker = ServiceFunction(
            self,
            "GenerateWorker",
            name="generate",
            layer=self.layer,
            environment=environment,
            timeout=Duration.minutes(15),
        )
        self.generate_worker.function.grant_invoke(self.functions["generate"].role)
        self.functions["generate"].function.add_environment(
            "GENERATE_WORKER_FUNCTION", self.generate_worker.function.function_name
        )
        storefront = [self.storage.buckets["alya_bucket"], self.storage.buckets["blysk_bucket"]]
        for name in ("dedupe", "caption"):
            for bucket in storefront:
                bucket.grant_read_write(self.functions[name].role)
            self.storage.tables["idempotency_table"].grant_read_write_data(self.functions[name].role)
            self.storage.tables["catalogue_table"].grant_read_write_data(self.functions[name].role)
            if milvus_token_secret is not None:
                milvus_token_secret.grant_read(self.functions[name].role)
        # Listing documents dropped into the uploads bucket are ingested by the regenerate function.
        uploads = self.storage.buckets["uploads_bucket"]
        uploads.grant_read_write(self.functions["regenerate"].role)
        uploads.add_event_notification(
            s3.EventType.OBJECT_CREATED,
            s3n.LambdaDestination(self.functions["regenerate"].function),
            s3.NotificationKeyFilter(suffix=".json"),
        )
        # Provider keys live in Secrets Manager; each function reads only the ones it uses.
        for secret_name, users in (
            (providers.openai_key_secret, ("caption", "generate_worker")),
            (providers.anthropic_key_secret, ("caption", "regenerate")),
        ):
            if secret_name:
                secret = secretsmanager.Secret.from_secret_name_v2(
                    self, f"Secret{secret_name.replace('/', '')}", secret_name
                )
                for user in users:
                    role = self.generate_worker.role if user == "generate_worker" else self.functions[user].role
                    secret.grant_read(role)
        # Images that reach a storefront bucket without the API (console, bulk, presigned) are indexed.
        for bucket in storefront:
            bucket.add_event_notification(
                s3.EventType.OBJECT_CREATED, s3n.LambdaDestination(self.functions["dedupe"].function)
            )
        for generate in (self.functions["generate"].role, self.generate_worker.role):
            for bucket in storefront:
                bucket.grant_read_write(generate)
            self.storage.buckets["generated_bucket"].grant_read_write(generate)
            self.storage.tables["jobs_table"].grant_read_write_data(generate)
        # Embeddings: the functions that embed images may invoke the endpoint, and nothing else may.
        for name in ("dedupe", "caption", "regenerate"):
            self.clip.grant_invoke(self.functions[name].role)
        regenerate = self.functions["regenerate"].role
        self.storage.tables["vision_cache_table"].grant_read_write_data(regenerate)
        self.storage.buckets["artifacts_bucket"].grant_read_write(regenerate)
        # The listings index lives in an existing Amazon OpenSearch Service domain (context
        # opensearch_endpoint / opensearch_domain_arn); the migration and ingest sign with SigV4.
        for name in ("regenerate",):
            self.functions[name].role.add_to_policy(
                iam.PolicyStatement(
                    actions=["es:ESHttpGet", "es:ESHttpHead", "es:ESHttpPost", "es:ESHttpPut"],
                    resources=[opensearch.domain_arn, f"{opensearch.domain_arn}/*"],
                )
            )
        self.migration = VisualFeaturesMigration(
            self,
            "Migration",
            function=self.functions["regenerate"].function,
            artifacts=self.storage.buckets["artifacts_bucket"],
            options=migration_options,
        )
        self.opensearch = opensearch
        self.api = RestApi(
            self,
            "Api",
            functions={name: fn.function for name, fn in self.functions.items()},
            stage=stage,
        )

    def nag_acknowledgements(self) -> dict[str, str]:
        """cdk-nag findings named after this stack's own resources, with why each is accepted."""

        def logical_id(construct: Construct) -> str:
            return str(self.resolve(self.get_logical_id(construct.node.default_child)))  # type: ignore[arg-type]

        machine = logical_id(self.migration.state_machine)
        function = logical_id(self.functions["regenerate"].function)
        worker = logical_id(self.generate_worker.function)
        artifacts = logical_id(self.storage.buckets["artifacts_bucket"])
        execution = (
            "arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:execution:"
            f'{{"Fn::Select":[6,{{"Fn::Split":[":",{{"Ref":"{machine}"}}]}}]}}'
        )
        invoke_worker = "The generate API function invokes any version of the generation worker (grantInvoke)."
        child_runs = "The distributed Map starts and reads its own child executions (CDK's grant)."
        return {
            f"AwsSolutions-IAM5[Resource::{self.opensearch.domain_arn}/*]": "Index-level paths of the one listings "
            "domain (es:ESHttp* on its documents); no other domain.",
            f"AwsSolutions-IAM5[Resource::<{function}.Arn>:*]": "The state machine invokes any version of the "
            "migration function (CDK's LambdaInvoke grant).",
            f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::<{artifacts}>/*]": "The state machine reads "
            "batch manifests and writes Map results under the artifacts bucket.",
            f"AwsSolutions-IAM5[Resource::{execution}:*]": child_runs,
            f"AwsSolutions-IAM5[Resource::{execution}/*:*]": child_runs,
            f"AwsSolutions-IAM5[Resource::<{worker}.Arn>:*]": invoke_worker,
            "AwsSolutions-SF1": "Logging is at ERROR without execution data: inputs and outputs carry listing "
            "content; results go to the artifacts bucket.",
        }
