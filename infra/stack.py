"""The platform stack: storage, functions, API; one construct per capability."""

from __future__ import annotations

from aws_cdk import RemovalPolicy, Stack
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from functions.routes import FUNCTIONS
from infra.constructs.api import RestApi
from infra.constructs.clip_endpoint import ClipEndpoint, EndpointOptions
from infra.constructs.service_function import ServiceFunction
from infra.constructs.storage import Storage


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
        **kwargs: object,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)  # type: ignore[arg-type]
        removal = RemovalPolicy.RETAIN if stage == "prod" else RemovalPolicy.DESTROY
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
        environment = {**self.storage.environment(), "SAGEMAKER_ENDPOINT_NAME": self.clip.endpoint_name}
        self.functions = {
            name: ServiceFunction(
                self, f"{name.capitalize()}Function", name=name, layer=self.layer, environment=environment
            )
            for name in FUNCTIONS
        }
        storefront = [self.storage.buckets["alya_bucket"], self.storage.buckets["blysk_bucket"]]
        for name in ("dedupe", "caption"):
            for bucket in storefront:
                bucket.grant_read_write(self.functions[name].role)
            self.storage.tables["idempotency_table"].grant_read_write_data(self.functions[name].role)
        generate = self.functions["generate"].role
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
        self.api = RestApi(
            self,
            "Api",
            functions={name: fn.function for name, fn in self.functions.items()},
            stage=stage,
        )
