"""Catalogue-image generation under a provider rate limit, time scaled down (4× by default,
BENCH_GENERATION_SCALE to change it).

A loopback server speaks the OpenAI images.edit protocol with a fixed latency (13.3 s, a typical
edit, divided by the scale) and enforces the provider's limit of 5 input images per minute (per
60 s / scale), answering 429 with retry-after beyond it. Its reply is a 1,024 px scene with a
photograph's grain (about 2 MB of PNG, like a real model's), encoded once: the server's own work
must not compete with the worker's. Figures, each against its baseline in the same run:
- the cut-out of a 3 MP photo, against the same cut-out with Pillow's MaxFilter and MinFilter (the
  square's area per pixel, where ours costs its side);
- the per-image overhead (decoding the reply, pasting the piece back, encoding the PNG): three
  images on three threads, as a batch's replies arrive, against the same three one after another
  (the GIL held would make threads no faster);
- four images of one job in parallel, against the slowest single call (goal ≤ 1.15×);
- three concurrent jobs (12 images, 9 of them edits) sharing the DynamoDB token bucket, against
  the limiter's lower bound, and how many images were lost;
- a naive approach to the same 12 images: each call fired at once, retried on 429 after a fixed
  15 / 30 / 45 s (divided by the scale), three attempts, then dropped.
"""

from __future__ import annotations

import base64
import io
import json
import math
import os
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import openai
from PIL import Image, ImageDraw, ImageFilter

from bench.figures import Figure
from doubles.loopback import OPENAI_IMAGE_EDITS, LoopbackServer, Recorded, Reply, openai_error, openai_image
from listing_vision import aws
from listing_vision.config import get_settings
from listing_vision.imaging.compose import paste_back, prepare_edits
from listing_vision.imaging.decode import load_image
from listing_vision.imaging.png import encode_png
from listing_vision.imaging.segment import cut_out, foreground_mask
from listing_vision.jewelry.generation_worker import GenerationWorker
from listing_vision.jewelry.jobs import Job, JobStore
from listing_vision.jewelry.storage import ImageStore
from listing_vision.providers.clients import reset_clients
from local.stack import LocalStack

NAME = "generation"
SCALE = float(os.environ.get("BENCH_GENERATION_SCALE", "4"))  # real seconds / bench seconds
LATENCY_S = 13.3 / SCALE
WINDOW_S = 60.0 / SCALE
LIMIT = 5
GRAIN = 4.0  # grey levels of noise in the model's scene: PNG sizes like a real edit's


class RateLimitedServer:
    """images.edit with a sliding-window limit: more than LIMIT starts per WINDOW_S get a 429."""

    def __init__(self) -> None:
        self.starts: deque[float] = deque()
        self.lock = threading.Lock()
        scene = openai_image(size=1024, grain=GRAIN, delay_s=LATENCY_S)
        self.image = Reply(scene.status, json.dumps(scene.body).encode(), delay_s=LATENCY_S)
        self.server = LoopbackServer({OPENAI_IMAGE_EDITS: self.reply}).start()

    def reply(self, request: Recorded) -> Reply:
        now = time.monotonic()
        with self.lock:
            while self.starts and self.starts[0] <= now - WINDOW_S:
                self.starts.popleft()
            if len(self.starts) >= LIMIT:
                wait = self.starts[0] + WINDOW_S - now
                return openai_error(
                    429,
                    "rate_limit_exceeded",
                    "Rate limit reached for images per minute.",
                    "requests",
                    {"retry-after": f"{max(wait, 0.1):.2f}"},
                )
            self.starts.append(now)
        return self.image


def earring() -> bytes:
    image = Image.new("RGB", (600, 500), (236, 234, 230))
    draw = ImageDraw.Draw(image)
    draw.ellipse((200, 150, 400, 350), outline=(212, 175, 55), width=30)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=95)
    return buffer.getvalue()


def cut_out_seconds(width: int = 2000, height: int = 1500) -> tuple[float, float]:
    """Seconds to cut a ring out of a `width` × `height` photo, and to clean the same mask with
    Pillow's rank filters (how it was done before): one run each, the baseline is seconds long."""
    photo = Image.new("RGB", (width, height), (236, 234, 230))
    ring = (width // 3, height // 3, 2 * width // 3, 2 * height // 3)
    ImageDraw.Draw(photo).ellipse(ring, outline=(212, 175, 55), width=60)
    started = time.perf_counter()
    cut_out(photo)
    ours = time.perf_counter() - started
    started = time.perf_counter()
    mask, _ = foreground_mask(np.asarray(photo))
    size = max(3, (min(height, width) // 200) * 2 + 1)
    cleaned = Image.fromarray((mask * 255).astype(np.uint8))
    cleaned = cleaned.filter(ImageFilter.MaxFilter(size)).filter(ImageFilter.MinFilter(size))
    cleaned.filter(ImageFilter.MinFilter(3)).filter(ImageFilter.MaxFilter(3))
    return ours, time.perf_counter() - started


def per_image_overhead(images: int = 3, repeats: int = 5) -> tuple[float, float]:
    """Seconds per image of what follows a reply (decode, paste-back, PNG), `images` at once on as
    many threads, and one after another; the best of `repeats` each."""
    body = openai_image(size=1024, grain=GRAIN).body
    assert isinstance(body, dict)
    edited = base64.b64decode(body["data"][0]["b64_json"])
    request = prepare_edits(cut_out(load_image(earring())))

    def one(_: int = 0) -> int:
        return len(encode_png(paste_back(load_image(edited), request)))

    one()
    sequential, threaded = [], []
    with ThreadPoolExecutor(max_workers=images) as pool:
        for _ in range(repeats):
            started = time.perf_counter()
            for _ in range(images):
                one()
            sequential.append((time.perf_counter() - started) / images)
            started = time.perf_counter()
            list(pool.map(one, range(images)))
            threaded.append((time.perf_counter() - started) / images)
    return min(threaded), min(sequential)


def new_job(types: list[int]) -> Job:
    key = f"bench/{time.time_ns()}.jpg"
    aws.client("s3").put_object(Bucket="alyaimg", Key=key, Body=earring())
    return JobStore().create("earring", "alya", "alyaimg", key, types, None)


def render(job: Job) -> dict[str, Any]:
    """The worker on the job's first run, as its asynchronous invocation would (a 15-minute lease)."""
    return GenerationWorker(JobStore(), ImageStore.from_settings()).run_job(job.job_id, job.run_id, lease_s=900)


def configure(env: dict[str, str]) -> None:
    os.environ.update(env)
    get_settings.cache_clear()
    reset_clients()


def fixed_retry_schedule(url: str, images: int) -> tuple[float, int]:
    """A naive loop: fire every call, on 429 sleep 15/30/45 s (scaled), three attempts, then drop."""
    client = openai.OpenAI(api_key="sk-bench", base_url=f"{url}/v1", max_retries=0, timeout=60)
    lost = 0
    lock = threading.Lock()

    def one(index: int) -> None:
        nonlocal lost
        for attempt in range(3):
            try:
                client.images.edit(
                    model="gpt-image-2",
                    image=("a.png", io.BytesIO(earring()), "image/png"),
                    prompt="scene",
                    size="1024x1024",
                )
                return
            except Exception as error:
                if "429" in str(error) or "rate_limit" in str(error).lower():
                    time.sleep(15 * (attempt + 1) / SCALE)
                else:
                    raise
        with lock:
            lost += 1

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=images) as pool:
        list(pool.map(one, range(images)))
    return time.perf_counter() - started, lost


def run(stack: LocalStack) -> list[Figure]:
    saved = {
        k: os.environ.get(k)
        for k in (
            "OPENAI_API_KEY",
            "OPENAI_BASE_URL",
            "IMAGE_EDIT_RATE_PER_MINUTE",
            "IMAGE_EDIT_BURST",
            "PROVIDER_MAX_RETRIES",
            "IMAGE_EDIT_CONCURRENCY",
        )
    }
    ours, rank_filters = cut_out_seconds()
    threaded, sequential = per_image_overhead()
    figures = [
        Figure(NAME, "cut-out of a 2,000 × 1,500 photo", ours, rank_filters, "s", "Pillow's rank filters, mask only"),
        Figure(
            NAME,
            "per-image overhead: decode, paste-back, PNG (3 at once on threads)",
            threaded,
            sequential,
            "s",
            "the same, one after another",
        ),
    ]
    limited = RateLimitedServer()
    try:
        configure(
            {
                "OPENAI_API_KEY": "sk-bench",
                "OPENAI_BASE_URL": f"{limited.server.url}/v1",
                "IMAGE_EDIT_RATE_PER_MINUTE": str(LIMIT * SCALE),
                "IMAGE_EDIT_BURST": str(LIMIT),
                "PROVIDER_MAX_RETRIES": "4",
                "IMAGE_EDIT_CONCURRENCY": "4",
            }
        )
        # 1. One job, four images in parallel (types 1, 2, 4, 5; three are edits)
        time.sleep(WINDOW_S)  # an empty window
        started = time.perf_counter()
        view = render(new_job([1, 2, 4, 5]))
        whole = time.perf_counter() - started
        slowest = max(r.get("provider_seconds", 0.0) for r in JobStore().get(view["job_id"]).results.values())
        # The parallel batch against the calls it is made of.
        figures.append(
            Figure(
                NAME,
                "one job, 4 images in parallel: batch time",
                view["timing"]["batch_s"],
                slowest,
                "s",
                "slowest single provider call",
            )
        )
        figures.append(
            Figure(
                NAME,
                "one job, 4 images: whole job (cut-out, uploads, ZIP)",
                whole,
                slowest,
                "s",
                "slowest single provider call",
            )
        )
        # 2. Three concurrent jobs, 12 images (9 edits), one shared token bucket
        time.sleep(WINDOW_S)
        aws.client("dynamodb").delete_item(
            TableName=stack.settings.rate_limit_table, Key={"bucket_id": {"S": "openai-image-edits"}}
        )
        jobs = [new_job([1, 2, 4, 5]) for _ in range(3)]
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=3) as pool:
            views = list(pool.map(render, jobs))
        ours = time.perf_counter() - started
        lost = sum(len(v["failed"]) for v in views)
        edits = 9
        # The provider admits LIMIT starts per sliding window: 9 edits need two windows, then one call.
        lower_bound = (math.ceil(edits / LIMIT) - 1) * WINDOW_S + LATENCY_S
        figures.append(
            Figure(NAME, "3 jobs, 12 images under 5/min: wall time", ours, lower_bound, "s", "limiter's lower bound")
        )
        # 3. A fixed retry schedule on the same 9 edits (the 3 white-background images need no call)
        time.sleep(WINDOW_S)
        fixed_s, fixed_lost = fixed_retry_schedule(limited.server.url, edits)
        figures.append(
            Figure(
                NAME,
                "3 jobs, 9 edits under 5/min: wall time vs fixed 15/30/45 s retries",
                ours,
                fixed_s,
                "s",
                "fixed 15/30/45 s retry schedule",
            )
        )
        figures.append(
            Figure(
                NAME,
                "images lost (ours vs the fixed schedule)",
                lost,
                fixed_lost,
                "images",
                "fixed 15/30/45 s retry schedule",
            )
        )
    finally:
        limited.server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        configure({})
    return figures
