"""The migration against the seed's per-listing loop at in-region AWS latencies (`latency_proxy`),
and the model of 1,000,000 listings built from what the run asked of each service (`migration_model`).

Both run against the local stack through two latency proxies (DynamoDB in front of moto,
OpenSearch in front of osmem-server), in the same run, at each size of BENCH_LATENCY_SIZES
(default 2,000 listings, small enough for a 2-core machine; `BENCH_LATENCY_SIZES=2000,20000`
adds the 20,000-listing run, about 15 minutes here with the loading):

  ours      one execution of the state machine (Plan → distributed Map, MaxConcurrency 10 → Verify),
            its tasks answered by the migration code with clients pointed at the proxies
  baseline  the seed's loop: per listing, one GetItem per image and one update, sequential
            (measured on the first 200 listings and scaled: it is sequential, one listing after another)

The largest run is measured by phase (plan, the Map's batches, finish): requests by kind and
their keys/ids/actions (the proxies; S3 at its client), and the migration code's own CPU
(`time.thread_time()` of each task's thread, the emulators excluded). `migration_model` turns
those into 1,000,000 listings at in-region latencies for several MaxConcurrency values and batch
sizes, with the OpenSearch write rate and the cost each asks for, and predicts the measured run
itself at the injected latencies (the cross-check, printed beside the measured time). The record
is written to bench/records/migration_latency.json, which `python -m bench.migration_report
--write-readme` renders into the README.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from opensearchpy import OpenSearch

from bench import migration_model as model
from bench.figures import Figure
from bench.latency_proxy import LatencyProxy
from infra.constructs.migration import MigrationOptions
from listing_vision import aws
from listing_vision.concurrency import worker_cpu
from listing_vision.events import parse_event
from listing_vision.realestate.features import split_visual_features
from listing_vision.realestate.listings_index import ListingsIndex, opensearch_client
from listing_vision.realestate.migration import Migration
from listing_vision.realestate.migration_tasks import MigrationTask, run_task
from listing_vision.realestate.phrase_store import PhraseStore
from listing_vision.realestate.split_records import SplitRecords
from listing_vision.realestate.vision_cache import VisionCache
from local import demo_listings as demo
from local.stack import LocalStack
from local.workflow import create_state_machine, synthesize_definition

NAME = "migration_latency"
SIZES = tuple(int(n) for n in os.environ.get("BENCH_LATENCY_SIZES", "2000").split(","))
RECORD = Path(__file__).parent / "records" / "migration_latency.json"
# Its figures are this record's, rendered by its own report: `python -m bench` writes no
# migration_latency.figures.json (no bench-record block would show it).
SHOWN_BY = "python -m bench.migration_report --write-readme"
BASELINE_SAMPLE = 200  # the loop is sequential: its time a listing, scaled
BATCH = 100
CONCURRENCY = MigrationOptions().max_concurrency  # the measured run's
MODELLED = ((10, 100), (20, 100), (40, 100), (20, 250), (40, 250), (20, 500))  # (MaxConcurrency, batch size)


class TimedMigration(Migration):
    """The migration whose batches' verify parts note their CPU (`time.thread_time()` of the task's
    thread), which the model takes out of a batch for the shape before (verify in one pass)."""

    verify_cpu: list[float] = []  # every batch's, this run (list.append is atomic)

    def verify_batch(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        started = time.thread_time()
        try:
            return super().verify_batch(*args, **kwargs)
        finally:
            self.verify_cpu.append(time.thread_time() - started)


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

    def migration(self, stack: LocalStack, kind: type[Migration] = Migration) -> Migration:
        settings = stack.settings
        return kind(
            ListingsIndex(self.search, settings.listings_index),
            VisionCache(table=settings.vision_cache_table, client=self.client),
            PhraseStore(),
            settings.artifacts_bucket,
            SplitRecords(client=self.client),  # through the DynamoDB proxy: its requests are counted
        )

    def stop(self) -> None:
        self.dynamodb.stop()
        self.opensearch.stop()

    def calls(self) -> dict[str, int]:
        return {**self.dynamodb.calls, **{f"os_{k}": v for k, v in self.opensearch.calls.items()}}

    def units(self) -> dict[str, int]:
        return {**self.dynamodb.units, **{f"os_{k}": v for k, v in self.opensearch.units.items()}}

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


class Phases:
    """Requests and CPU by phase. Plan and finish run alone (before and after the Map), so the
    proxies' counts around them are theirs; the Map's are the rest. S3 is counted at the client
    (a botocore hook), CPU with `time.thread_time()` in each task's thread and its workers."""

    def __init__(self, proxied: Proxied):
        self.proxied = proxied
        self.lock = threading.Lock()
        self.phase = "map"
        self.s3: dict[str, Counter[str]] = {}
        self.requests: dict[str, Counter[str]] = {}
        self.units: dict[str, Counter[str]] = {}
        self.cpu: dict[str, float] = {}
        self.seconds: dict[str, list[float]] = {}
        aws.client("s3").meta.events.register("before-call.s3", self.count_s3)

    def reset(self) -> None:
        self.proxied.reset()
        self.s3, self.requests, self.units, self.cpu, self.seconds = {}, {}, {}, {}, {}
        TimedMigration.verify_cpu.clear()

    def count_s3(self, model: Any, **_: Any) -> None:
        with self.lock:
            self.s3.setdefault(self.phase, Counter())[f"s3_{model.name}"] += 1

    def task(self, operation: str, work: Any) -> Any:
        phase = {"plan": "plan", "finish": "finish", "verify": "one_pass"}.get(operation, "map")
        alone = phase != "map"
        if alone:
            self.phase = phase
            before_requests, before_units = Counter(self.proxied.calls()), Counter(self.proxied.units())
        started, cpu = time.perf_counter(), time.thread_time()
        workers: list[float] = []  # the CPU of the task's own worker threads (concurrency.thread_map)
        token = worker_cpu.set(workers)
        try:
            return work()
        finally:
            worker_cpu.reset(token)
            with self.lock:
                self.cpu[phase] = self.cpu.get(phase, 0.0) + time.thread_time() - cpu + sum(workers)
                self.seconds.setdefault(operation, []).append(time.perf_counter() - started)
                if alone:
                    self.requests[phase] = Counter(self.proxied.calls()) - before_requests
                    self.units[phase] = Counter(self.proxied.units()) - before_units
                    self.phase = "map"

    def measured(self, listings: int, batches: int) -> model.Measured:
        total_requests, total_units = Counter(self.proxied.calls()), Counter(self.proxied.units())
        phases = {}
        for name in ("plan", "finish", "one_pass"):
            total_requests -= self.requests.get(name, Counter())
            total_units -= self.units.get(name, Counter())
        for name in ("plan", "map", "finish", "one_pass"):
            requests = total_requests if name == "map" else self.requests.get(name, Counter())
            units = total_units if name == "map" else self.units.get(name, Counter())
            s3 = self.s3.get(name, Counter())
            phases[name] = model.Phase(dict(requests + s3), dict(units + s3), round(self.cpu.get(name, 0.0), 4))
        one_pass = phases.pop("one_pass") if "one_pass" in self.cpu else None
        verify_cpu = round(sum(TimedMigration.verify_cpu), 4)
        return model.Measured(listings, BATCH, batches, **phases, one_pass=one_pass, verify_cpu_s=verify_cpu)


def run(stack: LocalStack) -> list[Figure]:
    settings = stack.settings
    index, table = settings.listings_index, settings.vision_cache_table
    proxied = Proxied(stack)
    phases = Phases(proxied)

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        operation = str(event.get("operation"))
        task = parse_event(event, MigrationTask)
        return phases.task(operation, lambda: run_task(task, proxied.migration(stack, TimedMigration)))

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
    record: dict[str, Any] = {}
    try:
        for size in SIZES:
            if size > loaded:
                started = time.perf_counter()
                demo.load(size, seed=0, start=loaded)
                loaded = size
                print(f"  {size:,} listings loaded in {time.perf_counter() - started:.0f} s", flush=True)
            Migration.from_settings().rollback("remove", batch_size=500)  # direct, not through the proxies
            phases.reset()
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
            # verify in one pass over the index, as finish ran it before the batches verified their
            # parts: measured alone (for the model's shape before), and the same report
            one_pass = phases.task("verify", lambda: proxied.migration(stack).verify_one_pass())
            assert one_pass == result["verify"], (one_pass, result["verify"])
            measured = phases.measured(size, len(phases.seconds.get("execute_batch", [])))
            Migration.from_settings().rollback("remove", batch_size=500)
            proxied.reset()
            done, seconds = seed_loop(proxied, index, table, BASELINE_SAMPLE)
            loop_calls = proxied.calls()
            baseline = seconds * size / done
            label = f"{size:,} listings (loop scaled from {done:,})"
            baseline_name = "the seed's loop at the same latencies: GetItem per image, update per listing"
            figures.append(Figure(NAME, f"wall time at AWS latencies, {label}", ours, baseline, "s", baseline_name))
            ours_per_listing = sum(measured.requests_per_listing().values())
            loop_per_listing = sum(loop_calls.values()) / done
            figures.append(
                Figure(
                    NAME,
                    f"requests per listing, {size:,} listings (plan, batches, records, verify)",
                    ours_per_listing,
                    loop_per_listing,
                    "requests",
                    "the seed's loop: GetItem per image, update per listing",
                )
            )
            check = model.cross_check(measured, CONCURRENCY)
            print(
                f"  {size:,}: ours {ours:.1f} s, the model's prediction at the injected latencies"
                f" {check.seconds:.1f} s (plan {check.plan_s:.1f}, Map {check.map_s:.1f}, finish {check.finish_s:.1f});"
                f" requests {measured.to_json()}; loop {baseline:.0f} s (calls on {done:,}: {loop_calls})",
                flush=True,
            )
            figures.append(
                Figure(
                    NAME,
                    f"the model's prediction of this run, {size:,} listings at the injected latencies",
                    check.seconds,
                    ours,
                    "s",
                    "measured (emulators' CPU and the local Step Functions included)",
                )
            )
            record = {
                "measured": measured.to_json(),
                "wall_s": ours,
                "predicted_s": check.seconds,
                "loop_s_per_listing": seconds / done,
                "loop_requests_per_listing": loop_per_listing,
                "requests_per_listing": measured.requests_per_listing(),
            }
    finally:
        proxied.stop()
        Migration.from_settings().rollback("remove", batch_size=500)
    figures.extend(million(record))
    RECORD.parent.mkdir(parents=True, exist_ok=True)
    RECORD.write_text(json.dumps(record | {"date": time.strftime("%Y-%m-%d")}, indent=2) + "\n")
    return figures


def million(record: dict[str, Any], listings: int = 1_000_000) -> list[Figure]:
    """1,000,000 listings at in-region latencies (`migration_model.AWS`), per (MaxConcurrency,
    batch size), against the seed's loop's measured time a listing × 1,000,000."""
    measured = model.Measured.from_json(record["measured"])
    loop_min = listings * record["loop_s_per_listing"] / 60
    figures = []
    for concurrency, batch_size in MODELLED:
        p = model.predict(measured, model.AWS, listings, batch_size, concurrency)
        before = model.predict(measured, model.AWS, listings, batch_size, concurrency, shape=model.ONE_PASS)
        print(
            f"  model 1,000,000, MaxConcurrency {concurrency}, batches of {batch_size}: {p.seconds / 60:.1f} min"
            f" (plan {p.plan_s:.0f} s, Map {p.map_s:.0f} s at {p.batch_s:.2f} s a batch, finish {p.finish_s:.0f} s),"
            f" ${p.dollars:.2f} {dict((k, round(v, 2)) for k, v in p.cost.items())},"
            f" OpenSearch {p.docs_per_s:,.0f} docs/s; with verify in one pass in finish (before this change)"
            f" {before.seconds / 60:.1f} min (Map {before.map_s:.0f} s, finish {before.finish_s:.0f} s)",
            flush=True,
        )
        figures.append(
            Figure(
                NAME,
                f"model: 1,000,000 listings, MaxConcurrency {concurrency}, batches of {batch_size}"
                f" (${p.dollars:.2f}; OpenSearch {p.docs_per_s:,.0f} updates/s)",
                p.seconds / 60,
                loop_min,
                "min",
                "the seed's loop, its measured time a listing × 1,000,000",
            )
        )
    return figures
