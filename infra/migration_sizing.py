"""How hard the migration may write to the listings domain: a rule of thumb per domain size.

The migration's Map runs `migration_max_concurrency` batches at once; each batch of
`migration_batch_size` listings ends in `_bulk` requests of `migration_bulk_size` partial
updates. What it asks of the domain is, while the Map runs,

    updates/s = concurrency × batch size / a batch's duration

and a batch at in-region latencies takes at least `BATCH_FIXED_S + BATCH_PER_LISTING_S × batch
size` (the model's figures: bench/migration_model.py, README "At AWS latencies"). A faster batch
only asks for more.

What the domain takes, the rule of thumb (an assumption, no AWS account here; AWS's "Sizing
Amazon OpenSearch Service domains" guide sizes indexing by vCPU of the data nodes): a partial
update of a ≈ 2 KB listing costs a real-time get and a re-index on the primary and on its replica;
a data node indexes about `UPDATES_PER_S_PER_VCPU` of them a second per vCPU (burstable t3 nodes
a fifth of that), and the migration may take `HEADROOM` of it, the rest left to ingest and
search. Beyond it the write thread pool's queue fills and the domain answers 429
(`es_rejected_execution_exception`), which the migration backs off from (listings_index) and
alarms on (`BulkRejected`).

    data nodes × instance      vCPUs   safe for the migration (updates/s)
    2 × r6g.large.search         4        1,000
    3 × r6g.large.search         6        1,500
    3 × r6g.xlarge.search       12        3,000
    6 × r6g.2xlarge.search      48       12,000
"""

from __future__ import annotations

import re

UPDATES_PER_S_PER_VCPU = 500
BURSTABLE_FACTOR = 0.2  # t2/t3 nodes: CPU credits, not a sustained vCPU
HEADROOM = 0.5
# From the model's batch at in-region latencies (bench/migration_model.py, README "At AWS latencies"):
BATCH_FIXED_S = 0.17  # a Map child's start, the invoke, an mget, a bulk, the batch record
BATCH_PER_LISTING_S = 0.005  # the code's CPU (≈ 3.9 ms at 1,024 MB), cache keys (≈ 20, 4 reads in flight), bulk

_SIZES = {"small": 1, "medium": 2, "large": 2, "xlarge": 4}
INSTANCE_TYPE = re.compile(r"^(?P<family>[a-z]+\d+[a-z]*)\.(?P<size>small|medium|large|xlarge|\d+xlarge)\.search$")


def vcpus(instance_type: str) -> int:
    """vCPUs of an OpenSearch Service instance type (`r6g.large.search`: 2, `r6g.4xlarge.search`: 16)."""
    match = INSTANCE_TYPE.match(instance_type)
    if not match:
        raise ValueError(f"{instance_type!r} is not an OpenSearch Service instance type (e.g. r6g.large.search)")
    size = match.group("size")
    return _SIZES[size] if size in _SIZES else 4 * int(size.removesuffix("xlarge"))


def safe_updates_per_s(data_nodes: int, instance_type: str) -> float:
    """Partial updates a second the migration may send the domain (the rule of thumb above)."""
    rate = data_nodes * vcpus(instance_type) * UPDATES_PER_S_PER_VCPU * HEADROOM
    return rate * (BURSTABLE_FACTOR if instance_type.startswith(("t2.", "t3.")) else 1.0)


def requested_updates_per_s(concurrency: int, batch_size: int) -> float:
    """The most the Map asks for: every slot busy with batches at their in-region floor."""
    return concurrency * batch_size / (BATCH_FIXED_S + BATCH_PER_LISTING_S * batch_size)


def max_concurrency_for(data_nodes: int, instance_type: str, batch_size: int) -> int:
    """The largest MaxConcurrency whose requested rate the domain takes."""
    per_batch = requested_updates_per_s(1, batch_size)
    return max(1, int(safe_updates_per_s(data_nodes, instance_type) // per_batch))
