"""The embedding handler's host path on CPU: what limits an endpoint's throughput, not the model.

The SageMaker handler (`input_fn` → `predict_fn` → `output_fn`) serves dedupe's request, with the
duplicate check's features, on the shipped weight-free descriptor (its inference, about a
millisecond an image on CPU here, is the only model work: a GPU endpoint does it on the GPU; the
rest is the host path: multipart parsing, decoding, resizing, normalising, ORB features on both
orientations, and the JSON answer). The baseline, in the same run, is the simplest thing that
could feed a model: a single-thread Pillow decode, resize to 224×224 and normalise, with no
features at all.

The host path alone is the same handler with the model swapped for a stand-in graph that costs
next to nothing (`negligible_model`: an average per channel, projected to the embedding's size):
on a GPU endpoint the model runs on the GPU, so what the instance's vCPUs must keep up with is
everything else. The descriptor's own inference on these cores is in the handler's rows, not in
the host path's.

Two image sets, 32 each: the synthetic 1,024×768 JPEGs with grain the endpoint issue measured
with, and the shipped photos upscaled to 1,024×768 (real content: fewer bits to decode, more
corners for ORB). Then the same photos as Lambda sends them now (short side at the model side's
384 px) against the same baseline on those bytes. Figures are medians of raw per-request samples.
Then, on one thread, where the CPU beyond the baseline goes: the features (against how they were
computed before: ORB detected again on the mirror), their wire form (against deflating it), and the
features alone against the baseline's whole path. And the model input's normalisation, against how
it was computed before.
"""

from __future__ import annotations

import base64
import functools
import io
import os
import statistics
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

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


def negligible_model(path: Path, dim: int = 512) -> Path:
    """An ONNX graph with the encoder's signature (`pixel_values` [N,3,224,224] → `image_embeds`
    [N,dim]) whose work is one pass over its input: each channel's mean, projected to `dim`."""
    import onnx
    from onnx import TensorProto, helper

    projection = helper.make_tensor("projection", TensorProto.FLOAT, [3, dim], np.eye(3, dim, dtype=np.float32).ravel())
    graph = helper.make_graph(
        [
            helper.make_node("GlobalAveragePool", ["pixel_values"], ["pooled"]),
            helper.make_node("Flatten", ["pooled"], ["means"]),
            helper.make_node("MatMul", ["means", "projection"], ["image_embeds"]),
        ],
        "negligible",
        [helper.make_tensor_value_info("pixel_values", TensorProto.FLOAT, ["N", 3, 224, 224])],
        [helper.make_tensor_value_info("image_embeds", TensorProto.FLOAT, ["N", dim])],
        [projection],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # what every ONNX Runtime reads (the onnx package writes its newest)
    onnx.save(model, str(path))
    return path


def load_model(stand_in: bool = False) -> Any:
    """The handler's model as the endpoint loads it (`inference.model_fn`): on the shipped
    descriptor, or with `stand_in` on the negligible graph (the host path alone)."""
    from listing_vision.embeddings.onnx_local import DESCRIPTOR_MODEL
    from serving.clip import inference
    from serving.clip.package import build

    os.environ.setdefault("CLIP_ALLOW_CPU", "true")
    with tempfile.TemporaryDirectory() as work:
        tarball = build(DESCRIPTOR_MODEL, Path(work) / "model.tar.gz", allow_descriptor=True)
        with tarfile.open(tarball) as tar:
            tar.extractall(work, filter="data")
        if not stand_in:
            return inference.model_fn(work)
        negligible_model(Path(work) / "negligible.onnx")
        os.environ["CLIP_MODEL_FILE"] = "negligible.onnx"
        try:
            return inference.model_fn(work)
        finally:
            del os.environ["CLIP_MODEL_FILE"]


def serve_request(model: Any, body: bytes, content_type: str) -> None:
    """One request through the SageMaker handler, as the model server calls it."""
    from serving.clip import inference

    inference.output_fn(inference.predict_fn(inference.input_fn(body, content_type), model), "application/json")


def run(stack: LocalStack | None = None) -> list[Figure]:
    from listing_vision.embeddings import multipart
    from listing_vision.embeddings.transport import for_transport

    descriptor, host_only = load_model(), load_model(stand_in=True)
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

        def simple(blobs: list[bytes] = blobs) -> None:
            for blob in blobs:
                naive(blob)

        theirs = statistics.median(timed_ms(simple, repeats=7))
        for what, model in (("handler with features", descriptor), ("host path with features", host_only)):
            ours = statistics.median(timed_ms(functools.partial(serve_request, model, body, content_type), repeats=7))
            figures.append(
                Figure(
                    NAME,
                    f"{what}, {label}, {BATCH} images, {cores} cores",
                    BATCH / ours * 1000,
                    BATCH / theirs * 1000,
                    "img/s",
                    "Pillow decode + resize + normalise, 1 thread, no features",
                    higher_is_better=True,
                )
            )
    return figures + feature_costs(sets["photos as Lambda sends them"]) + [normalise_cost()]


def feature_costs(blobs: list[bytes]) -> list[Figure]:
    """Where the handler's CPU beyond the baseline goes, one thread, ms an image: the duplicate
    check's features, against how they were computed before, and against the baseline's whole path."""
    from listing_vision.imaging import verify
    from listing_vision.imaging.pixels import as_rgb, decode_image

    images = [as_rgb(decode_image(blob, reduce_to=verify.WORK_SIZE)) for blob in blobs]
    found = [verify.extract(image, with_mirror=True) for image in images]

    def per_image(action: Callable[[], object]) -> float:
        import cv2

        threads = cv2.getNumThreads()
        cv2.setNumThreads(1)  # one thread, as labelled (OpenCV parallelises some calls on its own)
        try:
            return statistics.median(timed_ms(action, repeats=7)) / len(blobs)
        finally:
            cv2.setNumThreads(threads)

    features = per_image(lambda: [verify.extract(image, with_mirror=True) for image in images])
    grays = [verify.working_frame(image)[0] for image in images]
    detected_twice = per_image(
        lambda: [(verify.extract(image), detected_on_mirror(gray)) for image, gray in zip(images, grays, strict=True)]
    )
    wire = per_image(lambda: [item.to_base64(with_mirror=True) for item in found])
    deflated = per_image(lambda: [base64.b64encode(item.to_bytes(with_mirror=True)) for item in found])
    baseline = per_image(lambda: [naive(blob) for blob in blobs])
    label = "photos as Lambda sends them, 1 thread"
    return [
        Figure(
            NAME,
            f"features (ORB, image and mirror), {label}",
            features,
            detected_twice,
            "ms/img",
            "ORB detected on the image and again on its mirror (before)",
        ),
        Figure(NAME, f"features serialised for the wire, {label}", wire, deflated, "ms/img", "deflated .npz (before)"),
        Figure(
            NAME,
            f"features alone against the baseline's whole path, {label}",
            features,
            baseline,
            "ms/img",
            "Pillow decode + resize + normalise, no features",
        ),
    ]


def detected_on_mirror(gray: np.ndarray) -> object:
    """What the mirrored set cost before beyond the image's own features: ORB detection again, on
    the flipped working frame."""
    from listing_vision.imaging import verify

    return verify.orb_detector().detectAndCompute(np.ascontiguousarray(gray[:, ::-1]), None)  # type: ignore[call-overload]


def normalise_cost() -> Figure:
    """The model input's normalisation (8-bit pixels to CLIP's float input, channels first), one
    image's 224×224 pixels, against the three float passes it took before."""
    from listing_vision.embeddings.clip_onnx import normalise_pixels

    pixels = np.random.default_rng(0).integers(0, 256, (224, 224, 3), np.uint8)

    def stepwise() -> np.ndarray:
        normalised = (pixels.astype(np.float32) * np.float32(1 / 255) - CLIP_MEAN) / CLIP_STD
        return np.ascontiguousarray(normalised.transpose(2, 0, 1), dtype=np.float32)

    repeats = 200

    def each(action: Callable[[], np.ndarray]) -> None:
        for _ in range(repeats):  # each result dropped, as the handler stacks and drops them
            action()

    ours = statistics.median(timed_ms(lambda: each(lambda: normalise_pixels(pixels)), repeats=7))
    before = statistics.median(timed_ms(lambda: each(stepwise), repeats=7))
    return Figure(
        NAME,
        "normalise 224×224 pixels to the model's input, 1 thread",
        ours / repeats,
        before / repeats,
        "ms/img",
        "divide, subtract, divide, then transpose (before)",
    )
