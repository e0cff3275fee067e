"""Which S3 events invoke which function, declared once: read by CDK (bucket notifications) and by
the local stack (the emulator's notifications), so the two cannot differ.

Generated catalogue images go to their own bucket, so nothing the platform generates is ever
indexed as a catalogue photo.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from listing_vision.storefronts import bucket_setting

# Stands for each storefront's bucket: a trigger on it is one trigger per configured storefront.
EACH_STOREFRONT = "each_storefront_bucket"


@dataclass(frozen=True)
class S3Trigger:
    bucket_setting: str  # the setting (listing_vision.config) naming the bucket
    function: str  # a name of functions/specs.py
    events: tuple[str, ...] = ("s3:ObjectCreated:*",)
    prefix: str = ""
    suffix: str = ""


S3_TRIGGERS: tuple[S3Trigger, ...] = (
    # Images put straight into a storefront bucket (console, bulk, presigned uploads) are indexed.
    S3Trigger(EACH_STOREFRONT, "dedupe-indexer"),
    # A photo deleted in a storefront bucket takes its vector and catalogue record with it (any key: a
    # console upload is indexed where it lies; removals of keys no image was stored at change nothing).
    S3Trigger(EACH_STOREFRONT, "dedupe-indexer", events=("s3:ObjectRemoved:*",)),
    # Listing documents dropped into the uploads bucket are ingested (photos beside them are not).
    S3Trigger("uploads_bucket", "listing-ingest", suffix=".json"),
)


def s3_triggers(storefronts: Iterable[str]) -> list[S3Trigger]:
    """The triggers with each storefront's bucket named: what CDK and the local stack subscribe."""
    names = list(storefronts)
    expanded: list[S3Trigger] = []
    for trigger in S3_TRIGGERS:
        if trigger.bucket_setting == EACH_STOREFRONT:
            expanded.extend(replace(trigger, bucket_setting=bucket_setting(name)) for name in names)
        else:
            expanded.append(trigger)
    return expanded
