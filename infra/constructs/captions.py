"""Captions: everything they may touch, in one place.

Function: `caption` (the API). It runs the duplicate check first (the content registry, the CLIP
endpoint, Milvus), asks OpenAI or Anthropic for the caption (their key secrets), and stores a new
photo in its storefront bucket under catalogue/. A request with an `Idempotency-Key` is recorded in the
idempotency table (Powertools idempotency), so its retry is answered from there.
"""

from __future__ import annotations

from constructs import Construct

from infra.constructs.dedupe import CLAIMS
from infra.constructs.platform import IDEMPOTENCY, Platform, allow


class Captions(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, platform: Platform) -> None:
        super().__init__(scope, construct_id)
        self.function = platform.function(self, "caption", in_vpc=True)
        self.functions = {"caption": self.function}
        buckets = platform.storefront_buckets()
        allow(self.function, CLAIMS, [platform.table_arn("catalogue_table")])
        allow(self.function, IDEMPOTENCY, [platform.table_arn("idempotency_table")])
        allow(
            self.function,
            ["s3:GetObject"],
            [bucket.arn_for_objects("*") for bucket in buckets],
            "Presigned GETs answer the stored photo or the duplicate found, under any key of the bucket.",
        )
        allow(
            self.function,
            ["s3:PutObject"],
            [bucket.arn_for_objects("catalogue/*") for bucket in buckets],
            "New photos are stored under catalogue/ with keys made from their content (sha256).",
        )
        allow(
            self.function,
            ["s3:DeleteObject"],
            [bucket.arn_for_objects("catalogue/*") for bucket in buckets],
            "A new photo that loses to a near-duplicate stored at the same moment is deleted again.",
        )
        platform.clip.grant_invoke(self.function.role)
        for secret in ("milvus", "openai", "anthropic"):
            platform.read_secret(self.function, secret)
