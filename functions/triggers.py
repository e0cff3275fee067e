"""Which S3 events and which EventBridge events invoke which function, declared once: read by CDK
(bucket notifications, event rules) and by the local stack (the emulator's notifications and rules,
local/event_rules.py), so the two cannot differ.

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


@dataclass(frozen=True)
class EventTrigger:
    """An EventBridge rule on one of the platform's buses (resources.EVENT_BUSES) whose target is a
    function's `live` alias; a failed invoke is retried by EventBridge, then sent to the function's
    failure queue, its dead-letter queue."""

    rule: str  # the rule's name (on AWS prefixed with the stack's stage)
    bus_setting: str  # the setting naming the bus
    function: str  # a name of functions/specs.py
    source: str
    detail_type: str
    retry_attempts: int = 8  # EventBridge's retries of a failed invoke (throttled, Lambda unavailable)
    max_event_age_s: int = 3600


EVENT_TRIGGERS: tuple[EventTrigger, ...] = (
    # Each finished generation run is delivered to the storefront's webhooks (jewelry/webhook_delivery.py);
    # source and detail-type as jewelry/job_events.py puts them (tests/unit check they agree)
    EventTrigger(
        "job-finished-webhooks",
        "job_events_bus",
        "webhook-delivery",
        source="listing-vision.generation",
        detail_type="Generation job finished",
    ),
)


def event_pattern(trigger: EventTrigger) -> dict[str, list[str]]:
    """The rule's event pattern, as EventBridge's PutRule takes it."""
    return {"source": [trigger.source], "detail-type": [trigger.detail_type]}


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
