"""What stores the platform needs, declared once.

CDK (infra/) and the local stack (local/) both provision from these specs, so a table's key or a
bucket's purpose cannot drift between AWS and a laptop. Names come from settings locally and
from the stack (with its stage) on AWS. `existing` marks what already lives in the account and
is referenced there, never created: `always` (the vision cache the migration reuses) or
`optional` (storefront buckets, when context names them). Locally everything is provisioned.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Existing = Literal["never", "optional", "always"]


@dataclass(frozen=True)
class TableSpec:
    """A DynamoDB table: the setting holding its name, its partition key, its TTL attribute."""

    name_setting: str
    partition_key: str
    ttl_attribute: str | None = None
    purpose: str = ""
    existing: Existing = "never"


@dataclass(frozen=True)
class BucketSpec:
    """An S3 bucket: the setting holding its name and what it holds."""

    name_setting: str
    purpose: str
    existing: Existing = "never"


TABLES: tuple[TableSpec, ...] = (
    TableSpec("vision_cache_table", "image_url", None, "per-image vision analyses and embeddings", "always"),
    TableSpec("feature_phrases_table", "phrase_key", None, "classes of feature phrases the taxonomy does not know"),
    TableSpec("jobs_table", "job_id", "expires_at", "image-generation jobs and their results"),
    TableSpec("rate_limit_table", "bucket_id", None, "token buckets shared by every job (provider rate limits)"),
    TableSpec(
        "catalogue_table", "content_id", "expires_at", "stored jewelry images by content (claims, exact duplicates)"
    ),
)

BUCKETS: tuple[BucketSpec, ...] = (
    BucketSpec("alya_bucket", "alya storefront product photos", "optional"),
    BucketSpec("blysk_bucket", "blysk storefront product photos", "optional"),
    BucketSpec("generated_bucket", "generated catalogue images and ZIPs"),
    BucketSpec("artifacts_bucket", "migration manifests, results and backups"),
    BucketSpec("uploads_bucket", "listing documents (and their photos) dropped for ingest"),
)
