"""Duplicate search through the local gateway, at 1k, 10k and 100k vectors, and what verification costs.

Each request is a near-duplicate query (a real photo resized to 50 % and re-encoded at JPEG q30
whose original is indexed): decode, exact-bytes lookup, embedding, features, HNSW search,
verification of the candidates, answer. The 19 real photos are stored in S3 with catalogue
records holding their verification features, as the service stores them; the bulk of the collection is synthetic:
clustered unit vectors, like real embeddings (a uniform random set has no neighbourhood structure
and is reported separately as the worst case). Baseline in the same run: the same requests, same
handler and clients, on a copy of the collection searched exactly (a FLAT index: every vector
compared), what a user without an approximate index would run. Recall@5 of HNSW at ef 64 is
measured against exact search (numpy) on the same vectors.

Verification, at 10k vectors, in the same run, from raw samples: `bench/dedupe_verification.py`
(`BENCH_DEDUPE_ONLY=verification` runs that part alone).
"""

from __future__ import annotations

import io
import os
import statistics
import time
from pathlib import Path

import numpy as np
import requests
from PIL import Image

from bench.figures import Figure, percentile
from evaluation import variants
from functions.specs import spec
from listing_vision import aws
from listing_vision.config import get_settings
from listing_vision.embeddings.base import Description
from listing_vision.embeddings.factory import get_embedder
from listing_vision.jewelry import duplicates, storage, vector_index
from listing_vision.jewelry.claims import ContentClaims, new_owner
from local.stack import LocalStack

SIZES = (1_000, 10_000, 100_000)
VERIFY_SIZE = 10_000
ROUNDS = 3
DATA = Path(__file__).resolve().parents[1] / "tests" / "data"
PHOTOS = [*sorted((DATA / "photos").glob("*.jpg")), *sorted((DATA / "package_photos").glob("*.jpg"))]
GEOMETRIC = ("crop", "rotate", "mirror", "grayscale")
NAME = "dedupe"


def clustered(n: int, rng: np.random.Generator, dim: int = 512) -> np.ndarray:
    centres = rng.standard_normal((max(10, n // 100), dim)).astype(np.float32)
    vectors = centres[rng.integers(0, len(centres), n)] + 0.6 * rng.standard_normal((n, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def uniform(n: int, rng: np.random.Generator, dim: int = 512) -> np.ndarray:
    vectors = rng.standard_normal((n, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def store_photos(photos: list[bytes]) -> list[tuple[str, str]]:
    """The real photos in S3 with catalogue records holding their verification features, as the
    service stores them: (path, sha256)."""
    stored = []
    claims = ContentClaims()
    for index, (data, described) in enumerate(zip(photos, get_embedder().describe(photos), strict=True)):
        sha = storage.sha256_hex(data)
        key = f"bench/photo-{index}.jpg"
        aws.client("s3").put_object(Bucket="alyaimg", Key=key, Body=data)
        owner = new_owner()
        if claims.try_claim("alya", sha, owner):
            path = f"s3://alyaimg/{key}"
            claims.complete("alya", sha, owner, path, 0, None, features=described.features.to_bytes())
        stored.append((f"s3://alyaimg/{key}", sha))
    return stored


def build_collection(
    name: str, vectors: np.ndarray, stored: list[tuple[str, str]] | None = None, exact: bool = False
) -> list[int]:
    """The collection as the service makes it (HNSW), or with `exact` search (a FLAT index) instead."""
    client = vector_index.milvus_client()
    if client.has_collection(name):
        client.drop_collection(name)
    vector_index.VectorIndex(name).ensure_collection(vectors.shape[1], get_embedder().model_signature)
    stored = stored or []
    ids: list[int] = []
    for start in range(0, len(vectors), 5000):
        rows = [
            {
                "id": start + i,  # the bench's own rows: their position (the platform keys rows by content)
                "embedding": v.tolist(),
                "path": stored[start + i][0] if start + i < len(stored) else f"s3://alyaimg/synthetic/{start + i}.jpg",
                "website": "alya",
                "sha256": stored[start + i][1] if start + i < len(stored) else f"{start + i:064x}",
                "created_at": 0,
            }
            for i, v in enumerate(vectors[start : start + 5000])
        ]
        ids += client.insert(name, rows)["ids"]
    client.flush(name)
    client.release_collection(name)
    if exact:  # what a user without an ANN index writes: every vector compared (HNSW's ef is ignored)
        client.drop_index(name, "embedding")
        flat = client.prepare_index_params()
        flat.add_index(field_name="embedding", index_type="FLAT", metric_type="IP")
        client.create_index(name, flat)
    client.load_collection(name)  # search the sealed, indexed segments, as a server would
    return ids


def recall_at_5(name: str, vectors: np.ndarray, ids: list[int], queries: np.ndarray) -> float:
    index = vector_index.VectorIndex(name)
    exact = np.argsort(-(queries @ vectors.T), axis=1)[:, :5]
    id_of = np.asarray(ids)
    found = []
    for query, truth in zip(queries, exact, strict=True):
        hits = index.search(query, website="alya", limit=5, ef=64)
        found.append(len({h.id for h in hits} & set(id_of[truth].tolist())) / 5)
    return float(np.mean(found))


def near_copy(data: bytes) -> bytes:
    image = Image.open(io.BytesIO(data)).convert("RGB")
    buffer = io.BytesIO()
    image.resize((image.width // 2, image.height // 2)).save(buffer, "JPEG", quality=30)
    return buffer.getvalue()


def searching(collection: str) -> None:
    """Point the handler at another collection (its service is rebuilt on the next request)."""
    os.environ["MILVUS_COLLECTION"] = collection
    get_settings.cache_clear()


def retrieval_only(
    finder: duplicates.DuplicateFinder,
    query: Description,
    website: str,
    scope: str,
    exclude: tuple[str, str] | None = None,
) -> list[duplicates.Match]:
    """One threshold on the same search (`DuplicateFinder.find`'s signature): neighbours under
    DUPLICATE_THRESHOLD, the query's own row excluded, nothing verified."""
    hits = finder.neighbours(query, website, scope)  # type: ignore[arg-type]
    kept = [h for h in hits if (h.website, h.sha256) != exclude]
    return [duplicates.Match(h, "near") for h in kept if h.distance < finder.settings.duplicate_threshold]


def latencies(url: str, queries: list[bytes], must_find: bool = True, salt: int = 0) -> list[float]:
    """Request milliseconds. With a salt, each round's bytes differ (trailing bytes after the image,
    which decoders ignore), so a copy stored by an earlier request is never an exact-bytes hit."""
    samples = []
    for round_index in range(ROUNDS):
        for query in queries:
            body = query + b"\0" * (salt * (round_index + 1))
            started = time.perf_counter()
            answer = requests.post(
                f"{url}/image_similarity_search",
                files={"file": ("q.jpg", body, "image/jpeg")},
                data={"check_duplicate": "yes"},
                timeout=60,
            )
            samples.append((time.perf_counter() - started) * 1000)
            assert answer.status_code == 200, answer.text
            assert not must_find or answer.json().get("duplicate_found") is True, answer.text
    return samples


def geometric_queries(photos: list[Path]) -> list[bytes]:
    """One crop, rotation, mirror image and grayscale copy of each photo (seed 15)."""
    queries = []
    for photo in photos:
        seen: set[str] = set()
        for variant in variants.variants(photo.stem, photo.read_bytes(), seed=15):
            if variant.kind in GEOMETRIC and variant.kind not in seen:
                seen.add(variant.kind)
                queries.append(variant.data)
    return queries


def size_figures(
    stack: LocalStack,
    stored: list[tuple[str, str]],
    queries: list[bytes],
    name: str,
    vectors: np.ndarray,
    ids: list[int],
    label: str,
    rng: np.random.Generator,
) -> list[Figure]:
    """Requests on the HNSW collection against the same requests on an exact-search copy of it
    (the same vectors and handler, clients reused), and HNSW recall."""
    figures: list[Figure] = []
    ours = latencies(stack.url, queries)
    exact_name = f"{name}_exact"
    build_collection(exact_name, vectors, stored, exact=True)
    searching(exact_name)
    baseline = latencies(stack.url, queries)
    searching(name)
    vector_index.milvus_client().drop_collection(exact_name)
    figures.append(
        Figure(
            NAME,
            f"request p50, {label}",
            statistics.median(ours),
            statistics.median(baseline),
            "ms",
            "exact search (a FLAT index), same handler and clients",
        )
    )
    figures.append(
        Figure(
            NAME,
            f"request p95, {label}",
            percentile(ours, 95),
            percentile(baseline, 95),
            "ms",
            "exact search (a FLAT index), same handler and clients",
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
    return figures


def run(stack: LocalStack) -> list[Figure]:
    assert stack.gateway is not None
    rng = np.random.default_rng(0)
    photos = [p.read_bytes() for p in PHOTOS]
    photo_vectors = get_embedder().embed(photos)
    stored = store_photos(photos)
    queries = [near_copy(p) for p in photos]
    figures: list[Figure] = []
    only_verification = os.environ.get("BENCH_DEDUPE_ONLY") == "verification"
    previous = os.environ.get("MILVUS_COLLECTION")
    try:
        for size in (VERIFY_SIZE,) if only_verification else SIZES:
            name = f"bench_{size}"
            vectors = np.concatenate([photo_vectors, clustered(size - len(photos), rng)])
            started = time.perf_counter()
            ids = build_collection(name, vectors, stored)
            build_s = time.perf_counter() - started
            os.environ["MILVUS_COLLECTION"] = name
            get_settings.cache_clear()
            label = f"{size // 1000}k vectors"
            if not only_verification:
                figures += size_figures(stack, stored, queries, name, vectors, ids, label, rng)
            if size == VERIFY_SIZE:
                from bench import dedupe_verification

                figures += dedupe_verification.record(stack, name, queries, size)
            print(f"  {label}: collection built and loaded in {build_s:.1f} s", flush=True)
            vector_index.milvus_client().drop_collection(name)
        if only_verification:
            return figures
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
