"""What a deployment needs to know, read from CDK context and checked before anything is built.

Context comes from `-c key=value`, from `cdk.json`, or from a JSON file named by `-c
context_file=PATH` (for example infra/stages/dev.example.json); `-c` values win over the file.
What already exists in the account is referenced, never created: the vision-cache table, the
OpenSearch domain, Milvus, and optionally the storefront buckets. A required key that is missing,
or a value left as an example placeholder, stops the synth at once with a message naming the key
and what it is.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from functions.specs import MIGRATION_CONCURRENCY
from infra import migration_sizing
from listing_vision.storefronts import StorefrontSpec, check_buckets, check_names
from listing_vision.storefronts import declared as declared_storefronts

OPENSEARCH_ENDPOINT = re.compile(
    r"^https://(?:search|vpc)-(?P<domain>[a-z][a-z0-9-]{2,27})-[a-z0-9]+\.(?P<region>[a-z]{2}(?:-[a-z]+)+-\d)"
    r"\.es\.amazonaws\.com/?$"
)
# An email address, or an HTTPS endpoint: the two SNS protocols that reach a person.
ALARM_SUBSCRIPTION = re.compile(r"^(?:[^@\s/]+@[^@\s/]+\.[^@\s/]+|https://[^\s/]+\.[^\s/]+(?:/\S*)?)$")
PLACEHOLDER = re.compile(r"example\.(com|internal|org)|123456789012|<[^>]*>|CHANGE[-_ ]?ME", re.IGNORECASE)


# How a release shifts each function's alias to its new version: CodeDeploy's predefined Lambda
# configurations (infra/constructs/releases.py maps each name to one).
Release = Literal[
    "all_at_once",
    "canary_10_percent_5_minutes",
    "canary_10_percent_10_minutes",
    "canary_10_percent_15_minutes",
    "canary_10_percent_30_minutes",
    "linear_10_percent_every_1_minute",
    "linear_10_percent_every_2_minutes",
    "linear_10_percent_every_3_minutes",
    "linear_10_percent_every_10_minutes",
]

DEFAULT_INSTANCE_TYPES = {"realtime_gpu": "ml.g5.xlarge", "realtime_cpu": "ml.c6i.xlarge"}


def is_gpu_instance(instance_type: str) -> bool:
    """ml.g4dn, ml.g5, ml.g6, ml.p4d, ...: the SageMaker families with NVIDIA GPUs."""
    return re.match(r"^ml\.(g\d|p\d)", instance_type) is not None


class ContextError(SystemExit):
    """A deployment setting is missing or wrong; the message names the key."""


class DeploymentConfig(BaseModel):
    """Every context key of the stack (docs/deploying.md explains each, with an example)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    stage: str = Field(
        pattern=r"^[a-z][a-z0-9-]{1,15}$",
        description="Deployment stage (dev, prod, ...): part of every resource name, so stages share an account.",
    )
    vision_cache_table: str = Field(
        min_length=3, description="Name of the existing DynamoDB table of per-image vision analyses."
    )
    opensearch_endpoint: str = Field(
        pattern=OPENSEARCH_ENDPOINT.pattern,
        description="Endpoint of the existing OpenSearch Service domain holding the listings index "
        "(https://search-NAME-ID.REGION.es.amazonaws.com or its vpc- form).",
    )
    milvus_uri: str = Field(
        pattern=r"^https?://", description="URI of the existing Milvus server or Zilliz Cloud cluster."
    )
    milvus_token_secret: str | None = Field(
        None, description="Name of the Secrets Manager secret holding the Milvus token (user:password or API key)."
    )
    milvus_collection: str = Field("image_embeddings_ip", description="Milvus collection of image embeddings.")
    listings_index: str = Field("listings-v2", description="The OpenSearch index of listings.")
    opensearch_access: Literal["iam", "fine_grained"] = Field(
        "iam",
        description="How the existing domain admits the functions: `iam` (its access policy allows their roles) "
        "or `fine_grained` (fine-grained access control: the deploy's provisioning maps their roles to an "
        "OpenSearch role; its own role must be mapped to `security_manager` first, docs/deploying.md, Provisioning).",
    )
    storefronts: list[StorefrontSpec] = Field(
        default_factory=declared_storefronts,
        min_length=1,
        description='The storefronts, each `{"name": ..., "bucket": existing bucket or unset: created}`; the first '
        "is the default (docs/deploying.md, Adding a storefront). Each gets its bucket, triggers and grants.",
    )
    listing_image_sources: str | None = Field(
        None,
        description="Extra comma-separated URL prefixes listing photos may be fetched from (the uploads bucket "
        "is always allowed).",
    )
    openai_key_secret: str | None = Field(None, description="Secrets Manager secret holding the OpenAI key.")
    anthropic_key_secret: str | None = Field(None, description="Secrets Manager secret holding the Anthropic key.")
    vpc_id: str | None = Field(
        None, pattern=r"^vpc-[0-9a-f]+$", description="VPC for the functions that reach Milvus or OpenSearch."
    )
    subnet_ids: list[str] = Field(default_factory=list, description="Private subnets for those functions.")
    security_group_ids: list[str] = Field(
        default_factory=list, description="Security groups allowed to reach Milvus and OpenSearch."
    )
    availability_zones: list[str] = Field(
        default_factory=list, description="The availability zone of each subnet, in the same order."
    )
    route_table_ids: list[str] = Field(
        default_factory=list, description="Route tables of those subnets (for the S3 and DynamoDB gateway endpoints)."
    )
    vpc_endpoints: Literal["create", "existing", "none"] | None = Field(
        None,
        description="With a VPC (required then): `create` makes the S3 and DynamoDB gateway endpoints and the "
        "SageMaker runtime, Secrets Manager and Step Functions interface endpoints, with private DNS, which one VPC "
        "holds once: "
        "one stage per VPC; `existing`: the VPC has them already (another stage made them); `none`: the subnets "
        "reach AWS through a NAT.",
    )
    api_gateway_cloudwatch_role: bool = Field(
        False,
        description="Create API Gateway's CloudWatch Logs role for the account and region "
        "(AWS::ApiGateway::Account, one per account: set it in one stage only, or set the role once by hand); "
        "every stage's API logs need it. Kept when the stage is deleted.",
    )
    retain_data: bool | None = Field(
        None,
        description="Keep the stage's stores (storefront buckets, tables, logs) when the stack deletes or "
        "replaces them: `cdk destroy` then leaves them in the account (docs/deploying.md, 'Tearing down without losing "
        "catalogue data'). Unset: kept for the `prod` stage only; other stages delete them, objects included.",
    )
    endpoint_mode: Literal["realtime_gpu", "realtime_cpu", "serverless_cpu"] = Field(
        "realtime_gpu",
        description="How the CLIP endpoint runs (docs/deploying.md, Endpoint modes and cost): "
        "`realtime_gpu` (ml.g5.xlarge, "
        "autoscaled on invocations per instance, for production and backfills), `realtime_cpu` (ml.c6i.xlarge, "
        "ONNX Runtime on CPU, the same autoscaling), or `serverless_cpu` (SageMaker serverless inference, "
        "6,144 MB, nothing billed while idle; no instance type, no fp16, no network isolation, requests under "
        "4 MB, cold starts).",
    )
    clip_instance_type: str | None = Field(
        None,
        description="SageMaker instance type of a real-time CLIP endpoint (unset: ml.g5.xlarge for realtime_gpu, "
        "ml.c6i.xlarge for realtime_cpu; refused with serverless_cpu).",
    )
    clip_image_uri: str | None = Field(None, description="Serving image of the endpoint (default: see clip_endpoint).")
    clip_max_instances: int = Field(4, ge=1, le=20, description="Upper bound of the endpoint's autoscaling.")
    clip_serverless_max_concurrency: int = Field(
        5,
        ge=1,
        le=200,
        description="With endpoint_mode=serverless_cpu: invocations served at once (the account's serverless "
        "concurrency quota bounds the sum over endpoints); more are throttled and retried by the callers.",
    )
    clip_workers: int | None = Field(
        None,
        ge=1,
        le=96,
        description="Model-server worker processes on each endpoint instance (SAGEMAKER_MODEL_SERVER_WORKERS); "
        "unset: one per 2 vCPUs of clip_instance_type with 2 host threads each on a GPU, one per vCPU on a CPU type.",
    )
    clip_fp16: bool = Field(
        False,
        description="Serve the fp16 export on the GPU. Synth refuses it unless model.tar.gz holds model.fp16.onnx "
        "and its export report measured it at least 1.3× faster than fp32 on a GPU.",
    )
    clip_allow_cpu: bool = Field(
        False,
        description="With endpoint_mode=realtime_gpu: let the endpoint serve on CPU when CUDA is unusable "
        "(the CPU modes always serve on CPU).",
    )
    waf: bool = Field(False, description="Associate a WAF web ACL with the API (AWS common rules, a rate per IP).")
    waf_requests_per_5_minutes: int = Field(
        2000, ge=100, description="With waf: requests one IP may send in 5 minutes before it is blocked."
    )
    console_origins: list[Annotated[str, Field(pattern=r"^https://[^/\s]+$")]] = Field(
        [], description='Origins besides the console\'s CloudFront one whose browsers may call the API (CORS), '
        'e.g. `["https://review.acme.net"]`.')  # fmt: skip
    release: Release = Field(
        "canary_10_percent_5_minutes",
        description="How a release shifts traffic to each function's new version (CodeDeploy, "
        "docs/deploying.md, 'Releasing and rolling back'): `canary_10_percent_N_minutes` (10 % for N minutes, "
        "then all), `linear_10_percent_every_N_minute(s)` (10 % more every N minutes) or `all_at_once`; the "
        "function's alarms roll it back while it runs.",
    )
    alarm_subscription: str = Field(
        pattern=ALARM_SUBSCRIPTION.pattern,
        description="Who the alarms reach: an email address, or an https:// endpoint (a paging or chat webhook) "
        "that confirms SNS subscriptions. Confirm the subscription once after the first deploy.",
    )
    migration_max_concurrency: int = Field(
        10,
        ge=1,
        le=MIGRATION_CONCURRENCY,
        description="Batches migrated at once (at most the migration function's reserved concurrency, "
        "functions/specs.py).",
    )
    migration_tolerated_failure_percentage: int = Field(
        5,
        ge=0,
        le=100,
        description="Share of batches that may fail every retry (recorded, reported by Verify); "
        "beyond it the migration stops starting batches and fails.",
    )
    migration_batch_size: int = Field(
        100,
        ge=1,
        le=1000,
        description="Listings per Map batch (one child execution, one invoke, one batch record); an execution's "
        "own batch_size wins.",
    )
    migration_bulk_size: int = Field(
        100,
        ge=1,
        le=1000,
        description="Partial updates per OpenSearch _bulk request of a batch (at most the batch size).",
    )
    opensearch_data_nodes: int = Field(
        3,
        ge=1,
        le=200,
        description="Data nodes of the listings domain: with opensearch_instance_type, what the migration may "
        "write (docs/migration.md, Sizing the migration); synth refuses a migration_max_concurrency the domain "
        "cannot take.",
    )
    opensearch_instance_type: str = Field(
        "r6g.xlarge.search",
        pattern=migration_sizing.INSTANCE_TYPE.pattern,
        description="Instance type of the listings domain's data nodes (e.g. r6g.large.search).",
    )
    retrieval_threshold: float | None = Field(
        None,
        gt=0,
        le=2,
        description="Duplicate check: the retrieval distance below which a neighbour is verified (RETRIEVAL_THRESHOLD "
        "of every function); `python -m evaluation.calibrate --stage-file` writes it for your catalogue and model. "
        "Unset: the functions' default.",
    )
    image_links: Literal["cdn", "private", "presigned"] = Field(
        "cdn",
        description="Links the API answers for catalogue and generated images (IMAGE_LINKS): `cdn`, stable URLs of a "
        "CloudFront distribution per bucket (origin access control; only `catalogue/` and generated images readable), "
        "`private` (API paths that check the key and answer 302 to a fresh presigned URL) or `presigned` (an hour). "
        "A storefront bucket named in `storefronts` (not created here) gets no distribution: "
        "its links stay presigned.",
    )
    image_edits_per_client_per_day: int | None = Field(None, ge=0, description="Image edits each client key may "
        "start per UTC day (IMAGE_EDITS_PER_CLIENT_PER_DAY of every function, declared in listing_vision.config with "
        "its default; the local stack reads the same setting). Unset: that default.")  # fmt: skip

    @field_validator("*", mode="before")
    @classmethod
    def no_placeholders(cls, value: Any) -> Any:
        if isinstance(value, str) and PLACEHOLDER.search(value):
            raise ValueError(f"{value!r} is an example placeholder; set the real value")
        return value

    @field_validator("subnet_ids", "security_group_ids", "availability_zones", "route_table_ids", mode="before")
    @classmethod
    def comma_separated(cls, value: Any) -> Any:
        return [part.strip() for part in value.split(",") if part.strip()] if isinstance(value, str) else value

    @field_validator("storefronts", mode="before")
    @classmethod
    def storefronts_as_json(cls, value: Any) -> Any:
        return json.loads(value) if isinstance(value, str) else value  # -c storefronts='[...]' arrives as text

    @field_validator("storefronts")
    @classmethod
    def storefronts_unique(cls, value: list[StorefrontSpec]) -> list[StorefrontSpec]:
        check_names(spec.name for spec in value)
        check_buckets(spec.bucket for spec in value if spec.bucket)
        return value

    @property
    def storefront_names(self) -> tuple[str, ...]:
        return tuple(spec.name for spec in self.storefronts)

    def storefront(self, name: str) -> StorefrontSpec:
        return next(spec for spec in self.storefronts if spec.name == name)

    @model_validator(mode="after")
    def a_vpc_is_complete(self) -> DeploymentConfig:
        if self.vpc_id:
            if not self.subnet_ids or not self.security_group_ids:
                raise ValueError("vpc_id needs subnet_ids and security_group_ids")
            if len(self.availability_zones) != len(self.subnet_ids):
                raise ValueError("availability_zones must give one zone per subnet of subnet_ids")
            if self.vpc_endpoints is None:
                raise ValueError(
                    "vpc_id needs vpc_endpoints: create (this stage makes them; one stage per VPC), "
                    "existing (another stage made them) or none (a NAT)"
                )
            if self.vpc_endpoints == "create" and len(self.route_table_ids) != len(self.subnet_ids):
                raise ValueError("vpc_endpoints=create needs route_table_ids, one per subnet")
        return self

    @model_validator(mode="after")
    def the_endpoint_mode_can_work(self) -> DeploymentConfig:
        mode, instance = self.endpoint_mode, self.clip_instance_type
        if mode == "serverless_cpu":
            for key in ("clip_instance_type", "clip_max_instances", "clip_workers"):
                if key in self.model_fields_set and getattr(self, key) is not None:
                    raise ValueError(
                        f"endpoint_mode=serverless_cpu has no instances: unset {key} "
                        "(serverless inference sizes itself; clip_serverless_max_concurrency bounds it)"
                    )
        if mode != "realtime_gpu" and self.clip_fp16:
            raise ValueError(f"clip_fp16 serves on a GPU; endpoint_mode={mode} runs on CPU: unset clip_fp16")
        if instance and mode == "realtime_cpu" and is_gpu_instance(instance):
            raise ValueError(f"endpoint_mode=realtime_cpu runs on CPU, but clip_instance_type={instance} is a GPU type")
        if instance and mode == "realtime_gpu" and not is_gpu_instance(instance) and not self.clip_allow_cpu:
            raise ValueError(
                f"clip_instance_type={instance} has no GPU: set endpoint_mode=realtime_cpu "
                "(or clip_allow_cpu=true to serve a GPU endpoint on CPU on purpose)"
            )
        return self

    @model_validator(mode="after")
    def the_migration_fits_the_domain(self) -> DeploymentConfig:
        if self.migration_bulk_size > self.migration_batch_size:
            raise ValueError("migration_bulk_size must not exceed migration_batch_size (a bulk is part of a batch)")
        nodes, instance, batch = self.opensearch_data_nodes, self.opensearch_instance_type, self.migration_batch_size
        asked = migration_sizing.requested_updates_per_s(self.migration_max_concurrency, batch)
        safe = migration_sizing.safe_updates_per_s(nodes, instance)
        if asked > safe:
            most = migration_sizing.max_concurrency_for(nodes, instance, batch)
            raise ValueError(
                f"migration_max_concurrency={self.migration_max_concurrency} with batches of {batch} asks the domain "
                f"for up to {asked:,.0f} partial updates/s; {nodes} × {instance} takes about {safe:,.0f} "
                f"(infra/migration_sizing.py): set migration_max_concurrency ≤ {most}, or state a larger domain"
            )
        return self

    @property
    def endpoint_instance_type(self) -> str | None:
        """The endpoint's instance type: the one set, or the mode's default (None: serverless)."""
        return self.clip_instance_type or DEFAULT_INSTANCE_TYPES.get(self.endpoint_mode)

    @property
    def opensearch_domain(self) -> str:
        """The domain's name, from its endpoint (`search-<name>-<id>.<region>.es.amazonaws.com`)."""
        match = OPENSEARCH_ENDPOINT.match(self.opensearch_endpoint)
        assert match is not None  # validated by the field's pattern
        return match.group("domain")

    @property
    def removal_retains_data(self) -> bool:
        return self.retain_data if self.retain_data is not None else self.stage == "prod"

    def settings_environment(self) -> dict[str, str]:
        """The runtime settings this stage sets in every function's environment (calibrated thresholds,
        the image-edit quota)."""
        settings = {}
        if self.retrieval_threshold is not None:
            settings["RETRIEVAL_THRESHOLD"] = f"{self.retrieval_threshold:g}"
        if self.image_edits_per_client_per_day is not None:
            settings["IMAGE_EDITS_PER_CLIENT_PER_DAY"] = str(self.image_edits_per_client_per_day)
        return settings

    def name(self, resource: str) -> str:
        """A physical name carrying the stage: `listing-vision-<stage>-<resource>`."""
        return f"listing-vision-{self.stage}-{resource}"


def load(context: Callable[[str], Any], root: Path) -> DeploymentConfig:
    """The configuration from CDK context (`app.node.try_get_context`), or a ContextError naming the key."""
    values: dict[str, Any] = {}
    context_file = context("context_file")
    if context_file:
        path = (root / context_file) if not Path(context_file).is_absolute() else Path(context_file)
        if not path.is_file():
            raise ContextError(f"context_file: {path} does not exist.")
        values.update({k: v for k, v in json.loads(path.read_text()).items() if not k.startswith("//")})
        retired = sorted(k for k in values if k.endswith("_bucket") and k not in DeploymentConfig.model_fields)
        if retired:  # a storefront's bucket key of old, which would now be ignored and a new bucket made
            raise ContextError(
                f"context_file: {', '.join(retired)}: a storefront's bucket is now part of `storefronts`, "
                'e.g. "storefronts": [{"name": "NAME", "bucket": "EXISTING-BUCKET"}] '
                "(docs/deploying.md, Adding a storefront)."
            )
    cdk_json = root / "cdk.json"
    defaults = json.loads(cdk_json.read_text()).get("context", {}) if cdk_json.is_file() else {}
    for key in DeploymentConfig.model_fields:
        value = context(key)
        # cdk.json's context reaches here as context too: a stage file's value wins over it, -c over both
        if value is not None and not (key in values and key in defaults and value == defaults[key]):
            values[key] = value
    return validate(values)


def validate(values: Mapping[str, Any]) -> DeploymentConfig:
    try:
        return DeploymentConfig.model_validate(
            {k: _booleans(k, v) for k, v in values.items() if k in DeploymentConfig.model_fields}
        )
    except ValidationError as error:
        problems = []
        for err in error.errors():
            key = ".".join(str(part) for part in err["loc"]) or "context"
            field = DeploymentConfig.model_fields.get(str(err["loc"][0])) if err["loc"] else None
            what = f" ({field.description})" if field and field.description else ""
            problem = "is required" if err["type"] == "missing" else err["msg"]
            problems.append(f"  -c {key}=...{what}: {problem}")
        raise ContextError(
            "Cannot synthesize: deployment settings are missing or wrong.\n"
            + "\n".join(problems)
            + "\nSet them with -c key=value, or -c context_file=infra/stages/<stage>.json "
            "(start from infra/stages/dev.example.json)."
        ) from error


def _booleans(key: str, value: Any) -> Any:
    # Context given as -c key=value arrives as text.
    field = DeploymentConfig.model_fields[key]
    if field.annotation is bool and isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return value


def context_table() -> str:
    """Every context key as a Markdown table: key, required or default, what it is."""
    rows = ["| key | default | what it is |", "|---|---|---|"]
    for key, field in DeploymentConfig.model_fields.items():
        if field.is_required():
            shown = "**required**"
        else:
            default = field.get_default(call_default_factory=True)
            if isinstance(default, list) and default and isinstance(default[0], BaseModel):
                default = [item.model_dump(exclude_none=True) for item in default]
            shown = "(unset)" if default in (None, []) else f"`{json.dumps(default)}`"
        rows.append(f"| `{key}` | {shown} | {field.description} |")
    return "\n".join(rows)


if __name__ == "__main__":  # pragma: no cover - documentation helper
    import sys

    from listing_vision.config import replace_between_markers

    if sys.argv[1:2] == ["--write-readme"]:
        replace_between_markers(sys.argv[2] if len(sys.argv) > 2 else "docs/deploying.md", "context", context_table())
    else:
        print(context_table())
