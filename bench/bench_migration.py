"""The visual-features migration end to end on the local stack, against a sequential per-listing loop.

Ours: one execution of the state machine (Plan → distributed Map over batches of 100 → Verify),
every task run by the real regenerate handler: BatchGetItem in chunks of 100, one bulk request
of guarded partial updates per batch. Baseline, same run, same data: a sequential loop, one
GetItem per image and one update per listing, sequentially. At 20,000 listings the baseline is
measured on the first 1,000 listings and scaled linearly (it is sequential by construction).
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from bench.figures import Figure
from listing_vision import aws
from listing_vision.realestate.features import split_visual_features
from listing_vision.realestate.listings_index import ListingsIndex, opensearch_client
from listing_vision.realestate.migration import Migration
from local import demo_listings as demo
from local.stack import LocalStack

NAME = "migration"
SIZES = (1_588, 20_000)
BASELINE_SAMPLE = 1_000


def per_listing_loop(index: str, table: str, limit: int | None = None) -> tuple[int, float]:
    """The per-listing loop: GetItem per image, update per listing, sequential."""
    dynamodb = aws.client("dynamodb")
    search = opensearch_client()
    docs = sorted(ListingsIndex(search, index).scan_docs(), key=lambda d: d.zpid)[:limit]
    started = time.perf_counter()
    for doc in docs:
        analyses = []
        for url in doc.image_urls:
            item = dynamodb.get_item(TableName=table, Key={"image_url": {"S": url}}).get("Item")
            if item:
                analyses.append(json.loads(item["analysis"]["S"]))
        if analyses:
            search.update(index=index, id=doc.zpid, body={"doc": split_visual_features(analyses).as_fields()})
    return len(docs), time.perf_counter() - started


def clear_split_fields() -> None:
    """The configured index (the stack's) without the three fields."""
    Migration.from_settings().rollback("remove", batch_size=500)


def run_state_machine(stack: LocalStack, payload: dict[str, Any]) -> tuple[dict[str, Any], float]:
    sfn = aws.client("stepfunctions")
    started = time.perf_counter()
    execution = sfn.start_execution(
        stateMachineArn=stack.migration_arn, name=f"bench-{uuid.uuid4().hex[:8]}", input=json.dumps(payload)
    )["executionArn"]
    while (described := sfn.describe_execution(executionArn=execution))["status"] == "RUNNING":
        time.sleep(0.1)
    elapsed = time.perf_counter() - started
    if described["status"] != "SUCCEEDED":
        raise RuntimeError(f"migration execution {described['status']}: {described.get('cause')}")
    return json.loads(described["output"]), elapsed


def run(stack: LocalStack) -> list[Figure]:
    settings = stack.settings
    index, table = settings.listings_index, settings.vision_cache_table
    search = opensearch_client()
    figures: list[Figure] = []
    loaded = search.count(index=index)["count"] if search.indices.exists(index=index) else 0
    for size in SIZES:
        started = time.perf_counter()
        if size > loaded:
            demo.load(size, seed=0)  # ids are stable per seed: a larger load extends the smaller one
            loaded = size
        print(f"  {size:,} listings loaded in {time.perf_counter() - started:.0f} s", flush=True)
        clear_split_fields()
        result, ours = run_state_machine(stack, {"operation": "execute", "batch_size": 100})
        assert result["verify"]["passed"], result["verify"]["failures"]
        migrated = result["counts"].get("updated", 0)
        clear_split_fields()
        limit = None if size <= BASELINE_SAMPLE * 2 else BASELINE_SAMPLE
        done, seconds = per_listing_loop(index, table, limit)
        baseline = seconds * size / done
        label = f"{size:,} listings" + ("" if limit is None else " (baseline scaled from 1,000)")
        baseline_name = "per-listing loop: GetItem per image, update per listing, sequential"
        figures.append(Figure(NAME, f"wall time, {label}", ours, baseline, "s", baseline_name))
        figures.append(
            Figure(
                NAME,
                f"listings/s, {label}",
                size / ours,
                size / baseline,
                "listings/s",
                baseline_name,
                higher_is_better=True,
            )
        )
        print(f"  {size:,}: ours {ours:.1f} s ({migrated:,} updated), per-listing loop {baseline:.1f} s", flush=True)
    clear_split_fields()
    return figures
