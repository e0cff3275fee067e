"""What stores the platform needs, declared once.

CDK (infra/) and the local stack (local/) both provision from these specs, so a table's key or a
bucket's purpose cannot drift between AWS and a laptop. Names come from settings locally and
from the stack (with its stage) on AWS. `existing` marks what already lives in the account and
is referenced there, never created: `always` (the vision cache the migration reuses) or
`optional` (storefront buckets, when context names them). Locally everything is provisioned.

A bucket's `expiries` are what S3 deletes by itself (lifecycle rules), with why; every bucket the
platform creates also drops old object versions and abandoned multipart uploads.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from listing_vision.storefronts import bucket_setting

Existing = Literal["never", "optional", "always"]


@dataclass(frozen=True)
class IndexSpec:
    """A global secondary index: its name, partition key (a string) and sort key (a number),
    projecting every attribute, or the keys and `include` alone when it names any."""

    name: str
    partition_key: str
    sort_key: str
    include: tuple[str, ...] = ()


@dataclass(frozen=True)
class TableSpec:
    """A DynamoDB table: the setting holding its name, its partition key, its TTL attribute, its
    global secondary indexes."""

    name_setting: str
    partition_key: str
    ttl_attribute: str | None = None
    purpose: str = ""
    existing: Existing = "never"
    indexes: tuple[IndexSpec, ...] = ()


@dataclass(frozen=True)
class EventBusSpec:
    """An EventBridge bus the platform creates: the setting holding its name, what goes on it."""

    name_setting: str
    purpose: str


@dataclass(frozen=True)
class Expiry:
    """Objects S3 deletes after `days`: those under `prefix` carrying every tag in `tags`."""

    rule_id: str
    days: int
    why: str
    prefix: str = ""
    tags: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class BucketSpec:
    """An S3 bucket: the setting holding its name, what it holds, and what expires from it."""

    name_setting: str
    purpose: str
    existing: Existing = "never"
    expiries: tuple[Expiry, ...] = ()
    storefront: str | None = None  # the storefront whose photos it holds (named by STOREFRONTS, not a setting)


# The migration's state machine: the name the local stack creates it under and the CLI starts
# (realestate/migrate.py --via-stepfunctions), and the deploy's before its stage prefix (config.name)
MIGRATION_STATE_MACHINE = "visual-features-migration"
INCOMING_PREFIX = "incoming/"  # presigned uploads land here (listing_vision.jewelry.uploads)
UPLOAD_STATUS_TAG = "dedupe-status"  # the outcome the upload trigger records on each object
JOB_RETENTION_DAYS = 30  # a generation job's record lives this long (its TTL)
JOBS_BY_WEBSITE = IndexSpec("website-created", "website", "created_at")  # GET /jobs: a storefront's, newest first
# Webhooks: a storefront's registrations (`hooks#<website>`) and a client's deliveries (`deliveries#<website>#<client>`)
WEBHOOKS_BY_OWNER = IndexSpec("owner-created", "owner", "created_at")
# GET /verdicts: a storefront's verdicts, newest first. Only verdicts carry `recorded_at` in the
# catalogue table, so the index holds nothing else (jewelry/verdicts.py)
VERDICTS_BY_WEBSITE = IndexSpec("website-recorded", "website", "recorded_at")
# GET /images: a storefront's stored images, newest first. A record carries `listed_website` only while
# it is stored (claims.py sets it with the status and removes it when a delete begins), so the index
# holds listable records and nothing else: no claim in flight, no image being deleted, no verdict
# holds only what a listed image shows: a stored record's ~25 KB of verification features would make
# each index item (and its read) that large, about 40 a page of 1 MB
IMAGES_BY_WEBSITE = IndexSpec("listed-created", "listed_website", "created_at", ("status", "path", "image_name"))
WEBHOOK_DELIVERY_DAYS = 30  # a webhook delivery's record lives this long (its TTL)
NONCURRENT_VERSION_DAYS = 30  # an overwritten or deleted object version is kept this long
INCOMPLETE_UPLOAD_DAYS = 7  # a multipart upload never completed is abandoned after this

STOREFRONT_EXPIRIES = (
    Expiry(
        "duplicate-uploads",
        30,
        "uploads found to be duplicates: the catalogue holds the original; kept a month for support",
        INCOMING_PREFIX,
        ((UPLOAD_STATUS_TAG, "duplicate"),),
    ),
    Expiry(
        "invalid-uploads",
        7,
        "uploads that are not accepted images: never indexed, kept a week for support",
        INCOMING_PREFIX,
        ((UPLOAD_STATUS_TAG, "invalid"),),
    ),
    Expiry(
        "reused-upload-forms",
        7,
        "a second post of an upload form whose photo is catalogued: never indexed, kept a week for support",
        INCOMING_PREFIX,
        ((UPLOAD_STATUS_TAG, "form_reused"),),
    ),
)


TABLES: tuple[TableSpec, ...] = (
    TableSpec("vision_cache_table", "image_url", None, "per-image vision analyses and embeddings", "always"),
    TableSpec("feature_phrases_table", "phrase_key", None, "classes of feature phrases the taxonomy does not know"),
    TableSpec(
        "listing_splits_table",
        "listing_key",
        None,
        "per listing: the taxonomy version and the hash of the cached analyses its split came from",
    ),
    TableSpec(
        "jobs_table", "job_id", "expires_at", "image-generation jobs and their results", indexes=(JOBS_BY_WEBSITE,)
    ),
    TableSpec(
        "webhooks_table",
        "webhook_key",
        "expires_at",
        "webhook registrations (their secrets are SSM SecureString parameters) and delivery records",
        indexes=(WEBHOOKS_BY_OWNER,),
    ),
    TableSpec(
        "rate_limit_table",
        "bucket_id",
        "expires_at",
        "token buckets shared by every job (provider rate limits) and clients' daily edit quotas (these expire)",
    ),
    TableSpec(
        "catalogue_table",
        "content_id",
        "expires_at",
        "stored jewelry images by content (claims, exact duplicates) and reviewers' verdicts on duplicate pairs",
        indexes=(VERDICTS_BY_WEBSITE, IMAGES_BY_WEBSITE),
    ),
    TableSpec(
        "idempotency_table",
        "id",
        "expiration",
        "Idempotency-Key records of paid calls and their answers (Powertools idempotency's key and TTL attributes)",
    ),
    TableSpec(
        "api_clients_table", "key_hash", None, "API clients: their keys' hashes and the storefronts they may use"
    ),
)

# The platform's own buckets; each storefront adds one more (`buckets`).
BUCKETS: tuple[BucketSpec, ...] = (
    BucketSpec(
        "generated_bucket",
        "generated catalogue images and ZIPs",
        expiries=(
            Expiry(
                "generated-images",
                JOB_RETENTION_DAYS + 1,
                "a job's images and ZIP outlive its record (and the URLs it answers) by a day",
            ),
        ),
    ),
    BucketSpec("artifacts_bucket", "migration manifests, results and backups"),
    BucketSpec("uploads_bucket", "listing documents (and their photos) dropped for ingest"),
)

EVENT_BUSES: tuple[EventBusSpec, ...] = (
    EventBusSpec("job_events_bus", "one event per finished generation run (done, partial, failed, cancelled)"),
)


def buckets(storefronts: Iterable[str]) -> tuple[BucketSpec, ...]:
    """Every bucket: one per storefront (listing_vision.storefronts), then the platform's own."""
    per_storefront = tuple(
        BucketSpec(bucket_setting(name), f"{name} storefront product photos", "optional", STOREFRONT_EXPIRIES, name)
        for name in storefronts
    )
    return per_storefront + BUCKETS


def bucket_name(settings: Any, spec: BucketSpec) -> str:
    """The bucket's name in these settings (listing_vision.config.Settings)."""
    return str(settings.bucket_for(spec.storefront) if spec.storefront else getattr(settings, spec.name_setting))


def lifecycle_rules(spec: BucketSpec) -> list[dict[str, Any]]:
    """The bucket's lifecycle rules in the S3 API's shape (PutBucketLifecycleConfiguration)."""
    rules: list[dict[str, Any]] = [
        {
            "ID": "old-versions-and-abandoned-uploads",
            "Status": "Enabled",
            "Filter": {"Prefix": ""},
            "NoncurrentVersionExpiration": {"NoncurrentDays": NONCURRENT_VERSION_DAYS},
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": INCOMPLETE_UPLOAD_DAYS},
        }
    ]
    for expiry in spec.expiries:
        tags = [{"Key": key, "Value": value} for key, value in expiry.tags]
        match: dict[str, Any] = {"Prefix": expiry.prefix}
        if len(tags) == 1 and not expiry.prefix:
            match = {"Tag": tags[0]}
        elif tags:
            match = {"And": {"Prefix": expiry.prefix, "Tags": tags}}
        rules.append({"ID": expiry.rule_id, "Status": "Enabled", "Filter": match, "Expiration": {"Days": expiry.days}})
    return rules
