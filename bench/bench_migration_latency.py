"""The migration against the seed's per-listing loop at in-region AWS latencies (`latency_proxy`).

Both run against the local stack through two latency proxies (DynamoDB in front of moto,
OpenSearch in front of osmem-server), in the same run, at 1,588 and 20,000 listings:

  ours      one execution of the state machine (Plan → distributed Map, MaxConcurrency 10 → Verify),
            its tasks answered by the migration code with clients pointed at the proxies
  baseline  the seed's loop: per listing, one GetItem per image and one update, sequential
            (measured on the first 200 listings and scaled: it is sequential, one listing after another)

From the 20,000-listing run it models 1,000,000 listings at MaxConcurrency 10 and 40: each Map
batch's measured duration (inside its task), the plan and verify time scaled by listings, us-east-1
on-demand prices, and the OpenSearch update rate that concurrency asks of the domain. S3 requests
(plan manifest, batch records) go to moto directly, without injected latency.
"""

from __future__ import annotations

import json
import os
import statistics
import threading
import time
import uuid
from typing import Any

import boto3
from botocore.config import Config
from opensearchpy import OpenSearch

from bench.figures import Figure
from bench.latency_proxy import LatencyProxy
from infra.constructs.migration import MigrationOptions
from listing_vision import aws
from listing_vision.events import parse_event
from listing_vision.realestate.features import split_visual_features
from listing_vision.realestate.listings_index import ListingsIndex, opensearch_client
from listing_vision.realestate.migration import Migration
from listing_vision.realestate.migration_tasks import MigrationTask, run_task
from listing_vision.realestate.phrase_store import PhraseStore
from listing_vision.realestate.vision_cache import VisionCache
from local import demo_listings as demo
from local.stack import LocalStack
from local.workflow import create_state_machine, synthesize_definition

NAME = "migration_latency"
SIZES = tuple(int(n) for n in os.environ.get("BENCH_LATENCY_SIZES", "1588,20000").split(","))
BASELINE_SAMPLE = 200  # the loop is sequential: its time a listing, scaled
BATCH = 100
# us-east-1 on-demand prices (2026): Lambda x86 $0.0000166667 per GB-s and $0.20 per million
# requests; DynamoDB on-demand $0.125 per million read request units (0.5 RRU per eventually
# consistent read ≤ 4 KB); Step Functions standard $0.025 per 1,000 state transitions.
LAMBDA_GB_S, LAMBDA_REQUEST, RRU, TRANSITION = 0.0000166667, 0.2e-6, 0.125e-6, 0.025e-3
LAMBDA_GB = 1.0  # the migration function's memory (functions/specs.py: 1,024 MB)
TRANSITIONS_PER_BATCH = 4  # child execution: start, task, succeed, plus the Map's own bookkeeping


class Proxied:
    def __init__(self, stack: LocalStack):
        self.dynamodb = LatencyProxy(stack.moto_url, "dynamodb").start()
        self.opensearch = LatencyProxy(stack.opensearch_url, "opensearch").start()
        self.client = boto3.client(
            "dynamodb",
            endpoint_url=self.dynamodb.url,
            region_name=stack.settings.aws_region,
            aws_access_key_id="local",
            aws_secret_access_key="local",
            config=Config(max_pool_connections=50, retries={"mode": "standard"}),
        )
        self.search = OpenSearch(hosts=[self.opensearch.url], timeout=120, pool_maxsize=50)

    def migration(self, stack: LocalStack) -> Migration:
        settings = stack.settings
        return Migration(
            ListingsIndex(self.search, settings.listings_index),
            VisionCache(table=settings.vision_cache_table, client=self.client),
            PhraseStore(),
            settings.artifacts_bucket,
        )

    def stop(self) -> None:
        self.dynamodb.stop()
        self.opensearch.stop()

    def calls(self) -> dict[str, int]:
        return {**self.dynamodb.calls, **{f"os_{k}": v for k, v in self.opensearch.calls.items()}}

    def reset(self) -> None:
        self.dynamodb.reset()
        self.opensearch.reset()


def seed_loop(proxied: Proxied, index: str, table: str, limit: int | None) -> tuple[int, float]:
    """The seed's loop through the proxies: GetItem per image, update per listing, sequential."""
    docs = list(ListingsIndex(opensearch_client(), index).iter_docs_sorted())[:limit]
    started = time.perf_counter()
    for doc in docs:
        analyses = []
        for url in doc.image_urls:
            item = proxied.client.get_item(TableName=table, Key={"image_url": {"S": url}}).get("Item")
            if item:
                analyses.append(json.loads(item["analysis"]["S"]))
        if analyses:
            proxied.search.update(index=index, id=doc.zpid, body={"doc": split_visual_features(analyses).as_fields()})
    return len(docs), time.perf_counter() - started


def run(stack: LocalStack) -> list[Figure]:
    settings = stack.settings
    index, table = settings.listings_index, settings.vision_cache_table
    proxied = Proxied(stack)
    durations: dict[str, list[float]] = {}
    lock = threading.Lock()

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        started = time.perf_counter()
        try:
            return run_task(parse_event(event, MigrationTask), proxied.migration(stack))
        finally:
            with lock:
                durations.setdefault(str(event.get("operation")), []).append(time.perf_counter() - started)

    function = "regenerate-latency-bench"
    stack.router.register(function, handler)
    machine = create_state_machine(
        f"migration-latency-{uuid.uuid4().hex[:6]}",
        synthesize_definition(function, settings.artifacts_bucket, MigrationOptions()),
    )
    sfn = aws.client("stepfunctions")
    search = opensearch_client()
    loaded = search.count(index=index)["count"] if search.indices.exists(index=index) else 0
    figures: list[Figure] = []
    model: dict[str, Any] = {}
    try:
        for size in SIZES:
            if size > loaded:
                started = time.perf_counter()
                demo.load(size, seed=0, start=loaded)
                loaded = size
                print(f"  {size:,} listings loaded in {time.perf_counter() - started:.0f} s", flush=True)
            Migration.from_settings().rollback("remove", batch_size=500)  # direct, not through the proxies
            durations.clear()
            proxied.reset()
            started = time.perf_counter()
            execution = sfn.start_execution(
                stateMachineArn=machine,
                name=f"latency-{uuid.uuid4().hex[:8]}",
                input=json.dumps({"operation": "execute", "batch_size": BATCH}),
            )["executionArn"]
            while (described := sfn.describe_execution(executionArn=execution))["status"] == "RUNNING":
                time.sleep(0.1)
            ours = time.perf_counter() - started
            if described["status"] != "SUCCEEDED":
                raise RuntimeError(f"execution {described['status']}: {described.get('cause')}")
            result = json.loads(described["output"])
            assert result["verify"]["passed"], result["verify"]["failures"]
            ours_calls, batch_times = proxied.calls(), list(durations.get("execute_batch", []))
            fixed = sum(durations.get("plan", [])) + sum(durations.get("finish", []))
            Migration.from_settings().rollback("remove", batch_size=500)
            proxied.reset()
            limit = BASELINE_SAMPLE
            done, seconds = seed_loop(proxied, index, table, limit)
            baseline = seconds * size / done
            loop_calls = proxied.calls()
            label = f"{size:,} listings" + f" (loop scaled from {done:,})"
            baseline_name = "the seed's loop at the same latencies: GetItem per image, update per listing"
            figures.append(Figure(NAME, f"wall time at AWS latencies, {label}", ours, baseline, "s", baseline_name))
            print(
                f"  {size:,}: ours {ours:.1f} s ({len(batch_times)} batches, mean"
                f" {statistics.mean(batch_times):.2f} s, plan+finish {fixed:.1f} s; calls {ours_calls});"
                f" loop {baseline:.0f} s (calls on {done:,}: {loop_calls})",
                flush=True,
            )
            model = {
                "listings": size,
                "batch_s": statistics.mean(batch_times),
                "fixed_s": fixed,
                "loop_s_per_listing": seconds / done,
            }
    finally:
        proxied.stop()
        Migration.from_settings().rollback("remove", batch_size=500)
    figures.extend(million(model))
    return figures


def million(measured: dict[str, Any], listings: int = 1_000_000) -> list[Figure]:
    """1,000,000 listings modelled from the largest run: its mean batch duration and its plan and
    verify time scaled by listings; prices as above."""
    batches = listings // BATCH
    scale = listings / measured["listings"]
    images = 20 * listings  # the demo's mean: 20 images a listing
    figures = []
    for concurrency in (10, 40):
        seconds = batches / concurrency * measured["batch_s"] + measured["fixed_s"] * scale
        cost = (
            batches * measured["batch_s"] * LAMBDA_GB * LAMBDA_GB_S
            + batches * LAMBDA_REQUEST
            + images * 0.5 * RRU
            + batches * TRANSITIONS_PER_BATCH * TRANSITION
        )
        writes = concurrency * BATCH / measured["batch_s"]
        print(
            f"  model 1,000,000 at MaxConcurrency {concurrency}: {seconds / 60:.0f} min, ${cost:.2f},"
            f" OpenSearch {writes:,.0f} partial updates/s while the Map runs",
            flush=True,
        )
        figures.append(
            Figure(
                NAME,
                f"model: 1,000,000 listings, MaxConcurrency {concurrency}"
                f" (${cost:.2f}; OpenSearch {writes:,.0f} updates/s)",
                seconds / 60,
                listings * measured["loop_s_per_listing"] / 60,
                "min",
                "the seed's loop, its measured time a listing × 1,000,000",
            )
        )
    return figures
