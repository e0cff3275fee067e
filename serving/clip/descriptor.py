"""The weight-free local image descriptor, built as an ONNX graph with CLIP's signature.

No real CLIP weights can be downloaded on the development machines, and a randomly initialised
CLIP scores unrelated photos up to 0.99 similar, which makes a duplicate threshold meaningless.
This graph takes the same `pixel_values` [N,3,224,224] (CLIP-normalised) and returns
`image_embeds` [N,512], so the whole serving path is unchanged. It is the retrieval stage of
duplicate detection (candidates are then verified on local features), so it is built to keep
re-exported copies near their original rather than to tell near-identical photos apart:

  CLIP-normalised RGB → undo normalisation → luminance (grayscale copies embed alike), then
  - layout: 7×7 average pool (32×32) → 2-D DCT-II → the 27 coefficients with u+v ≤ 6, DC dropped
    (a coarse layout: crops and small rotations move it little), |coefficient| where v is odd
    (so a mirror image embeds exactly as its original), weighted by √(1+u+v);
  - tones: a soft histogram (24 bins, −2.5σ..2.5σ) of the luminance standardised by its own mean
    and spread (brightness and contrast changes cancel; crops and rotations keep it), Hellinger
    mapped, over the whole image and over its central half;
  - each block L2-normalised and weighted (layout 1, whole 0.6, centre 0.4), zero-padded to 512,
    L2 norm.

Weights and sizes were chosen on the labelled evaluation (`python -m evaluation.duplicate_detection`).

    python -m serving.clip.descriptor [OUT.onnx]   # rewrites the shipped model by default
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from listing_vision.embeddings.clip_onnx import CLIP_MEAN, CLIP_STD, INPUT_NAME, OUTPUT_NAME

GRID = 32
POOL = 7  # 224 / 32
MAX_FREQUENCY = 6  # u + v
HIST_BINS = 24
HIST_RANGE = 2.5  # standard deviations either side of the mean
HIST_POOL = 2  # histograms on a 112×112 image
CENTRE = (28, 84)  # the central half of the 112×112 image, both axes
WEIGHTS = {"layout": 1.0, "tones": 0.6, "centre": 0.4}
DIM = 512
OPSET = 17
SHIPPED = (
    Path(__file__).resolve().parents[2]
    / "layers"
    / "common"
    / "listing_vision"
    / "embeddings"
    / "models"
    / "dct_descriptor.onnx"
)


def dct_matrix(n: int) -> np.ndarray:
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    matrix = np.sqrt(2.0 / n) * np.cos(np.pi * (2 * i + 1) * k / (2 * n))
    matrix[0] /= np.sqrt(2.0)
    return matrix.astype(np.float32)


def low_frequencies(n: int, max_frequency: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flat indices of the AC coefficients with u+v ≤ max_frequency, their weights √(1+u+v), and
    which of them change sign under a horizontal mirror (odd v)."""
    pairs = sorted(
        ((u, v) for u in range(n) for v in range(n) if 0 < u + v <= max_frequency), key=lambda p: (p[0] + p[1], p[0])
    )
    indices = np.array([u * n + v for u, v in pairs], dtype=np.int64)
    weights = np.sqrt(1.0 + np.array([u + v for u, v in pairs], dtype=np.float32))
    odd = np.array([v % 2 for _, v in pairs], dtype=np.float32)
    return indices, weights.astype(np.float32), odd


def _histogram_nodes(prefix: str, image: str) -> list[onnx.NodeProto]:
    """Soft tone histogram of `image` [N,1,H,W], standardised, Hellinger-mapped, L2-normalised."""
    p = prefix
    return [
        helper.make_node("ReduceMean", [image], [f"{p}_mean"], axes=[2, 3], keepdims=1),
        helper.make_node("Sub", [image, f"{p}_mean"], [f"{p}_centred"]),
        helper.make_node("Mul", [f"{p}_centred", f"{p}_centred"], [f"{p}_sq"]),
        helper.make_node("ReduceMean", [f"{p}_sq"], [f"{p}_var"], axes=[2, 3], keepdims=1),
        helper.make_node("Sqrt", [f"{p}_var"], [f"{p}_std"]),
        helper.make_node("Max", [f"{p}_std", "std_floor"], [f"{p}_safe_std"]),
        helper.make_node("Div", [f"{p}_centred", f"{p}_safe_std"], [f"{p}_z"]),
        helper.make_node("Clip", [f"{p}_z", "z_low", "z_high"], [f"{p}_zc"]),
        # triangular kernels: each pixel votes for its two nearest bins, in proportion
        helper.make_node("Sub", [f"{p}_zc", "bin_centres"], [f"{p}_offset"]),  # [N,B,H,W]
        helper.make_node("Abs", [f"{p}_offset"], [f"{p}_distance"]),
        helper.make_node("Div", [f"{p}_distance", "bin_width"], [f"{p}_bins_away"]),
        helper.make_node("Sub", ["one", f"{p}_bins_away"], [f"{p}_closeness"]),
        helper.make_node("Relu", [f"{p}_closeness"], [f"{p}_vote"]),
        helper.make_node("ReduceMean", [f"{p}_vote"], [f"{p}_hist4"], axes=[2, 3], keepdims=0),  # [N,B]
        helper.make_node("ReduceSum", [f"{p}_hist4", "axis1"], [f"{p}_total"], keepdims=1),
        helper.make_node("Div", [f"{p}_hist4", f"{p}_total"], [f"{p}_share"]),
        helper.make_node("Sqrt", [f"{p}_share"], [f"{p}_root"]),
        helper.make_node("Sub", [f"{p}_root", "uniform_root"], [f"{p}_hellinger"]),
        *_normalise(p, f"{p}_hellinger"),
    ]


def _normalise(prefix: str, tensor: str) -> list[onnx.NodeProto]:
    return [
        helper.make_node("ReduceL2", [tensor], [f"{prefix}_norm"], axes=[1], keepdims=1),
        helper.make_node("Max", [f"{prefix}_norm", "eps"], [f"{prefix}_safe_norm"]),
        helper.make_node("Div", [tensor, f"{prefix}_safe_norm"], [f"{prefix}_unit"]),
        helper.make_node("Mul", [f"{prefix}_unit", f"{prefix}_weight"], [f"{prefix}_block"]),
    ]


def build() -> onnx.ModelProto:
    indices, frequency_weights, odd = low_frequencies(GRID, MAX_FREQUENCY)
    dct = dct_matrix(GRID)
    centres = np.linspace(-HIST_RANGE, HIST_RANGE, HIST_BINS, dtype=np.float32)
    padding = DIM - len(indices) - 2 * HIST_BINS
    constants = [
        numpy_helper.from_array(CLIP_STD.reshape(1, 3, 1, 1), "std"),
        numpy_helper.from_array(CLIP_MEAN.reshape(1, 3, 1, 1), "mean"),
        numpy_helper.from_array(np.array([0.299, 0.587, 0.114], np.float32).reshape(1, 3, 1, 1), "luma"),
        numpy_helper.from_array(dct, "dct"),
        numpy_helper.from_array(np.ascontiguousarray(dct.T), "dct_t"),
        numpy_helper.from_array(np.array([-1, GRID, GRID], np.int64), "grid_shape"),
        numpy_helper.from_array(np.array([-1, GRID * GRID], np.int64), "flat_shape"),
        numpy_helper.from_array(indices, "low_freq"),
        numpy_helper.from_array(frequency_weights, "frequency_weights"),
        numpy_helper.from_array(odd, "mirror_odd"),
        numpy_helper.from_array(1 - odd, "mirror_even"),
        numpy_helper.from_array(centres.reshape(1, HIST_BINS, 1, 1), "bin_centres"),
        numpy_helper.from_array(np.array(centres[1] - centres[0], np.float32), "bin_width"),
        numpy_helper.from_array(np.array(-HIST_RANGE, np.float32), "z_low"),
        numpy_helper.from_array(np.array(HIST_RANGE, np.float32), "z_high"),
        numpy_helper.from_array(np.array(1e-3, np.float32), "std_floor"),
        numpy_helper.from_array(np.array(1.0, np.float32), "one"),
        numpy_helper.from_array(np.array([1], np.int64), "axis1"),
        numpy_helper.from_array(np.array(np.sqrt(1 / HIST_BINS), np.float32), "uniform_root"),
        numpy_helper.from_array(np.array([0, 0, CENTRE[0], CENTRE[0]], np.int64), "centre_start"),
        numpy_helper.from_array(np.array([2**31, 1, CENTRE[1], CENTRE[1]], np.int64), "centre_end"),
        numpy_helper.from_array(np.array([0, 0, 0, padding], np.int64), "pad_widths"),  # [N, D]: pad D at the end
        numpy_helper.from_array(np.array(1e-12, np.float32), "eps"),
        *[numpy_helper.from_array(np.array(np.sqrt(w), np.float32), f"{name}_weight") for name, w in WEIGHTS.items()],
    ]
    nodes = [
        helper.make_node("Mul", [INPUT_NAME, "std"], ["scaled"]),
        helper.make_node("Add", ["scaled", "mean"], ["rgb"]),
        helper.make_node("Conv", ["rgb", "luma"], ["gray"]),
        # layout
        helper.make_node("AveragePool", ["gray"], ["pooled"], kernel_shape=[POOL, POOL], strides=[POOL, POOL]),
        helper.make_node("Reshape", ["pooled", "grid_shape"], ["grid"]),
        helper.make_node("MatMul", ["dct", "grid"], ["rows"]),
        helper.make_node("MatMul", ["rows", "dct_t"], ["spectrum"]),
        helper.make_node("Reshape", ["spectrum", "flat_shape"], ["flat"]),
        helper.make_node("Gather", ["flat", "low_freq"], ["coefficients"], axis=1),
        helper.make_node("Abs", ["coefficients"], ["magnitudes"]),
        helper.make_node("Mul", ["magnitudes", "mirror_odd"], ["odd_part"]),
        helper.make_node("Mul", ["coefficients", "mirror_even"], ["even_part"]),
        helper.make_node("Add", ["odd_part", "even_part"], ["mirror_invariant"]),
        helper.make_node("Mul", ["mirror_invariant", "frequency_weights"], ["weighted"]),
        *_normalise("layout", "weighted"),
        # tones
        helper.make_node(
            "AveragePool", ["gray"], ["half"], kernel_shape=[HIST_POOL, HIST_POOL], strides=[HIST_POOL, HIST_POOL]
        ),
        *_histogram_nodes("tones", "half"),
        helper.make_node("Slice", ["half", "centre_start", "centre_end"], ["centre_crop"]),
        *_histogram_nodes("centre", "centre_crop"),
        helper.make_node("Concat", ["layout_block", "tones_block", "centre_block"], ["blocks"], axis=1),
        helper.make_node("Pad", ["blocks", "pad_widths"], ["padded"]),
        helper.make_node("ReduceL2", ["padded"], ["norm"], axes=[1], keepdims=1),
        helper.make_node("Max", ["norm", "eps"], ["safe_norm"]),
        helper.make_node("Div", ["padded", "safe_norm"], [OUTPUT_NAME]),
    ]
    graph = helper.make_graph(
        nodes,
        "retrieval_descriptor",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["batch", 3, 224, 224])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["batch", DIM])],
        initializer=constants,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="listing-vision")
    model.ir_version = 8
    model.doc_string = (
        "Weight-free retrieval descriptor (mirror-invariant DCT layout + standardised tone histograms) "
        "with the CLIP image-encoder signature (local default)."
    )
    onnx.checker.check_model(model, full_check=True)
    return model


def main(argv: list[str]) -> int:
    out = Path(argv[0]) if argv else SHIPPED
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(build(), out)
    print(f"wrote {out} ({out.stat().st_size:,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
