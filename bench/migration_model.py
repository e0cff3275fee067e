"""The migration's wall time and cost at scale, modelled from what it asks of each service.

Inputs are measured by `bench_migration_latency` on a local run, none of them the emulators' time:
  requests by kind, per phase (plan, the Map's batches, finish), counted on the wire (the latency
  proxies: DynamoDB, OpenSearch) and at the S3 client (a botocore hook), with their units (keys of
  a BatchGetItem, actions of a _bulk, ids of an mget);
  the migration code's own CPU, `time.thread_time()` of the task's thread: the library and its
  clients (serialising, parsing), never the emulators or proxies (other threads).
The model adds, per batch, each request's latency (the requests of a batch are sequential) and the
code's CPU at Lambda's share of a vCPU, plus the fixed cost of a Map child (its start, the Lambda
invoke); batches run `concurrency` at a time; plan and finish run alone, before and after.

Each batch verifies its own part of the index once written (`Verify.verify_batch`: one search of
ids, one mget), so finish only reads the batches' records (their number follows the batches, 16 at
a time) and counts the fields (one aggregation): its CPU follows the batches, its other requests
are fixed. `ONE_PASS` models the shape before, from the same run: the batches without their
verify part (its CPU measured apart, its two requests), and finish's records plus today's verify
in one pass over the index (measured in the run, alone), scaled by listings.

The latencies are assumptions for one region, warm connections, items ≤ 4 KB (no AWS account
here), each with its source; `INJECTED` are the latency proxies' own, for the cross-check against
the measured run.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from bench import latency_proxy
from listing_vision.realestate.migration.plan import RECORD_READS
from listing_vision.realestate.vision_cache import READ_PARALLELISM

MS = 0.001


@dataclass(frozen=True)
class Latencies:
    """Seconds a request takes, as a fixed part and a part per unit (key, id, action)."""

    batch_get_item: tuple[float, float]  # + per key
    mget: tuple[float, float]  # + per id
    bulk: tuple[float, float]  # + per action (partial update)
    search: tuple[float, float]  # a page of search_after / a count; + per hit
    s3_put: float
    s3_get: float
    other: float
    map_child_start: float  # a distributed Map child execution started and its task scheduled
    lambda_invoke: float  # a warm invoke's own overhead
    lambda_cold_start: float  # once per concurrent container
    cpu_share: float  # the function's share of one vCPU (CPU seconds → wall seconds)

    def of(self, kind: str, requests: float, units: float) -> float:
        """Seconds for `requests` requests of `kind` carrying `units` units in all."""
        pairs = {
            "BatchGetItem": self.batch_get_item,
            "os_mget": self.mget,
            "os_bulk": self.bulk,
            "os_search": self.search,
        }
        if kind in pairs:
            fixed, per_unit = pairs[kind]
            return requests * fixed + units * per_unit
        if kind in ("s3_PutObject", "s3_CreateMultipartUpload", "s3_UploadPart", "s3_CompleteMultipartUpload"):
            return requests * self.s3_put
        if kind == "s3_GetObject":
            return requests * self.s3_get
        return requests * self.other


# In-region AWS, assumed (sources beside each):
AWS = Latencies(
    # DynamoDB: "single-digit millisecond" reads; a BatchGetItem's 100 keys are read in parallel
    # server-side, so it costs a few GetItems: 5 ms + 0.1 ms a key (15 ms for 100).
    batch_get_item=(5 * MS, 0.1 * MS),
    # OpenSearch Service, r6g.large data nodes: a real-time mget 5 ms + 0.05 ms an id; a _bulk of
    # partial updates (each a get and a re-index on primary and replica) 10 ms + 0.5 ms an action;
    # a search_after page 20 ms.
    mget=(5 * MS, 0.05 * MS),
    bulk=(10 * MS, 0.5 * MS),
    search=(20 * MS, 0),  # a page: 5,000 ids (plan) or 200 sources (verify)
    # S3: small-object PUT and GET first-byte latency in-region, 20–30 ms (AWS S3 performance guidelines:
    # "100–200 ms" is the tail; small objects typically 20–30 ms).
    s3_put=30 * MS,
    s3_get=20 * MS,
    other=10 * MS,
    # Step Functions distributed Map: a child execution's start and its Lambda task's scheduling,
    # ≈ 100 ms (state transitions are tens of ms each; a Standard child has start, task, end).
    map_child_start=100 * MS,
    lambda_invoke=20 * MS,
    # The migration function's cold start: its layers imported (README Cold starts: ≈ 0.5–0.9 s
    # for the handlers measured) plus Lambda's own init, ≈ 1.5 s.
    lambda_cold_start=1.5,
    # Lambda gives 1 vCPU at 1,769 MB; the migration function has 1,024 MB (functions/specs.py).
    cpu_share=1024 / 1769,
)

# The latency proxies' own latencies (bench/latency_proxy.py); S3 and the local Step Functions
# have none injected, and the local CPU is the machine's own (share 1).
INJECTED = Latencies(
    batch_get_item=(4 * MS, 0.2 * MS),
    mget=(5 * MS, 0.1 * MS),
    bulk=(10 * MS, 1 * MS),
    search=(10 * MS, 0),
    s3_put=0.0,
    s3_get=0.0,
    other=5 * MS,
    map_child_start=0.0,
    lambda_invoke=0.0,
    lambda_cold_start=0.0,
    cpu_share=1.0,
)
assert latency_proxy.opensearch_latency("search", b"") == INJECTED.search[0]  # kept in step

# us-east-1 on-demand prices (2026).
LAMBDA_GB_S = 0.0000166667  # x86, per GB-second
LAMBDA_REQUEST = 0.20e-6
LAMBDA_GB = 1.0  # the migration function's memory (functions/specs.py: 1,024 MB)
RRU = 0.125e-6  # DynamoDB on-demand, per read request unit (0.5 per eventually consistent read ≤ 4 KB)
TRANSITION = 0.025e-3  # Step Functions Standard, per state transition
S3_PUT, S3_GET = 0.005e-3, 0.0004e-3  # per request
# State transitions of one batch's Standard child execution on its success path (start, the
# Migrate batch task, end) and the Map's own bookkeeping for the item.
TRANSITIONS_PER_BATCH = 4

# Requests whose number follows the batch's keys (a BatchGetItem reads at most 100); the others
# are a fixed number per batch (one mget, one bulk, one batch record) at the sizes modelled (≤ 500).
PER_KEY = ("BatchGetItem",)

# Requests of a kind the code has in flight at once (the rest go one after another): a batch's
# cache reads (vision_cache.READ_PARALLELISM) and finish's batch records (plan.RECORD_READS).
# SEQUENTIAL is the code before they were (the record's run may predate them: `today`).
PARALLEL: dict[str, int] = {"BatchGetItem": READ_PARALLELISM, "s3_GetObject": RECORD_READS}
SEQUENTIAL: dict[str, int] = {}


@dataclass
class Phase:
    """What one phase asked of the services: requests and units by kind, and the code's CPU."""

    requests: dict[str, float] = field(default_factory=dict)
    units: dict[str, float] = field(default_factory=dict)
    cpu_s: float = 0.0

    def seconds(self, latencies: Latencies, scale: float = 1.0, parallel: Mapping[str, int] = SEQUENTIAL) -> float:
        """Wall seconds: each kind's requests `parallel[kind]` at a time (else one after another), and the CPU."""
        io = 0.0
        for kind, n in self.requests.items():
            count = n * scale
            if not count:
                continue
            waves = math.ceil(count / parallel.get(kind, 1))
            io += latencies.of(kind, count, self.units.get(kind, 0) * scale) * waves / count
        return io + self.cpu_s * scale / latencies.cpu_share

    def to_json(self) -> dict[str, Any]:
        return {"requests": self.requests, "units": self.units, "cpu_s": self.cpu_s}


# The requests a batch's verify part makes (`Verify.verify_batch`, a run over the index, no backup):
# the ids of its range (one search page) and their sources (one mget of the batch's ids).
VERIFY_BATCH_REQUESTS = {"os_search": 1, "os_mget": 1}
PARTS, ONE_PASS = "parts", "one_pass"  # finish's shape: adding the batches' parts up; verify in one pass


@dataclass
class Measured:
    listings: int
    batch_size: int
    batches: int
    plan: Phase
    map: Phase  # every batch together
    finish: Phase
    one_pass: Phase | None = None  # verify in one pass over the index, as finish ran it before (measured alone)
    verify_cpu_s: float = 0.0  # the batches' verify parts' CPU, within map.cpu_s

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Measured:
        phases = {name: Phase(**data[name]) for name in ("plan", "map", "finish")}
        one_pass = Phase(**data["one_pass"]) if data.get("one_pass") else None
        return cls(
            data["listings"],
            data["batch_size"],
            data["batches"],
            **phases,
            one_pass=one_pass,
            verify_cpu_s=data.get("verify_cpu_s", 0.0),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "listings": self.listings,
            "batch_size": self.batch_size,
            "batches": self.batches,
            **{name: getattr(self, name).to_json() for name in ("plan", "map", "finish")},
            **({"one_pass": self.one_pass.to_json()} if self.one_pass else {}),
            "verify_cpu_s": self.verify_cpu_s,
        }

    def requests_per_listing(self) -> dict[str, float]:
        kinds: dict[str, float] = {}
        for phase in (self.plan, self.map, self.finish):
            for kind, n in phase.requests.items():
                kinds[kind] = kinds.get(kind, 0) + n / self.listings
        return kinds

    def batch(self, batch_size: int, shape: str = PARTS) -> Phase:
        """One batch of `batch_size` listings: key-bound requests scaled by listings, the rest per batch
        (ONE_PASS: without its verify part)."""
        requests: dict[str, float] = {}
        units: dict[str, float] = {}
        verifying = shape == PARTS or not self.one_pass
        for kind, n in self.map.requests.items():
            per_unit = self.map.units.get(kind, 0) / self.listings
            if kind in PER_KEY:
                keys = per_unit * batch_size
                requests[kind] = max(1, math.ceil(n / self.listings * batch_size))
                units[kind] = round(keys)
            else:
                requests[kind] = max(1, round(n / self.batches))
                units[kind] = round(per_unit * batch_size)
                if not verifying and kind in VERIFY_BATCH_REQUESTS:
                    dropped = VERIFY_BATCH_REQUESTS[kind]
                    requests[kind] -= dropped  # a search page of ids is 1 unit; an mget, the batch's ids
                    units[kind] -= dropped if kind == "os_search" else batch_size
                    requests = {k: v for k, v in requests.items() if v > 0}
        cpu = self.map.cpu_s - (0.0 if verifying else self.verify_cpu_s)
        return Phase(requests, units, cpu / self.listings * batch_size)

    def finish_seconds(
        self, latencies: Latencies, listings: int, batches: int, shape: str, parallel: Mapping[str, int]
    ) -> float:
        """finish: the batches' records (GETs and CPU follow the batches; the aggregation is one
        request whatever the size), plus, ONE_PASS, verify's pass over the index (scaled by listings)."""
        per_batch = batches / self.batches
        requests = {k: n * per_batch if k == "s3_GetObject" else n for k, n in self.finish.requests.items()}
        records = Phase(requests, {}, self.finish.cpu_s * per_batch)
        seconds = records.seconds(latencies, parallel=parallel)
        if shape == ONE_PASS and self.one_pass:
            seconds += self.one_pass.seconds(latencies, listings / self.listings, parallel)
        return seconds


@dataclass(frozen=True)
class Prediction:
    listings: int
    batch_size: int
    concurrency: int
    batch_s: float
    plan_s: float
    map_s: float
    finish_s: float
    docs_per_s: float  # the OpenSearch partial-update rate the Map asks for
    cost: dict[str, float]

    @property
    def seconds(self) -> float:
        return self.plan_s + self.map_s + self.finish_s

    @property
    def dollars(self) -> float:
        return sum(self.cost.values())


def predict(
    measured: Measured,
    latencies: Latencies,
    listings: int,
    batch_size: int,
    concurrency: int,
    parallel: Mapping[str, int] = PARALLEL,
    shape: str = PARTS,
) -> Prediction:
    """Plan, then the Map's batches `concurrency` at a time, then finish; requests of each kind
    `parallel` at a time (SEQUENTIAL: the code before it read in parallel); `shape`: verify by
    the batches' parts (PARTS) or in one pass in finish (ONE_PASS, the shape before)."""
    batches = math.ceil(listings / batch_size)
    one = measured.batch(batch_size, shape)
    batch_s = one.seconds(latencies, parallel=parallel) + latencies.map_child_start + latencies.lambda_invoke
    waves = math.ceil(batches / concurrency)
    map_s = latencies.lambda_cold_start + waves * batch_s
    scale = listings / measured.listings
    # plan writes one manifest whatever the size (a multipart upload of a few parts): not scaled
    plan_io = replace(measured.plan, requests={k: n for k, n in measured.plan.requests.items() if k.startswith("os_")})
    plan_s3 = Phase({k: n for k, n in measured.plan.requests.items() if k.startswith("s3_")})
    plan_s = plan_io.seconds(latencies, scale) + plan_s3.seconds(latencies) + latencies.lambda_invoke
    finish_s = measured.finish_seconds(latencies, listings, batches, shape, parallel) + latencies.lambda_invoke
    keys = one.units.get("BatchGetItem", 0) * batches
    lambda_s = batches * batch_s + plan_s + finish_s
    cost = {
        "lambda": lambda_s * LAMBDA_GB * LAMBDA_GB_S + (batches + 2) * LAMBDA_REQUEST,
        "dynamodb": keys * 0.5 * RRU,
        "step_functions": batches * TRANSITIONS_PER_BATCH * TRANSITION,
        "s3": batches * (S3_PUT + S3_GET),
    }
    docs_per_s = min(concurrency, batches) * batch_size / batch_s
    return Prediction(listings, batch_size, concurrency, batch_s, plan_s, map_s, finish_s, docs_per_s, cost)


def cross_check(measured: Measured, concurrency: int, parallel: Mapping[str, int] = PARALLEL) -> Prediction:
    """The model's prediction for the measured run itself (verified by parts), at the proxies' injected latencies."""
    return predict(measured, INJECTED, measured.listings, measured.batch_size, concurrency, parallel)
