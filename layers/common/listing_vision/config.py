"""Typed settings, read from the environment in one place.

Every setting has a default that works on the local stack, so nothing needs configuring to run
locally. On AWS, CDK sets the variables for each function. `python -m listing_vision.config`
prints the table that docs/configuration.md carries (a test keeps the two in step).
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, GetJsonSchemaHandler, model_validator
from pydantic_core import CoreSchema, PydanticCustomError
from pydantic_settings import BaseSettings, SettingsConfigDict

from listing_vision import storefronts as declaration


def _configured_storefront(value: str) -> str:
    names = get_settings().storefront_names
    if value not in names:
        # the error a Literal of the names would give (type literal_error), not a "Value error, ..."
        expected = ", ".join(repr(name) for name in names)
        raise PydanticCustomError("literal_error", "Input should be one of {expected}", {"expected": expected})
    return value


class _ConfiguredNames:
    """The OpenAPI schema of a storefront: an enum of the configured names, made when the document is."""

    def __get_pydantic_json_schema__(self, schema: CoreSchema, handler: GetJsonSchemaHandler) -> dict[str, Any]:
        return {**handler(schema), "enum": list(get_settings().storefront_names)}


# A storefront's name, valid when the configuration declares it (STOREFRONTS); anything else is a
# validation error (400 invalid_request in the API), as a Literal's would be.
Storefront = Annotated[str, AfterValidator(_configured_storefront), _ConfiguredNames()]


class Settings(BaseSettings):
    """All runtime settings. The environment variable is the field name in upper case."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", frozen=True)

    # --- AWS and the emulators -------------------------------------------------------------
    aws_region: str = Field("us-east-1", description="AWS region for every client.")
    aws_endpoint_url: str | None = Field(
        None,
        description="Endpoint override for every AWS client (the local stack sets it to moto's URL). Unset on AWS.",
    )
    aws_max_attempts: int = Field(
        5,
        ge=1,
        description="botocore attempts in all, first try included "
        "(standard mode: backoff with jitter, throttling retried).",
    )
    aws_connect_timeout_s: float = Field(5.0, gt=0, description="botocore connect timeout, seconds.")
    aws_read_timeout_s: float = Field(30.0, gt=0, description="botocore read timeout, seconds.")

    # --- Jewelry storefronts ---------------------------------------------------------------
    storefronts: dict[str, str] = Field(
        default_factory=lambda: {spec.name: declaration.local_bucket(spec) for spec in declaration.declared()},
        description="The storefronts and their S3 buckets, JSON name → bucket; the first is the default. The deploy "
        "and the local stack set it from the stage context's `storefronts`; unset: cdk.json's, with local names.",
    )
    generated_bucket: str = Field("generated", description="S3 bucket for generated catalogue images and ZIPs.")
    artifacts_bucket: str = Field("artifacts", description="S3 bucket for migration manifests, results and backups.")
    presign_urls: bool = Field(
        True, description="Answer presigned GET URLs (`true`) or plain object URLs (`false`, for public CDNs)."
    )
    presign_expiry_s: int = Field(3600, ge=1, le=604800, description="Lifetime of presigned URLs, seconds.")
    image_links: Literal["cdn", "private", "presigned"] = Field(
        "presigned",
        description="Links to catalogue and generated images: `cdn` (stable URLs from `cdn_urls`), `private` (API "
        "paths that check the key and redirect to a fresh presigned URL) or `presigned`. "
        "The stage context's `image_links` sets it on AWS (default `cdn`).",
    )
    cdn_urls: dict[str, str] = Field(
        default_factory=dict,
        description="JSON bucket → CDN base URL (a CloudFront distribution's, or the local stack's CDN server); "
        "set by the deploy and the local stack.",
    )
    max_upload_bytes: int = Field(
        4_500_000,
        ge=1,
        description="Largest image accepted through the API (API Gateway/Lambda's 6 MB event less base64).",
    )

    # --- Embeddings ------------------------------------------------------------------------
    embedder: Literal["auto", "onnx", "sagemaker"] = Field(
        "auto",
        description="`sagemaker` (the endpoint), `onnx` (in process) or `auto`: SageMaker when an endpoint is named.",
    )
    sagemaker_endpoint_name: str | None = Field(None, description="SageMaker endpoint serving the CLIP encoder.")
    sagemaker_runtime_url: str | None = Field(
        None,
        description="Endpoint override for the SageMaker runtime client only (the local stack's serving "
        "container). Unset on AWS.",
    )
    clip_model_path: str | None = Field(
        None,
        description="ONNX image encoder for the in-process path (from `serving.clip.export`); unset: the shipped "
        "weight-free DCT descriptor.",
    )
    clip_resize: Literal["squash", "clip"] = Field(
        "squash",
        description="How the in-process encoder fits an image to 224×224: `squash` (the whole image, what "
        "serving uses) or `clip` (CLIPImageProcessor's centre crop). Changing it means re-embedding (backfill).",
    )
    embedding_timeout_s: float = Field(10.0, gt=0, description="Read timeout of one SageMaker invocation, seconds.")
    embedding_transport_px: int = Field(
        1024,
        ge=224,
        description="Longest side of an image sent to the SageMaker endpoint. Images go with their short side at "
        "384 px, what the model side needs (CLIP sees 224 px, verification 384), and never longer than this, so "
        "any accepted image fits its 6 MB payload.",
    )
    sagemaker_max_payload_bytes: int = Field(
        5_500_000,
        ge=500_000,
        le=5_500_000,
        description="Largest request sent to the SageMaker endpoint, bytes: under InvokeEndpoint's 6 MB (the stack "
        "sets 3,500,000 for a serverless endpoint, whose requests are capped at 4 MB).",
    )
    max_image_pixels: int = Field(
        40_000_000,
        ge=1,
        description="Largest width × height decoded; larger images are refused as decompression bombs.",
    )

    max_object_bytes: int = Field(
        50_000_000, ge=1, description="Largest image accepted by presigned upload and indexed from a bucket."
    )

    # --- Milvus (duplicate detection) ------------------------------------------------------
    milvus_client_uri: str = Field(
        ".local-state/milvus.db",
        description="What MilvusClient connects to: `https://…` for a server or Zilliz, or a Milvus Lite data "
        "directory (a path ending in `.db`). Not MILVUS_URI, which pymilvus reads itself when imported.",
    )
    milvus_token: str | None = Field(None, description="Milvus token (`user:password` or API key); unset for Lite.")
    milvus_token_secret: str | None = Field(
        None, description="Secrets Manager secret holding the Milvus token (read once per process when set)."
    )
    milvus_collection: str = Field("image_embeddings_ip", description="Milvus collection of image embeddings.")
    embedding_dim: int = Field(512, ge=1, description="Embedding dimension (512 for CLIP ViT-B/32).")
    duplicate_threshold: float = Field(
        0.05,
        gt=0,
        lt=2,
        description="`near` duplicate when distance = 1 − IP score is below this and the colours agree.",
    )
    retrieval_threshold: float = Field(
        0.5,
        gt=0,
        lt=2,
        description="Candidates closer than this (distance) are verified on local features and colour.",
    )
    search_ef: int = Field(64, ge=1, description="HNSW `ef` at search time.")
    search_top_k: int = Field(20, ge=1, le=100, description="Candidates retrieved per duplicate check.")
    verify_min_inliers: int = Field(
        15, ge=4, description="`verified` needs at least this many RANSAC inliers among the ORB matches."
    )
    verify_max_hue_degrees: float = Field(
        25.0, gt=0, le=180, description="A coloured cell whose hue turned further than this disagrees."
    )
    verify_max_colour_disagreement: float = Field(
        0.08,
        gt=0,
        lt=1,
        description="Different products (a colour variant) when more than this share of the coloured cells "
        "disagree in hue or chroma where the two photos overlap.",
    )
    claim_lease_s: int = Field(
        120,
        ge=5,
        description="How long an upload in progress holds its content claim before another request may take over "
        "(a crashed request's claim expires after this).",
    )

    # --- Real-estate listings --------------------------------------------------------------
    opensearch_url: str = Field("http://127.0.0.1:9200", description="OpenSearch endpoint.")
    opensearch_auth: Literal["none", "sigv4"] = Field(
        "none", description="`sigv4` signs requests with the function's IAM role (Amazon OpenSearch Service)."
    )
    opensearch_access: Literal["iam", "fine_grained"] = Field(
        "iam",
        description="How the domain admits the functions: `iam` (its access policy names their roles) or "
        "`fine_grained` (fine-grained access control: provisioning maps their roles to an OpenSearch role).",
    )
    opensearch_role_arns: str = Field(
        "",
        description="Comma-separated IAM role ARNs provisioning maps to the listings role under fine-grained "
        "access control (the deploy sets it on the provisioning function).",
    )
    listings_index: str = Field("listings-v2", description="OpenSearch index of listings (id = zpid).")
    vision_cache_table: str = Field("hearth-vision-cache", description="DynamoDB table of per-image analyses.")
    uploads_bucket: str = Field("listing-uploads", description="S3 bucket where listing documents are dropped.")
    listing_image_sources: str = Field(
        "s3://listing-uploads/,https://photos.hearth.example/",
        description="Comma-separated URL prefixes listing images may be fetched from; anything else is refused.",
    )
    ingest_concurrency: int = Field(4, ge=1, le=32, description="Images analysed at once per listing.")
    image_analyses_per_minute: float = Field(
        50.0,
        gt=0,
        description="Listing photos `migrate analyse-missing` sends to the vision model per minute, across every "
        "process running it (a shared limit in the rate-limit table, its burst INGEST_CONCURRENCY; ingest of new "
        "listings is not limited by it).",
    )
    max_listing_image_bytes: int = Field(20_000_000, ge=1, description="Largest listing image fetched.")
    feature_phrases_table: str = Field(
        "hearth-feature-phrases",
        description="DynamoDB table caching the class of each feature phrase the taxonomy does not know "
        "(one item per phrase and taxonomy version).",
    )
    listing_splits_table: str = Field(
        "hearth-listing-splits",
        description="DynamoDB table recording, per listing, the taxonomy version and the hash of the cached "
        "analyses its split came from (what makes a split stale).",
    )
    phrase_classifier: Literal["auto", "openai", "anthropic", "offline"] = Field(
        "auto",
        description="Who classifies feature phrases the taxonomy does not know (`classify-phrases`): `auto` picks "
        "OpenAI, then Anthropic, by which key is set, else the offline rule.",
    )
    phrase_classify_batch: int = Field(
        50, ge=1, le=200, description="Feature phrases classified per model request by `classify-phrases`."
    )

    # --- Jobs and idempotency --------------------------------------------------------------
    jobs_table: str = Field("jobs", description="DynamoDB table of image-generation jobs.")
    rate_limit_table: str = Field("rate-limits", description="DynamoDB table of shared rate limits.")
    job_events_bus: str = Field(
        "job-events",
        description="EventBridge bus on which each finished generation run is announced "
        "(detail-type `Generation job finished`).",
    )
    webhooks_table: str = Field("webhooks", description="DynamoDB table of webhook registrations and deliveries.")
    webhook_secrets_prefix: str = Field(
        "/listing-vision/webhooks",
        pattern=r"^(/[A-Za-z0-9_.-]+)+$",
        description="SSM path under which each webhook's signing secret is kept (a SecureString parameter).",
    )
    webhook_allow_loopback: bool = Field(
        False,
        description="Let a webhook URL resolve to a loopback address (the local stack's test receivers); private, "
        "link-local and other non-public addresses are refused whatever this says.",
    )
    webhook_attempts: int = Field(5, ge=1, le=8, description="Webhook delivery attempts (5xx, timeouts) per event.")
    webhook_backoff_s: float = Field(
        2.0, ge=0, le=60, description="Wait before a webhook's second attempt; doubled before each further one."
    )
    webhook_timeout_s: float = Field(
        10.0,
        gt=0,
        le=30,
        description="Seconds one webhook attempt may take in all (connect, TLS, sending, the answer's status and "
        "headers).",
    )
    generate_worker_function: str = Field(
        "generate-worker:live",
        description="Lambda function that renders generation jobs (invoked asynchronously), with the alias "
        "it is released behind: invoking `name:live`, never `$LATEST`, is what its grant allows.",
    )
    generation_deadline_s: int = Field(
        5400,
        ge=60,
        description="A generation run not finished this long after it was started ends: its undelivered "
        "types fail with `worker_timeout`, the images it delivered are kept (`partial`). Covers the asynchronous "
        "queue, the worker's retries and its 15-minute runs.",
    )
    generation_sync_wait_s: float = Field(
        22,
        ge=0,
        le=26,
        description="How long `POST /generate-images` without `Prefer: respond-async` waits for its job before "
        "answering 202 with the job's `Location` instead of 200 with its images (`Prefer: wait=N` asks for less). "
        "Inside API Gateway's 29 s, with time to answer, and under the function's p95-duration alarm (80 % of its "
        "29 s); 0 answers every submission at once.",
    )
    idempotency_table: str = Field(
        "idempotency",
        description="DynamoDB table of `Idempotency-Key` records (Powertools idempotency): each paid call's "
        "answer per client and key, replayed to a retry.",
    )
    idempotency_expiry_s: int = Field(
        86_400,
        ge=60,
        le=30 * 86_400,
        description="How long a request's `Idempotency-Key` holds its answer: a retry within it is answered "
        "from the record and starts nothing new; after it, the key is free again.",
    )
    catalogue_table: str = Field(
        "image-catalogue",
        description="DynamoDB table with one record per stored jewelry image content "
        "(upload claims, exact duplicates).",
    )

    # --- API access ------------------------------------------------------------------------
    api_auth: Literal["none", "api_keys"] = Field(
        "none",
        description="`api_keys`: every API request carries a client's key (x-api-key), checked by the authorizer, "
        "and may use only that client's storefronts. `none`: no keys (the local default, on loopback only).",
    )
    api_clients_table: str = Field(
        "api-clients", description="DynamoDB table of API clients (hashed keys and their storefronts)."
    )
    user_pool_issuer: str | None = Field(
        None,
        description="With api_keys: the Cognito user pool whose tokens (Authorization: Bearer) the authorizer also "
        "accepts, as its issuer URL (https://cognito-idp.REGION.amazonaws.com/POOL_ID); its groups are storefronts.",
    )
    user_pool_client_id: str | None = Field(None, description="The pool's app client the tokens must be for.")
    user_pool_jwks_url: str | None = Field(None, description="The pool's keys; unset: the issuer's JWKS.")
    console_origins: list[str] = Field([], description="Origins whose browsers may call the API (CORS), as JSON.")

    # --- Model providers (OpenAI, Anthropic) -----------------------------------------------
    caption_provider: Literal["auto", "openai", "anthropic", "offline"] = Field(
        "auto",
        description="Who writes captions: `auto` picks OpenAI, then Anthropic, by which key is set, else offline.",
    )
    openai_api_key: str | None = Field(None, description="OpenAI key (local use; on AWS use OPENAI_API_KEY_SECRET).")
    openai_api_key_secret: str | None = Field(None, description="Secrets Manager secret holding the OpenAI key.")
    openai_base_url: str | None = Field(None, description="OpenAI API base URL override (tests' loopback server).")
    openai_caption_model: str = Field("gpt-5.4-mini", description="OpenAI model for captions (vision input).")
    openai_image_model: str = Field(
        "gpt-image-2", description="OpenAI image-edit model (gpt-image-1 was retired on 2026-10-23)."
    )
    openai_image_input_fidelity: Literal["high", "low", "off"] = Field(
        "high", description="`input_fidelity` for edits (`off` for models that do not accept it)."
    )
    image_edit_timeout_s: float = Field(
        180.0, gt=0, description="Timeout of one image edit (they take 10 s to minutes)."
    )
    image_edit_rate_per_minute: float = Field(
        5.0, gt=0, description="Image edits per minute across all jobs (the provider's input-image limit)."
    )
    image_edit_burst: int = Field(
        5, ge=1, description="Edits that may start at once, and at most in any window of BURST / RATE minutes."
    )
    image_edit_concurrency: int = Field(4, ge=1, le=16, description="Edits in flight per job.")
    image_edits_per_client_per_day: int = Field(
        200,
        ge=0,
        description="Image edits each client key may start per UTC day; a run over it ends `quota_exceeded` "
        "(stage context `image_edits_per_client_per_day`).",
    )
    anthropic_api_key: str | None = Field(
        None, description="Anthropic key (local use; on AWS use ANTHROPIC_API_KEY_SECRET)."
    )
    anthropic_api_key_secret: str | None = Field(None, description="Secrets Manager secret holding the Anthropic key.")
    anthropic_base_url: str | None = Field(
        None, description="Anthropic API base URL override (tests' loopback server)."
    )
    anthropic_caption_model: str = Field("claude-sonnet-4-6", description="Anthropic model for captions.")
    anthropic_vision_model: str = Field("claude-sonnet-4-6", description="Anthropic model for listing image analyses.")
    openai_phrase_model: str = Field("gpt-5.4-mini", description="OpenAI model classifying feature phrases.")
    anthropic_phrase_model: str = Field("claude-haiku-4-5", description="Anthropic model classifying feature phrases.")
    provider_timeout_s: float = Field(
        8.0,
        gt=0,
        description="Timeout of one provider request, seconds (the API's caption function gets its own, to fit "
        "API Gateway's 29 s: functions/specs.py).",
    )
    provider_max_retries: int = Field(
        2, ge=0, le=5, description="The SDKs' own retries (429 with retry-after, 5xx, timeouts)."
    )

    # --- Observability ---------------------------------------------------------------------
    metrics_namespace: str = Field("ListingVision", description="CloudWatch metrics namespace.")

    @model_validator(mode="after")
    def _retrieval_covers_near(self) -> Settings:
        if self.retrieval_threshold < self.duplicate_threshold:
            raise ValueError(
                "retrieval_threshold must be at least duplicate_threshold (a near duplicate must be retrieved)"
            )
        return self

    @model_validator(mode="after")
    def _storefronts_declared(self) -> Settings:
        for name in declaration.check_names(self.storefronts):
            if not re.match(declaration.NAME_PATTERN, name):
                raise ValueError(f"storefront name {name!r} must match {declaration.NAME_PATTERN}")
        declaration.check_buckets(self.storefronts.values())
        return self

    @property
    def storefront_names(self) -> tuple[str, ...]:
        """The configured storefronts, in declaration order."""
        return tuple(self.storefronts)

    @property
    def default_storefront(self) -> str:
        """The storefront of a request that names none (and whose caller holds several): the first declared."""
        return next(iter(self.storefronts))

    def bucket_for(self, storefront: Storefront) -> str:
        """The S3 bucket that holds a storefront's images."""
        return self.storefronts[storefront]


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (read once; tests call `get_settings.cache_clear()`)."""
    return Settings()


def settings_table() -> str:
    """The settings as a Markdown table: variable, default, meaning."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        default = field.get_default(call_default_factory=True)
        shown = "(unset)" if default is None else f"`{json.dumps(default) if isinstance(default, dict) else default}`"
        rows.append(f"| `{name.upper()}` | {shown} | {field.description} |")
    return "\n".join(rows)


def replace_between_markers(path: str, marker: str, table: str) -> None:
    """Replace what lies between a page's `<!-- marker:start … -->` and `<!-- marker:end -->` (README or docs/)."""
    readme = __import__("pathlib").Path(path)
    text = readme.read_text()
    start = text.index("\n", text.index(f"<!-- {marker}:start")) + 1
    end = text.index(f"<!-- {marker}:end -->")
    readme.write_text(text[:start] + table + "\n" + text[end:])


def write_readme_table(path: str) -> None:
    """Replace the table between the settings markers (docs/configuration.md) with the current one."""
    replace_between_markers(path, "settings", settings_table())


if __name__ == "__main__":  # pragma: no cover - documentation helper
    import sys

    if sys.argv[1:2] == ["--write-readme"]:
        write_readme_table(sys.argv[2] if len(sys.argv) > 2 else "docs/configuration.md")
    else:
        print(settings_table())
