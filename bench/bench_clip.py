"""CLIP image encoding on CPU: ONNX Runtime (the serving path) against PyTorch eager.

Both run the same randomly initialised ViT-B/32 (`CLIPVisionModelWithProjection` defaults; real
weights cannot be downloaded here, and speed does not depend on weight values). Figures:
throughput and latency at batch 1, 8 and 32 for ONNX Runtime fp32 and int8 (dynamic
quantisation), each against eager in the same run; preprocessing per image against transformers'
CLIPImageProcessor; session start against loading the PyTorch model; int8 agreement with fp32.
"""

from __future__ import annotations

import io
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.figures import Figure
from listing_vision.embeddings.clip_onnx import ClipEncoder, SessionOptions, preprocess
from listing_vision.imaging.pixels import decode_image
from local.stack import LocalStack

BATCHES = (1, 8, 32)
PHOTOS = Path(__file__).resolve().parents[1] / "tests" / "data" / "photos"
NAME = "clip"


def _best_seconds(action, repeats: int) -> float:
    action()  # warm-up (allocations, kernel selection)
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        samples.append(time.perf_counter() - started)
    return min(samples)


def run(stack: LocalStack | None = None) -> list[Figure]:
    import torch
    from PIL import Image
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    from serving.clip.export import export

    torch.manual_seed(0)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory() as work:
        folder = Path(work) / "vit-b-32"
        CLIPVisionModelWithProjection(CLIPVisionConfig()).save_pretrained(folder)
        report = export(str(folder), Path(work) / "model.onnx", int8=True)

        started = time.perf_counter()
        model = CLIPVisionModelWithProjection.from_pretrained(folder).eval()
        eager_load = time.perf_counter() - started
        started = time.perf_counter()
        fp32 = ClipEncoder(report.out, SessionOptions(prefer_gpu=False))
        ort_start = time.perf_counter() - started
        int8 = ClipEncoder(report.int8_out or "", SessionOptions(prefer_gpu=False))
        figures.append(Figure(NAME, "session start, ORT fp32", ort_start, eager_load, "s", "PyTorch model load"))

        rng = np.random.default_rng(0)
        for batch in BATCHES:
            pixels = rng.standard_normal((batch, 3, 224, 224)).astype(np.float32)
            repeats = 5 if batch < 32 else 2
            with torch.inference_mode():
                eager = _best_seconds(lambda p=pixels: model(pixel_values=torch.from_numpy(p)), repeats)
            for label, encoder in (("fp32", fp32), ("int8", int8)):
                seconds = _best_seconds(lambda p=pixels, e=encoder: e.encode_pixels(p), repeats)
                figures.append(
                    Figure(
                        NAME,
                        f"ORT {label} throughput, batch {batch}",
                        batch / seconds,
                        batch / eager,
                        "img/s",
                        "PyTorch eager",
                        higher_is_better=True,
                    )
                )
                figures.append(
                    Figure(
                        NAME, f"ORT {label} latency, batch {batch}", seconds * 1000, eager * 1000, "ms", "PyTorch eager"
                    )
                )

        pixels = rng.standard_normal((16, 3, 224, 224)).astype(np.float32)
        agreement = float((fp32.encode_pixels(pixels) * int8.encode_pixels(pixels)).sum(axis=1).min())
        figures.append(
            Figure(NAME, "int8 min cosine to fp32 (16 inputs)", agreement, 1.0, "cos", "fp32", higher_is_better=True)
        )

    blobs = [p.read_bytes() for p in sorted(PHOTOS.glob("*.jpg"))]
    processor = CLIPImageProcessor()
    ours = statistics.median(_best_seconds(lambda b=blob: preprocess(decode_image(b)), 5) for blob in blobs)
    theirs = statistics.median(
        _best_seconds(lambda b=blob: processor(images=Image.open(io.BytesIO(b)).convert("RGB"), return_tensors="np"), 5)
        for blob in blobs
    )
    figures.append(
        Figure(
            NAME, "decode + preprocess per image", ours * 1000, theirs * 1000, "ms", "PIL decode + CLIPImageProcessor"
        )
    )
    return figures
