"""What verification costs, from raw samples: part of `python -m bench dedupe`, or alone with
`BENCH_DEDUPE_ONLY=verification python -m bench dedupe` (the 10k collection only).

Requests: near copies and crops/rotations/mirrors/grayscale through the gateway, two stages against
retrieval only (a one-threshold decision on the same handler). Model calls, per query with
candidates (the geometric queries against the 10k collection; only the real photos have records):

- each verify call is timed as the caller sees it (the SageMaker container contract over HTTP on
  this machine's CPU) with its number of candidates: one sample per call;
- the baseline a competent user would write with the same stored features: a loop over the
  candidates, one verify call each (sequential: no batching, no parallel checks on the model side);
- the query's whole verification as the service does it (the candidates' features read in one
  BatchGetItem, then the one call), against not storing features: each candidate's image read from
  S3, described and verified.

Everything raw goes to `bench/records/dedupe_verification.json`; `bench.verification_report`
computes the figures from those samples and renders the README block.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from bench.bench_dedupe import GEOMETRIC, PHOTOS, geometric_queries, latencies, retrieval_only
from bench.verification_report import RECORD, figures
from listing_vision import aws
from listing_vision.config import get_settings
from listing_vision.embeddings.factory import get_embedder
from listing_vision.imaging.features import Candidate
from listing_vision.jewelry import duplicates, storage, vector_index
from listing_vision.jewelry.stores import CatalogueStores
from listing_vision.jewelry.verification_store import VerificationStore
from local.stack import LocalStack


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


def model_samples(collection: str, queries: list[bytes]) -> dict[str, list[Any]]:
    """Per query with candidates: the features read, the one verify call (with its candidate count),
    the same candidates one call each, and each candidate from its image instead (milliseconds)."""
    settings = get_settings().model_copy(update={"milvus_collection": collection})
    index = vector_index.VectorIndex(collection)
    embedder = get_embedder()
    store = VerificationStore(CatalogueStores.from_settings(), embedder)
    checks = duplicates.verify_settings(settings)
    s3 = aws.client("s3")
    samples: dict[str, list[Any]] = {"read_ms": [], "verify_calls": [], "one_call_each": [], "from_image": []}
    warmed = False
    for query in embedder.describe(queries):
        hits = index.search(query.embedding, website="alya", limit=settings.search_top_k, ef=64)
        # synthetic rows have no image and no record: only the real photos are candidates here
        shortlist = [hit for hit in duplicates.candidates(hits, settings) if hit.path.startswith("s3://alyaimg/bench/")]
        if not shortlist:
            continue
        started = time.perf_counter()
        found = store.for_hits(shortlist)
        read_ms = _ms(started)
        candidates = [Candidate(f) for f in found if f is not None]
        if not warmed:  # the first call opens the connection: not a sample
            embedder.verify(query.features, candidates, checks)
            warmed = True
        started = time.perf_counter()
        embedder.verify(query.features, candidates, checks)
        samples["verify_calls"].append({"ms": _ms(started), "candidates": len(candidates)})
        samples["read_ms"].append(read_ms)
        each = []
        for candidate in candidates:
            started = time.perf_counter()
            embedder.verify(query.features, [candidate], checks)
            each.append(_ms(started))
        samples["one_call_each"].append(each)
        from_image = []
        for hit in shortlist:
            started = time.perf_counter()
            location = storage.StoredImage.from_uri(hit.path)
            body = s3.get_object(Bucket=location.bucket, Key=location.key)["Body"].read()
            embedder.verify(query.features, [Candidate(embedder.describe([body])[0].features)], checks)
            from_image.append(_ms(started))
        samples["from_image"].append(from_image)
    return samples


def measure(stack: LocalStack, collection: str, near_queries: list[bytes], size: int) -> dict[str, Any]:
    """The raw samples of one run: requests (two stages against one threshold) and model calls."""
    from evaluation.results import provenance

    only = os.environ.get("BENCH_DEDUPE_ONLY") == "verification"
    command = "BENCH_DEDUPE_ONLY=verification python -m bench dedupe" if only else "python -m bench dedupe"
    measured = provenance(command)  # the commit before the run
    load_before = os.getloadavg()[0]
    geometric = geometric_queries(PHOTOS)
    requests = {
        "near, two stages": latencies(stack.url, near_queries),
        "geometric, two stages": latencies(stack.url, geometric, must_find=False, salt=1),
    }
    original_find = duplicates.DuplicateFinder.find
    duplicates.DuplicateFinder.find = retrieval_only  # type: ignore[method-assign,assignment]
    try:
        requests["near, retrieval only"] = latencies(stack.url, near_queries)
        requests["geometric, retrieval only"] = latencies(stack.url, geometric, must_find=False, salt=7)
    finally:
        duplicates.DuplicateFinder.find = original_find  # type: ignore[method-assign]
    model = model_samples(collection, geometric)
    return {
        **measured,
        "load_average_1min": [round(load_before, 1), round(os.getloadavg()[0], 1)],  # at start and end
        "collection_vectors": size,
        "photos": len(PHOTOS),
        "queries": {"near": len(near_queries), "geometric": len(geometric), "kinds": list(GEOMETRIC)},
        "requests_ms": {name: [round(ms, 3) for ms in values] for name, values in requests.items()},
        "model_ms": model,
    }


def record(stack: LocalStack, collection: str, near_queries: list[bytes], size: int, path: Path = RECORD) -> list:
    """Measure, write the record, and return its figures."""
    data = measure(stack, collection, near_queries, size)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1) + "\n")
    print(f"  verification samples written to {path.name}", flush=True)
    return figures(data)
