"""The embedding endpoint on a GPU machine: the model alone, and the SageMaker handler end to end.

    python bench/gpu_serving.py --out gpu.jsonl [--baseline-code DIR] [--quick]

Run from the project root on a machine with an NVIDIA GPU, the onnxruntime-gpu build for its CUDA,
PyTorch, transformers, OpenCV and Pillow. It prints one JSON line per figure and appends it to
--out; kept under `bench/gpu/` and listed in `bench/gpu_report.py`, the lines render
docs/benchmarks.md's GPU tables:

- the export (random-init ViT-B/32, the real model's FLOPs) with its fp16 variant and the
  export's own fp16/fp32 speed check (what synth reads from the package);
- `ClipEncoder.encode_pixels` img/s, fp32 and fp16, at batch 1, 8, 64 and 256;
- the handler (`input_fn` → `predict_fn` → `output_fn`), each configuration in its own process,
  pinned to 4 vCPUs (a g5.xlarge) or given the whole machine: the request Lambda sends now
  (multipart, images at the model side's size, with and without features) beside the same images
  at 1,024 px, and concurrent clients sharing batches; with --baseline-code, the handler as it
  was (JSON of base64 1,024 px JPEGs) in the same run. Figures are medians of raw per-request
  samples, images/s = images per request / median seconds.

Not a test and not part of `make bench`: CI has no GPU.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
WORK = Path("/tmp/gpu-serving")


def emit(results: Path, /, **figure: Any) -> None:
    line = json.dumps(figure)
    print(line, flush=True)
    with results.open("a") as file:
        file.write(line + "\n")


def synthetic_jpegs(count: int, width: int = 1024, height: int = 768) -> list[bytes]:
    """Photo-sized JPEGs with grain (what the issue measured with): a gradient plus noise, quality 88."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    blobs = []
    for index in range(count):
        noise = rng.random((height, width, 3)) * 60
        pixels = (noise + np.linspace(0, 180, width)[None, :, None] + index).clip(0, 255).astype(np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, "JPEG", quality=88)
        blobs.append(buffer.getvalue())
    return blobs


def export_models(out: Path, quick: bool, tiny: bool) -> Path:
    import numpy as np
    import onnxruntime as ort
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    from listing_vision.embeddings.clip_onnx import ClipEncoder, SessionOptions
    from serving.clip.export import export, report_json

    emit(out, step="onnxruntime", version=ort.__version__, providers=ort.get_available_providers())
    if hasattr(ort, "preload_dlls"):
        ort.preload_dlls()
    folder = WORK / "vit-b-32"
    shape: dict[str, Any] = (
        {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4} if tiny else {}
    )
    CLIPVisionModelWithProjection(CLIPVisionConfig(projection_dim=512, **shape)).save_pretrained(folder)
    started = time.perf_counter()
    report = export(str(folder), WORK / "model" / "model.onnx", fp16=True)
    emit(out, step="export", seconds=round(time.perf_counter() - started, 1), **report_json(report))
    rng = np.random.default_rng(0)
    for label, path in (("fp32", report.out), ("fp16", report.fp16_out)):
        encoder = ClipEncoder(path or "", SessionOptions(prefer_gpu=True), max_batch=256)
        for batch in (1, 8, 64, 256):
            pixels = rng.standard_normal((batch, 3, 224, 224)).astype(np.float32)
            seconds = samples(lambda p=pixels, e=encoder: e.encode_pixels(p), 5 if quick else 30)
            emit(out, step="encode_pixels", model=label, provider=encoder.provider, batch=batch, **rate(batch, seconds))
    return WORK / "model"


def samples(action: Any, count: int, warm: int = 2) -> list[float]:
    for _ in range(warm):
        action()
    taken = []
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(count):
        started = time.perf_counter()
        action()
        taken.append(time.perf_counter() - started)
    CORES_USED[0] = (time.process_time() - cpu) / (time.perf_counter() - wall)
    return taken


CORES_USED = [0.0]  # CPU seconds per wall second over the last samples(): checks the pinning held


def rate(images: int, seconds: list[float]) -> dict[str, Any]:
    median = statistics.median(seconds)
    return {
        "img_per_s": round(images / median, 1),
        "ms_median": round(median * 1000, 2),
        "ms_p90": round(sorted(seconds)[int(0.9 * (len(seconds) - 1))] * 1000, 2),
        "n": len(seconds),
        "cores_used": round(CORES_USED[0], 2),
    }


def handler(args: argparse.Namespace) -> None:
    """One configuration, in this process: pin it to its vCPUs, load the model, run the scenarios."""
    if args.cpus < (os.cpu_count() or 1):
        os.sched_setaffinity(0, set(range(args.cpus)))
    sys.path[:0] = [str(Path(args.code) / "layers" / "common"), str(args.code)]
    import base64

    from serving.clip import inference

    out = Path(args.out)
    model = inference.model_fn(args.model_dir)
    blobs = synthetic_jpegs(64)
    count = 3 if args.quick else 12

    def call(body: bytes, content_type: str) -> None:
        inference.output_fn(inference.predict_fn(inference.input_fn(body, content_type), model), "application/json")

    label = {
        "code": args.label,
        "vcpus": args.cpus,
        "affinity": len(os.sched_getaffinity(0)),  # what the pinning gave (a sandbox may ignore it)
        "fp16": os.environ.get("CLIP_FP16") == "true",
    }
    if args.label == "baseline":  # the request as it was: JSON of base64 1,024 px JPEGs
        for batch, features in ((16, False), (16, True), (64, False)):
            payload = json.dumps(
                {"images": [base64.b64encode(b).decode() for b in blobs[:batch]], "features": features}
            ).encode()
            seconds = samples(lambda p=payload: call(p, "application/json"), count, warm=1)
            emit(
                out,
                step="handler",
                **label,
                request="json-1024px",
                batch=batch,
                features=features,
                **rate(batch, seconds),
            )
        return
    from listing_vision.embeddings import multipart
    from listing_vision.embeddings.transport import for_transport

    sent = [for_transport(b, 1024, 40_000_000) for b in blobs]
    for form, images in (("multipart-model-side", sent), ("multipart-1024px", blobs)):
        for batch, features in ((16, True), (16, False), (64, True), (64, False)):
            body, content_type = multipart.encode(images[:batch], features=features)
            seconds = samples(lambda body=body, ct=content_type: call(body, ct), count, warm=1)
            emit(out, step="handler", **label, request=form, batch=batch, features=features, **rate(batch, seconds))
    # Concurrent clients: each sends dedupe's request (one upload, features) or a backfill's (16, no features)
    for clients, batch, features in ((16, 1, True), (4, 16, True), (4, 16, False)):
        body, content_type = multipart.encode(sent[:batch], features=features)
        per_client = 8 if args.quick else 40
        call(body, content_type)
        done = threading.Barrier(clients + 1)

        def client(
            body: bytes = body, content_type: str = content_type, done: threading.Barrier = done, n: int = per_client
        ) -> None:
            done.wait()
            for _ in range(n):
                call(body, content_type)
            done.wait()

        batcher = getattr(model, "_encode", None)
        calls_before = batcher.calls if batcher else 0
        threads = [threading.Thread(target=client) for _ in range(clients)]
        for thread in threads:
            thread.start()
        done.wait()
        started, cpu = time.perf_counter(), time.process_time()
        done.wait()
        elapsed = time.perf_counter() - started
        cores_used = (time.process_time() - cpu) / elapsed
        image_count = clients * per_client * batch
        emit(
            out,
            step="handler-concurrent",
            **label,
            request="multipart-model-side",
            clients=clients,
            batch=batch,
            features=features,
            img_per_s=round(image_count / elapsed, 1),
            cores_used=round(cores_used, 2),
            model_calls_per_request=round((batcher.calls - calls_before) / (clients * per_client), 3)
            if batcher
            else None,
        )


SCENARIOS = (  # what Lambda sends: dedupe's upload, a batch described, backfill batches
    ("dedupe upload", 1, True),
    ("16 described", 16, True),
    ("16 embedded", 16, False),
    ("64 embedded", 64, False),
)


def worker(args: argparse.Namespace) -> None:
    """One model-server worker process (as TorchServe runs SAGEMAKER_MODEL_SERVER_WORKERS of them):
    pinned to its vCPUs, it serves one request at a time. Scenarios start together across workers
    (files in --sync), each runs for --seconds, and the worker reports the images it finished."""
    first, last = (int(n) for n in args.cpu_list.split("-"))
    os.sched_setaffinity(0, set(range(first, last + 1)))
    sys.path[:0] = [str(ROOT / "layers" / "common"), str(ROOT)]
    from listing_vision.embeddings import multipart
    from listing_vision.embeddings.transport import for_transport
    from serving.clip import inference

    model = inference.model_fn(args.model_dir)
    sent = [for_transport(b, 1024, 40_000_000) for b in synthetic_jpegs(64)]
    sync = Path(args.sync)
    for index, (_, batch, features) in enumerate(SCENARIOS):
        body, content_type = multipart.encode(sent[:batch], features=features)
        inference.output_fn(inference.predict_fn(inference.input_fn(body, content_type), model), "application/json")
        (sync / f"ready-{index}-{args.worker_index}").touch()
        while not (sync / f"go-{index}").exists():
            time.sleep(0.01)
        started, images = time.perf_counter(), 0
        while time.perf_counter() - started < args.seconds:
            request = inference.input_fn(body, content_type)
            inference.output_fn(inference.predict_fn(request, model), "application/json")
            images += batch
        elapsed = time.perf_counter() - started
        partial = sync / f"partial-{index}-{args.worker_index}"
        partial.write_text(json.dumps({"images": images, "seconds": elapsed}))
        partial.rename(sync / f"done-{index}-{args.worker_index}")  # seen whole or not at all


def run_workers(args: argparse.Namespace, model_dir: Path, vcpus: int, workers: int, fp16: bool) -> None:
    """`workers` processes on `vcpus` vCPUs (disjoint sets), each with vcpus/workers host threads."""
    import shutil
    import tempfile

    sync = Path(tempfile.mkdtemp(prefix="workers-"))
    share = vcpus // workers
    env = {
        **os.environ,
        "CLIP_FP16": "true" if fp16 else "false",
        "CLIP_HOST_THREADS": str(share),
        "OMP_NUM_THREADS": str(share),
    }

    def command(index: int) -> list[str]:
        return [
            *(sys.executable, str(Path(__file__).resolve()), "worker", "--model-dir", str(model_dir)),
            *("--cpu-list", f"{index * share}-{(index + 1) * share - 1}", "--worker-index", str(index)),
            *("--sync", str(sync), "--seconds", str(2 if args.quick else 6)),
        ]

    processes = [subprocess.Popen(command(index), env=env) for index in range(workers)]
    try:
        for index, (name, batch, features) in enumerate(SCENARIOS):
            if not _wait(sync, f"ready-{index}-", workers, processes):
                break
            (sync / f"go-{index}").touch()
            if not _wait(sync, f"done-{index}-", workers, processes):
                break
            results = [json.loads((sync / f"done-{index}-{w}").read_text()) for w in range(workers)]
            emit(
                Path(args.out),
                step="workers",
                vcpus=vcpus,
                workers=workers,
                threads_per_worker=share,
                fp16=fp16,
                scenario=name,
                batch=batch,
                features=features,
                img_per_s=round(sum(r["images"] / r["seconds"] for r in results), 1),
            )
    finally:
        for process in processes:
            process.wait(timeout=120)
        shutil.rmtree(sync, ignore_errors=True)


def _wait(sync: Path, prefix: str, count: int, processes: list[subprocess.Popen[bytes]]) -> bool:
    while len(list(sync.glob(prefix + "*"))) < count:
        if any(process.poll() not in (None, 0) for process in processes):
            return False
        time.sleep(0.02)
    return True


def run_configuration(args: argparse.Namespace, model_dir: Path, code: Path, label: str, cpus: int, fp16: bool) -> None:
    total = os.cpu_count() or 1
    command = [sys.executable, str(Path(__file__).resolve()), "handler", "--out", str(args.out)]
    command += ["--code", str(code), "--label", label, "--cpus", str(min(cpus, total)), "--model-dir", str(model_dir)]
    command += ["--quick"] if args.quick else []
    env = {
        **os.environ,
        "CLIP_FP16": "true" if fp16 else "false",
        "CLIP_HOST_THREADS": str(min(cpus, total)),
        "CLIP_ALLOW_CPU": os.environ.get("CLIP_ALLOW_CPU", "false"),
        "OMP_NUM_THREADS": str(min(cpus, total)),
    }
    done = subprocess.run(command, env=env, cwd=str(code), check=False, timeout=900)
    if done.returncode:
        emit(Path(args.out), step="handler", code=label, vcpus=cpus, fp16=fp16, error=f"exit {done.returncode}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/gpu_serving.py")
    parser.add_argument("mode", nargs="?", default="all", choices=("all", "handler", "worker"))
    parser.add_argument("--out", default="gpu-serving.jsonl")
    parser.add_argument("--baseline-code", type=Path, help="a copy of the project as it was, for the baseline")
    parser.add_argument("--quick", action="store_true", help="few samples (a dry run)")
    parser.add_argument("--tiny", action="store_true", help="a tiny ViT instead of ViT-B/32 (a dry run)")
    parser.add_argument("--code", default=str(ROOT))
    parser.add_argument("--label", default="new")
    parser.add_argument("--cpus", type=int, default=0)
    parser.add_argument("--model-dir", default=str(WORK / "model"))
    parser.add_argument("--cpu-list", default="0-0")
    parser.add_argument("--worker-index", type=int, default=0)
    parser.add_argument("--sync", default="")
    parser.add_argument("--seconds", type=float, default=6)
    parser.add_argument("--only-workers", action="store_true", help="skip the single-process handler figures")
    args = parser.parse_args(argv)
    if args.mode == "handler":
        handler(args)
        return 0
    if args.mode == "worker":
        worker(args)
        return 0
    sys.path[:0] = [str(ROOT / "layers" / "common"), str(ROOT)]
    WORK.mkdir(parents=True, exist_ok=True)
    out = Path(args.out)
    emit(out, step="machine", cpus=os.cpu_count(), python=sys.version.split()[0])
    model_dir = export_models(out, args.quick, args.tiny)
    total = os.cpu_count() or 1
    # Model-server workers (processes) × host threads each, on the whole machine and on 4 vCPUs; one
    # thread per worker is what CPU instances run (make bench BENCH_ARGS=clip_layout), not yet
    # measured on a GPU host
    for vcpus, workers in ((total, 8), (total, total), (4, 2), (4, 4), (total, 4), (total, 2), (total, 1), (4, 1)):
        if vcpus <= total and workers <= vcpus:
            run_workers(args, model_dir, vcpus, workers, fp16=False)
    run_workers(args, model_dir, total, min(4, total), fp16=True)
    for cpus in (4, total):
        if args.baseline_code:
            run_configuration(args, model_dir, args.baseline_code.resolve(), "baseline", cpus, fp16=False)
        if not args.only_workers:
            run_configuration(args, model_dir, ROOT, "new", cpus, fp16=False)
    if not args.only_workers:
        run_configuration(args, model_dir, ROOT, "new", total, fp16=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
