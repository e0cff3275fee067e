"""The embedding handler's host path on CPU: what limits an endpoint's throughput, not the model.

The SageMaker handler (`input_fn` → `predict_fn` → `output_fn`) serves dedupe's request, with the
duplicate check's features, on the shipped weight-free descriptor (its inference is well under a
millisecond an image, so the figure is the host path: multipart parsing, decoding, resizing,
normalising, ORB features on both orientations, and the JSON answer). The baseline, in the same
run, is the simplest thing that could feed a model: a single-thread Pillow decode, resize to
224×224 and normalise, with no features at all.

Two image sets, 32 each: the synthetic 1,024×768 JPEGs with grain the endpoint issue measured
with, and the shipped photos upscaled to 1,024×768 (real content: fewer bits to decode, more
corners for ORB). Then the same photos as Lambda sends them now (short side at the model side's
384 px) against the same baseline on those bytes. Figures are medians of raw per-request samples.
"""

from __future__ import annotations

import io
import os
import statistics
import tarfile
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from bench.figures import Figure, timed_ms
from bench.gpu_serving import synthetic_jpegs
from listing_vision.embeddings.clip_onnx import CLIP_MEAN, CLIP_STD
from local.stack import LocalStack

NAME = "clip_host"
ROOT = Path(__file__).resolve().parents[1]
PHOTOS = sorted((ROOT / "tests" / "data" / "photos").glob("*.jpg")) + sorted(
    (ROOT / "tests" / "data" / "package_photos").glob("*.jpg")
)
BATCH = 32


def naive(blob: bytes) -> np.ndarray:
    """The simple alternative: decode everything, one bicubic resize, normalise, channels first."""
    image = Image.open(io.BytesIO(blob)).convert("RGB").resize((224, 224), Image.Resampling.BICUBIC)
    return ((np.asarray(image, np.float32) / 255 - CLIP_MEAN) / CLIP_STD).transpose(2, 0, 1)


def photos(count: int) -> list[bytes]:
    blobs = []
    for index in range(count):
        buffer = io.BytesIO()
        image = Image.open(PHOTOS[index % len(PHOTOS)]).convert("RGB").resize((1024, 768), Image.Resampling.LANCZOS)
        image.rotate(index // len(PHOTOS) * 3).save(buffer, "JPEG", quality=90)
        blobs.append(buffer.getvalue())
    return blobs


def run(stack: LocalStack | None = None) -> list[Figure]:
    from listing_vision.embeddings import multipart
    from listing_vision.embeddings.onnx_local import DESCRIPTOR_MODEL
    from listing_vision.embeddings.transport import for_transport
    from serving.clip import inference
    from serving.clip.package import build

    with tempfile.TemporaryDirectory() as work:
        tarball = build(DESCRIPTOR_MODEL, Path(work) / "model.tar.gz", allow_descriptor=True)
        with tarfile.open(tarball) as tar:
            tar.extractall(work, filter="data")
        os.environ.setdefault("CLIP_ALLOW_CPU", "true")
        model = inference.model_fn(work)
    cores = os.cpu_count() or 1
    real = photos(BATCH)
    sets = {
        "synthetic 1,024 px": synthetic_jpegs(BATCH),
        "photos 1,024 px": real,
        "photos as Lambda sends them": [for_transport(b, 1024, 40_000_000) for b in real],
    }
    figures = []
    for label, blobs in sets.items():
        body, content_type = multipart.encode(blobs, features=True)

        def handle(body: bytes = body, content_type: str = content_type) -> None:
            request = inference.input_fn(body, content_type)
            inference.output_fn(inference.predict_fn(request, model), "application/json")

        ours = statistics.median(timed_ms(handle, repeats=7))

        def simple(blobs: list[bytes] = blobs) -> None:
            for blob in blobs:
                naive(blob)

        theirs = statistics.median(timed_ms(simple, repeats=7))
        figures.append(
            Figure(
                NAME,
                f"handler with features, {label}, {BATCH} images, {cores} cores",
                BATCH / ours * 1000,
                BATCH / theirs * 1000,
                "img/s",
                "Pillow decode + resize + normalise, 1 thread, no features",
                higher_is_better=True,
            )
        )
    return figures
