"""Real-estate listings: everything the ingest and the migration may touch, in one place.

Functions: `listing-ingest` (S3 ObjectCreated on the uploads bucket, `.json` documents; failures to
its queue), `listing-search` (GET /listings/search: it only searches the listings index) and
`migration` (the tasks of the visual-features state machine, built here too).
They reach: the existing vision-cache table (read; ingest also caches new analyses; the migration's
classify-phrases scans it), the phrase cache table (read by both splits; classify-phrases writes
it), the split records table (what each listing's split came from: both write it, the migration
reads it to find stale splits), the existing OpenSearch domain (the listings index; the migration
pages with search_after, no scrolls), the uploads bucket (documents and photos; tags on invalid
documents), the artifacts bucket (manifests, batch results, backups), the CLIP endpoint (ingest),
Anthropic's key secret (ingest's analyses, classify-phrases), and the VPC when OpenSearch is
private.
"""

from __future__ import annotations

from aws_cdk import ArnFormat, Stack
from constructs import Construct

from infra.constructs.migration import STATE_MACHINE_NAME, MigrationOptions, VisualFeaturesMigration
from infra.constructs.platform import Platform, allow, wire_s3_triggers
from infra.constructs.service_function import ServiceFunction


class Listings(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, platform: Platform) -> None:
        super().__init__(scope, construct_id)
        config = platform.config
        ingest = platform.function(self, "listing-ingest", in_vpc=True)
        search = platform.function(self, "listing-search", in_vpc=True)
        migration = platform.function(self, "migration", in_vpc=True)
        self.functions: dict[str, ServiceFunction] = {
            "listing-ingest": ingest,
            "listing-search": search,
            "migration": migration,
        }
        # Search reads the listings index (its `_search` and `_mget` paths) and the last run's record only
        allow(search, ["es:ESHttpPost"], platform.opensearch_paths("{index}/_search"))
        # GET /listings/{zpid} reads one listing's shown fields: an `_mget` of its id
        allow(search, ["es:ESHttpPost"], platform.opensearch_paths("{index}/_mget"))
        cache = platform.table_arn("vision_cache_table")
        phrases = platform.table_arn("feature_phrases_table")
        uploads = platform.bucket("uploads_bucket")
        sources = ",".join(filter(None, [f"s3://{uploads.bucket_name}/", config.listing_image_sources]))
        ingest.function.add_environment("LISTING_IMAGE_SOURCES", sources)
        allow(ingest, ["dynamodb:BatchGetItem", "dynamodb:PutItem"], [cache])
        allow(ingest, ["dynamodb:BatchGetItem"], [phrases])  # the stored classes of unknown phrases
        splits = platform.table_arn("listing_splits_table")
        # What each split came from: written with the listing, read back on a re-delivery
        allow(ingest, ["dynamodb:BatchGetItem", "dynamodb:PutItem"], [splits])
        allow(
            ingest,
            ["s3:GetObject", "s3:PutObjectTagging"],
            [uploads.arn_for_objects("*")],
            "Listing documents and their photos arrive under any key of the uploads bucket.",
        )
        # OpenSearch: exactly the requests each makes (the permission test holds this to the recorded calls)
        allow(ingest, ["es:ESHttpPost"], platform.opensearch_paths("{index}/_mget"))
        # Before a new listing is indexed, the index must exist: indexing would create it with a guessed mapping
        allow(ingest, ["es:ESHttpHead"], platform.opensearch_paths("{index}"))
        allow(
            ingest,
            ["es:ESHttpPut"],
            platform.opensearch_paths("{index}/_doc/*"),
            "A listing is indexed as the document of its zpid in the one listings index.",
        )
        platform.clip.grant_invoke(ingest.role)
        platform.read_secret(ingest, "anthropic")
        # classify-phrases scans the cache and writes the phrase cache; coverage scans the latter
        allow(migration, ["dynamodb:BatchGetItem", "dynamodb:Scan"], [cache])
        allow(migration, ["dynamodb:BatchGetItem", "dynamodb:BatchWriteItem", "dynamodb:Scan"], [phrases])
        # execute, dry_run and coverage read the split records a batch at a time; execute writes them
        allow(migration, ["dynamodb:BatchGetItem", "dynamodb:BatchWriteItem"], [splits])
        # classify-phrases asks Anthropic (the listings' provider, the one key this role may read)
        platform.read_secret(migration, "anthropic")
        migration.function.add_environment("PHRASE_CLASSIFIER", "anthropic")
        artifacts = platform.bucket("artifacts_bucket")
        # GET /listings/migration shows the last finished run, which the migration's finish step records,
        # and the run going, which its plan step records: how many batch records it has left so far is
        # a listing of the run's batches prefix, the one prefix the search function may list
        allow(
            search,
            ["s3:GetObject"],
            [artifacts.arn_for_objects(key) for key in ("migrations/last-run.json", "migrations/current-run.json")],
        )
        allow(
            search,
            ["s3:ListBucket"],
            [artifacts.bucket_arn],
            conditions={"StringLike": {"s3:prefix": ["migrations/*/batches/*"]}},
        )
        allow(
            migration,
            ["s3:GetObject", "s3:PutObject"],
            [artifacts.arn_for_objects("*")],
            "Manifests, batch results and backups are objects of the artifacts bucket, named per run.",
        )
        # A backup named with a typo must read as not there (NoSuchKey, `backup_not_found`), which S3
        # answers only to a caller that may list the bucket; without it, AccessDenied says nothing.
        allow(migration, ["s3:ListBucket"], [artifacts.bucket_arn])
        allow(
            migration,
            ["es:ESHttpPost"],
            platform.opensearch_paths("{index}/_mget", "{index}/_search", "{index}/_refresh", "{index}/_bulk"),
        )
        allow(migration, ["es:ESHttpPut"], platform.opensearch_paths("{index}/_mapping"))
        wire_s3_triggers(self.functions, platform.storage.buckets, platform.config.storefront_names)
        machine_name = config.name(STATE_MACHINE_NAME)
        # One run at a time: a Plan finding the lease held asks Step Functions whether the execution
        # holding it still runs (named by the state machine's name: its ARN would make a cycle)
        # (and GET /listings/migration whether the run it shows going still runs)
        executions = Stack.of(self).format_arn(
            service="states",
            resource="execution",
            resource_name=f"{machine_name}:*",
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        for function in (migration, search):
            allow(
                function,
                ["states:DescribeExecution"],
                [executions],
                "Executions are named per run; the lease names the one holding it.",
            )
        self.migration = VisualFeaturesMigration(
            self,
            "VisualFeaturesMigration",
            function=migration.alias,
            artifacts=artifacts,
            options=MigrationOptions(
                max_concurrency=config.migration_max_concurrency,
                tolerated_failure_percentage=config.migration_tolerated_failure_percentage,
                batch_size=config.migration_batch_size,
                bulk_size=config.migration_bulk_size,
            ),
            name=machine_name,
        )
