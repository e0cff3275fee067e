"""Duplicate detection: everything it may touch, in one place.

Functions: `dedupe` (the API: check, store, index; presigned uploads and their status),
`dedupe-indexer` (S3 ObjectCreated and ObjectRemoved on the storefront buckets; failures to its queue),
`dedupe-backfill` (one page of a bucket per direct invoke) and `dedupe-reconcile` (hourly, on a
schedule: the catalogue's objects, records and vectors compared and repaired). They reach: the storefront buckets
(catalogue writes, presigned uploads under incoming/, object reads and tags), the content
registry table, the CLIP endpoint, and Milvus (its token secret; the VPC when Milvus is private).
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from constructs import Construct

from infra.constructs.platform import Platform, allow, wire_s3_triggers
from infra.constructs.service_function import ServiceFunction
from listing_vision.resources import IMAGES_BY_WEBSITE, VERDICTS_BY_WEBSITE

FUNCTION_NAMES = ("dedupe", "dedupe-indexer", "dedupe-backfill", "dedupe-reconcile")
INDEXERS = ("dedupe-indexer", "dedupe-backfill", "dedupe-reconcile")  # index objects (inbox uploads by copy)
# The catalogue's content records: claims (conditional writes) and, in one BatchGetItem per check,
# the duplicate candidates' verification features.
CLAIMS = [
    "dynamodb:GetItem",
    "dynamodb:BatchGetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
]


class Dedupe(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, platform: Platform) -> None:
        super().__init__(scope, construct_id)
        self.functions: dict[str, ServiceFunction] = {
            name: platform.function(self, name, in_vpc=True) for name in FUNCTION_NAMES
        }
        buckets = platform.storefront_buckets()
        for function in self.functions.values():
            allow(function, CLAIMS, [platform.table_arn("catalogue_table")])
            platform.clip.grant_invoke(function.role)
            platform.read_secret(function, "milvus")
            allow(
                function,
                ["s3:GetObject"],
                [bucket.arn_for_objects("*") for bucket in buckets],
                "Presigned GETs answer any stored image or duplicate, and the indexers read whatever arrived: "
                "console and bulk uploads may use any key of a storefront bucket.",
            )
            # The API lists an upload's status, the backfill and the reconcile their pages, and the indexer
            # reads objects an S3 event names, which may be gone by then: S3 answers a missing object 404
            # only to a lister, else 403.
            allow(function, ["s3:ListBucket"], [bucket.bucket_arn for bucket in buckets])
        api = self.functions["dedupe"]
        catalogue = "New photos are stored under catalogue/ with keys made from their content (sha256)."
        allow(api, ["s3:PutObject"], [bucket.arn_for_objects("catalogue/*") for bucket in buckets], catalogue)
        rolled_back = (
            "A new photo that loses to a near-duplicate stored at the same moment is deleted again, and "
            "DELETE /images/{id} deletes a stored photo: both only under catalogue/, where the API stores."
        )
        allow(api, ["s3:DeleteObject"], [bucket.arn_for_objects("catalogue/*") for bucket in buckets], rolled_back)
        incoming = "Presigned uploads go under incoming/<upload id>, an id made per request."
        allow(api, ["s3:PutObject"], [bucket.arn_for_objects("incoming/*") for bucket in buckets], incoming)
        allow(api, ["s3:GetObjectTagging"], [bucket.arn_for_objects("incoming/*") for bucket in buckets], incoming)
        copies = "A presigned upload's photo is copied from its inbox (incoming/) to its content key under catalogue/."
        for name in INDEXERS:
            allow(self.functions[name], ["s3:PutObject"], [b.arn_for_objects("catalogue/*") for b in buckets], copies)
            tags = ["s3:GetObjectTagging", "s3:PutObjectTagging"]
            allow(
                self.functions[name],
                tags,
                [bucket.arn_for_objects("*") for bucket in buckets],
                "Each indexed object, under whatever key it arrived, gets its outcome as tags.",
            )
        reconcile = self.functions["dedupe-reconcile"]
        allow(reconcile, ["dynamodb:Scan"], [platform.table_arn("catalogue_table")], "Every record of a storefront.")
        # GET /verdicts and GET /images: a storefront's verdicts and its stored images, newest first
        # (verdicts.py, image_listing.py), each from its index alone
        allow(
            api,
            ["dynamodb:Query"],
            [
                f"{platform.table_arn('catalogue_table')}/index/{index.name}"
                for index in (VERDICTS_BY_WEBSITE, IMAGES_BY_WEBSITE)
            ],
        )
        events.Rule(
            self,
            "ReconcileHourly",
            schedule=events.Schedule.rate(Duration.hours(1)),
            targets=[targets.LambdaFunction(reconcile.alias, event=events.RuleTargetInput.from_object({}))],
        )
        wire_s3_triggers(self.functions, platform.storage.buckets, platform.config.storefront_names)
