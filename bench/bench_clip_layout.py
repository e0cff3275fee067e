"""How a CPU endpoint instance should split its vCPUs between model-server workers.

SageMaker's model server runs SAGEMAKER_MODEL_SERVER_WORKERS processes, each serving one request
at a time on CLIP_HOST_THREADS host threads (`infra/constructs/clip_endpoint.model_server_layout`).
On a CPU instance (endpoint mode realtime_cpu) the model runs on the same cores as the host
path, so this measures the handler with the descriptor's inference on CPU: dedupe's
request (32 synthetic 1,024 px JPEGs, multipart, with the duplicate check's features) served for a
few seconds by every worker of a layout at once, on this machine's vCPUs, one worker per vCPU with
one thread against one worker per 2 vCPUs with two (the layout GPU instances keep), alternating
between the two in each round. Figures are medians over the rounds of the workers' summed rate.

    python -m bench.bench_clip_layout serve SECONDS   # one worker (what the benchmark starts)
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.figures import Figure
from local.stack import LocalStack

NAME = "clip_layout"
ROOT = Path(__file__).resolve().parents[1]
ROUNDS = 3
SECONDS = 8.0


def serve(seconds: float) -> None:
    """One model-server worker: load the model, answer one request to warm up, say `ready`, wait for
    `go` on stdin, then serve requests one at a time for `seconds` and print what it finished."""
    from bench.bench_clip_host import BATCH, load_model, serve_request
    from bench.gpu_serving import synthetic_jpegs
    from listing_vision.embeddings import multipart

    descriptor = load_model()
    body, content_type = multipart.encode(synthetic_jpegs(BATCH), features=True)
    serve_request(descriptor, body, content_type)
    print("ready", flush=True)
    sys.stdin.readline()
    started, images = time.perf_counter(), 0
    while time.perf_counter() - started < seconds:
        serve_request(descriptor, body, content_type)
        images += BATCH
    print(json.dumps({"images": images, "seconds": time.perf_counter() - started}), flush=True)


def layout_rate(workers: int, threads: int) -> float:
    """Images a second of `workers` processes with `threads` host threads each, started together."""
    environment = {
        **os.environ,
        "CLIP_HOST_THREADS": str(threads),
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "layers" / "common")]),
    }
    command = [sys.executable, "-m", "bench.bench_clip_layout", "serve", str(SECONDS)]
    processes = [
        subprocess.Popen(
            command,
            cwd=ROOT,
            env=environment,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        for _ in range(workers)
    ]
    try:
        for process in processes:
            assert process.stdout is not None
            if process.stdout.readline().strip() != "ready":
                raise RuntimeError(f"a worker did not start (exit {process.wait()})")
        for process in processes:
            assert process.stdin is not None
            process.stdin.write("go\n")
            process.stdin.flush()
        finished = [json.loads(process.communicate(timeout=SECONDS + 120)[0]) for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
    return sum(done["images"] / done["seconds"] for done in finished)


def run(stack: LocalStack | None = None) -> list[Figure]:
    vcpus = os.cpu_count() or 1
    each_vcpu, paired = [], []
    for _ in range(ROUNDS):
        each_vcpu.append(layout_rate(vcpus, 1))
        paired.append(layout_rate(max(1, vcpus // 2), 2 if vcpus > 1 else 1))
    return [
        Figure(
            NAME,
            f"handler with features on CPU, {vcpus} workers × 1 thread, {vcpus} vCPUs",
            statistics.median(each_vcpu),
            statistics.median(paired),
            "img/s",
            f"{max(1, vcpus // 2)} worker(s) × 2 threads (one per 2 vCPUs)",
            higher_is_better=True,
        )
    ]


if __name__ == "__main__":
    if sys.argv[1:2] != ["serve"] or len(sys.argv) != 3:
        sys.exit(__doc__)
    serve(float(sys.argv[2]))
