"""Catalogue-image generation under a provider rate limit, time scaled down (4× by default,
BENCH_GENERATION_SCALE to change it).

A loopback server speaks the OpenAI images.edit protocol with a fixed latency (13.3 s, a typical
edit, divided by the scale) and enforces the provider's limit of 5 input images per minute (per
60 s / scale), answering 429 with retry-after beyond it. Figures, each against its baseline in
the same run:
- four images of one job in parallel, against the slowest single call (goal ≤ 1.15×);
- three concurrent jobs (12 images, 9 of them edits) sharing the DynamoDB token bucket, against
  the limiter's lower bound, and how many images were lost;
- a naive approach to the same 12 images: each call fired at once, retried on 429 after a fixed
  15 / 30 / 45 s (divided by the scale), three attempts, then dropped.
"""

from __future__ import annotations

import io
import math
import os
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import openai
from PIL import Image, ImageDraw

from bench.figures import Figure
from listing_vision import aws
from listing_vision.config import get_settings
from listing_vision.jewelry import generation_worker
from listing_vision.jewelry.jobs import Job, JobStore
from listing_vision.providers.clients import reset_clients
from local.stack import LocalStack
from tests.loopback import LoopbackServer, Recorded, Reply, openai_error, openai_image

NAME = "generation"
SCALE = float(os.environ.get("BENCH_GENERATION_SCALE", "4"))  # real seconds / bench seconds
LATENCY_S = 13.3 / SCALE
WINDOW_S = 60.0 / SCALE
LIMIT = 5


class RateLimitedServer:
    """images.edit with a sliding-window limit: more than LIMIT starts per WINDOW_S get a 429."""

    def __init__(self) -> None:
        self.starts: deque[float] = deque()
        self.lock = threading.Lock()
        self.server = LoopbackServer({"/v1/images/edits": self.reply}).start()

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
        return openai_image(size=256, delay_s=LATENCY_S)


def earring() -> bytes:
    image = Image.new("RGB", (600, 500), (236, 234, 230))
    draw = ImageDraw.Draw(image)
    draw.ellipse((200, 150, 400, 350), outline=(212, 175, 55), width=30)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=95)
    return buffer.getvalue()


def new_job(types: list[int]) -> Job:
    key = f"bench/{time.time_ns()}.jpg"
    aws.client("s3").put_object(Bucket="alyaimg", Key=key, Body=earring())
    return JobStore().create("earring", "alya", "alyaimg", key, types, None)


def render(job: Job) -> dict[str, Any]:
    """The worker on the job's first run, as its asynchronous invocation would (a 15-minute lease)."""
    return generation_worker.run_job(job.job_id, job.run_id, lease_s=900)


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
    limited = RateLimitedServer()
    figures: list[Figure] = []
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
