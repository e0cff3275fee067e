"""The platform stack: the stores, the CLIP endpoint, one construct per capability, the API."""

from __future__ import annotations

from aws_cdk import Stack
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from infra.config import DeploymentConfig
from infra.constructs.api import RestApi
from infra.constructs.captions import Captions
from infra.constructs.cdn import ImageCdn
from infra.constructs.clip_endpoint import ClipEndpoint, endpoint_options
from infra.constructs.console import Console
from infra.constructs.dedupe import Dedupe
from infra.constructs.generation import Generation
from infra.constructs.listings import Listings
from infra.constructs.monitoring import Monitoring, Watched
from infra.constructs.platform import Platform
from infra.constructs.provisioning import Provisioning
from infra.constructs.releases import Releases
from infra.constructs.service_function import Network, ServiceFunction
from infra.constructs.storage import Storage
from infra.log_retention import retain_function_logs


class ListingVisionStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: DeploymentConfig,
        layer_code: dict[str, lambda_.Code],
        clip_model_tarball: str,
        **kwargs: object,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)  # type: ignore[arg-type]
        self.config = config
        self.storage = Storage(self, "Storage", config=config)
        self.cdn = ImageCdn(self, "Cdn", config=config, buckets=self.storage.buckets)
        # The review console and the people who sign in to it; its photos come from the image buckets
        # (presigned links) and their distributions.
        self.console = Console(
            self,
            "Console",
            config=config,
            storage=self.storage,
            image_origins=[
                *(  # presigned links name a bucket by its global or its regional host, by region
                    f"https://{host}"
                    for s in self.cdn.image_buckets()
                    for host in (
                        self.storage.buckets[s].bucket_domain_name,
                        self.storage.buckets[s].bucket_regional_domain_name,
                    )
                ),
                *(f"https://{d.distribution_domain_name}" for d in self.cdn.distributions.values()),
            ],
        )
        # One layer per dependency group (layers/layers.json); each function gets only its own.
        self.layers = {
            name: lambda_.LayerVersion(
                self,
                f"{name.capitalize()}Layer",
                code=code,
                compatible_runtimes=[lambda_.Runtime.PYTHON_3_12],
                compatible_architectures=[lambda_.Architecture.X86_64],
                description=f"{name}: pinned runtime dependencies (layers/layers.json)",
            )
            for name, code in layer_code.items()
        }
        self.clip = ClipEndpoint(
            self,
            "Clip",
            model_tarball=clip_model_tarball,
            options=endpoint_options(config),
        )
        # The existing domain, by name (CDK's from_domain_endpoint keeps the `search-` prefix in the name).
        domain_arn = self.format_arn(service="es", resource="domain", resource_name=config.opensearch_domain)
        secrets = {
            name: secretsmanager.Secret.from_secret_name_v2(self, f"{name.capitalize()}Secret", secret_name)
            for name, secret_name in (
                ("milvus", config.milvus_token_secret),
                ("openai", config.openai_key_secret),
                ("anthropic", config.anthropic_key_secret),
            )
            if secret_name
        }
        environment = {
            **self.storage.environment(),
            **self.cdn.environment(),  # stable links to catalogue and generated images
            "SAGEMAKER_ENDPOINT_NAME": self.clip.endpoint_name,
            **(
                {"SAGEMAKER_MAX_PAYLOAD_BYTES": str(self.clip.options.max_payload_bytes)}
                if self.clip.options.max_payload_bytes
                else {}
            ),
            "MILVUS_CLIENT_URI": config.milvus_uri,
            "MILVUS_COLLECTION": config.milvus_collection,
            "OPENSEARCH_URL": config.opensearch_endpoint.rstrip("/"),
            "OPENSEARCH_AUTH": "sigv4",
            "LISTINGS_INDEX": config.listings_index,
            "API_AUTH": "api_keys",  # a client's key or a person's token on every request (infra/constructs/api.py)
            **self.console.environment(),  # the user pool the authorizer trusts, the origins the API answers (CORS)
            **config.settings_environment(),  # calibrated thresholds (python -m evaluation.calibrate --stage-file)
            **({"MILVUS_TOKEN_SECRET": config.milvus_token_secret} if config.milvus_token_secret else {}),
            **({"OPENAI_API_KEY_SECRET": config.openai_key_secret} if config.openai_key_secret else {}),
            **({"ANTHROPIC_API_KEY_SECRET": config.anthropic_key_secret} if config.anthropic_key_secret else {}),
        }
        self.platform = Platform(
            config=config,
            storage=self.storage,
            layers=self.layers,
            clip=self.clip,
            environment=environment,
            opensearch_domain_arn=domain_arn,
            releases=Releases(self, "Releases", config=config),
            network=self._network(config),
            secrets=secrets,
        )
        self.dedupe = Dedupe(self, "Dedupe", platform=self.platform)
        self.captions = Captions(self, "Captions", platform=self.platform)
        self.generation = Generation(self, "Generation", platform=self.platform)
        self.listings = Listings(self, "Listings", platform=self.platform)
        self.functions: dict[str, ServiceFunction] = {
            **self.dedupe.functions,
            **self.captions.functions,
            **self.generation.functions,
            **self.listings.functions,
        }
        self.api = RestApi(
            self,
            "Api",
            platform=self.platform,
            functions={name: fn.alias for name, fn in self.functions.items()},
            console=self.console,
        )
        self.console.deploy(self.api.api.url)
        self.functions.update(self.api.functions)
        # What CloudFormation does not create (Milvus collection, listings index, OpenSearch role mapping),
        # made by a trigger once the stores and every function (whose roles it maps) exist
        self.provisioning = Provisioning(
            self,
            "Provisioning",
            platform=self.platform,
            functions=self.functions,
            after=[self.storage, self.clip, self.dedupe, self.captions, self.generation, self.listings],
        )
        self.functions.update(self.provisioning.functions)
        retain_function_logs(self, self.storage.removal)  # CDK's own functions too (bucket notifications, auto-delete)
        self.monitoring = Monitoring(
            self,
            "Monitoring",
            watched=Watched(
                config=config,
                functions=self.functions,
                api=self.api.api,
                state_machine=self.listings.migration.state_machine,
                endpoint=self.clip,
            ),
        )

    def _network(self, config: DeploymentConfig) -> Network | None:
        """The VPC the Milvus- and OpenSearch-facing functions run in, when context names one."""
        if not config.vpc_id:
            return None
        from infra.constructs.network import private_network

        return private_network(self, config)
