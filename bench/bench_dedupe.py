"""Duplicate search through the local gateway, at 1k, 10k and 100k vectors.

Each request is a near-duplicate query (a real photo resized to 50 % and re-encoded at JPEG q30
whose original is indexed): decode, exact-bytes lookup, embedding, HNSW search, answer. The bulk
of the collection is synthetic: clustered unit vectors, like real embeddings (a uniform random set
has no neighbourhood structure and is reported separately as the worst case). Baseline in the same
run: the per-request pattern, new Milvus and AWS clients for every request (the same
handler with its client caches emptied before each call). Recall@5 of HNSW at ef 64 is measured
against exact search (numpy) on the same vectors.
"""

from __future__ import annotations

import io
import os
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import requests
from PIL import Image

from bench.figures import Figure, percentile
from functions.specs import spec
from listing_vision import aws
from listing_vision.config import get_settings
from listing_vision.embeddings.factory import get_embedder
from listing_vision.jewelry import vector_index
from local.lambda_runtime import Handler
from local.stack import LocalStack

SIZES = (1_000, 10_000, 100_000)
ROUNDS = 3
PHOTOS = Path(__file__).resolve().parents[1] / "tests" / "data" / "photos"
NAME = "dedupe"


def clustered(n: int, rng: np.random.Generator, dim: int = 512) -> np.ndarray:
    centres = rng.standard_normal((max(10, n // 100), dim)).astype(np.float32)
    vectors = centres[rng.integers(0, len(centres), n)] + 0.6 * rng.standard_normal((n, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def uniform(n: int, rng: np.random.Generator, dim: int = 512) -> np.ndarray:
    vectors = rng.standard_normal((n, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def build_collection(name: str, vectors: np.ndarray) -> list[int]:
    client = vector_index.milvus_client()
    if client.has_collection(name):
        client.drop_collection(name)
    vector_index.ensure_collection(client, name, vectors.shape[1])
    ids: list[int] = []
    for start in range(0, len(vectors), 5000):
        rows = [
            {
                "embedding": v.tolist(),
                "path": f"s3://alyaimg/synthetic/{start + i}.jpg",
                "website": "alya",
                "sha256": f"{start + i:064x}",
                "created_at": 0,
            }
            for i, v in enumerate(vectors[start : start + 5000])
        ]
        ids += client.insert(name, rows)["ids"]
    client.flush(name)
    client.release_collection(name)
    client.load_collection(name)  # search the sealed, indexed segments, as a server would
    return ids


def recall_at_5(name: str, vectors: np.ndarray, ids: list[int], queries: np.ndarray) -> float:
    client = vector_index.milvus_client()
    exact = np.argsort(-(queries @ vectors.T), axis=1)[:, :5]
    id_of = np.asarray(ids)
    found = []
    for query, truth in zip(queries, exact, strict=True):
        hits = vector_index.search(client, name, query, website="alya", limit=5, ef=64)
        found.append(len({h.id for h in hits} & set(id_of[truth].tolist())) / 5)
    return float(np.mean(found))


def near_copy(data: bytes) -> bytes:
    image = Image.open(io.BytesIO(data)).convert("RGB")
    buffer = io.BytesIO()
    image.resize((image.width // 2, image.height // 2)).save(buffer, "JPEG", quality=30)
    return buffer.getvalue()


def per_request_clients(handler: Handler) -> Handler:
    def per_request_clients(event: dict[str, Any], context: Any) -> Any:
        vector_index.close_clients()
        aws.reset_clients()
        return handler(event, context)

    return per_request_clients


def latencies(url: str, queries: list[bytes]) -> list[float]:
    samples = []
    for _ in range(ROUNDS):
        for query in queries:
            started = time.perf_counter()
            answer = requests.post(
                f"{url}/image_similarity_search", files={"file": ("q.jpg", query, "image/jpeg")}, timeout=60
            )
            samples.append((time.perf_counter() - started) * 1000)
            assert answer.json().get("duplicate_found") is True, answer.text
    return samples


def run(stack: LocalStack) -> list[Figure]:
    assert stack.gateway is not None
    rng = np.random.default_rng(0)
    photos = [p.read_bytes() for p in sorted(PHOTOS.glob("*.jpg"))]
    photo_vectors = get_embedder().embed(photos)
    queries = [near_copy(p) for p in photos]
    handler = stack.router.handler_for("dedupe")
    figures: list[Figure] = []
    previous = os.environ.get("MILVUS_COLLECTION")
    try:
        for size in SIZES:
            name = f"bench_{size}"
            vectors = np.concatenate([photo_vectors, clustered(size - len(photos), rng)])
            started = time.perf_counter()
            ids = build_collection(name, vectors)
            build_s = time.perf_counter() - started
            os.environ["MILVUS_COLLECTION"] = name
            get_settings.cache_clear()
            ours = latencies(stack.url, queries)
            stack.router.register("dedupe", per_request_clients(handler))
            baseline = latencies(stack.url, queries)
            stack.router.register_spec(spec("dedupe"))
            label = f"{size // 1000}k vectors"
            figures.append(
                Figure(
                    NAME,
                    f"request p50, {label}",
                    statistics.median(ours),
                    statistics.median(baseline),
                    "ms",
                    "new clients per request",
                )
            )
            figures.append(
                Figure(
                    NAME,
                    f"request p95, {label}",
                    percentile(ours, 95),
                    percentile(baseline, 95),
                    "ms",
                    "new clients per request",
                )
            )
            probe = vectors[rng.choice(len(vectors), 100, replace=False)]
            probe = probe + 0.02 * rng.standard_normal(probe.shape).astype(np.float32)
            probe /= np.linalg.norm(probe, axis=1, keepdims=True)
            figures.append(
                Figure(
                    NAME,
                    f"HNSW recall@5 at ef 64, clustered, {label}",
                    recall_at_5(name, vectors, ids, probe),
                    1.0,
                    "recall",
                    "exact search",
                    higher_is_better=True,
                )
            )
            print(f"  {label}: collection built and loaded in {build_s:.1f} s", flush=True)
            vector_index.milvus_client().drop_collection(name)
        worst = uniform(10_000, rng)
        ids = build_collection("bench_uniform", worst)
        probe = uniform(100, rng)
        figures.append(
            Figure(
                NAME,
                "HNSW recall@5 at ef 64, uniform random (worst case), 10k",
                recall_at_5("bench_uniform", worst, ids, probe),
                1.0,
                "recall",
                "exact search",
                higher_is_better=True,
            )
        )
        vector_index.milvus_client().drop_collection("bench_uniform")
    finally:
        if previous is None:
            os.environ.pop("MILVUS_COLLECTION", None)
        else:
            os.environ["MILVUS_COLLECTION"] = previous
        get_settings.cache_clear()
        stack.router.register_spec(spec("dedupe"))
    return figures
