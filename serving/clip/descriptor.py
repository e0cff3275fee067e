"""The weight-free local image descriptor, built as an ONNX graph with CLIP's signature.

No real CLIP weights can be downloaded on the development machines, and a randomly initialised
CLIP scores unrelated photos up to 0.99 similar, which makes the 0.95 duplicate threshold
meaningless. This graph takes the same `pixel_values` [N,3,224,224] (CLIP-normalised) and returns
`image_embeds` [N,512], so the whole serving path is unchanged:

  CLIP-normalised RGB → undo normalisation → luminance → 7×7 average pool (32×32)
  → 2-D DCT-II → the 512 lowest-frequency AC coefficients (zig-zag order, DC dropped)
  → weighted by √(1+u+v) (flattens the 1/f spectrum so no few coefficients dominate) → L2 norm.

It recognises re-uploads: resized, recompressed, slightly recoloured copies. It does not
recognise crops, rotations, flips or different photos of the same piece (see README).

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


def low_frequencies(n: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Flat indices of the `count` lowest-frequency AC coefficients, and their weights √(1+u+v)."""
    pairs = sorted(((u, v) for u in range(n) for v in range(n) if (u, v) != (0, 0)), key=lambda p: (p[0] + p[1], p[0]))
    chosen = pairs[:count]
    indices = np.array([u * n + v for u, v in chosen], dtype=np.int64)
    weights = np.sqrt(1.0 + np.array([u + v for u, v in chosen], dtype=np.float32))
    return indices, weights.astype(np.float32)


def build() -> onnx.ModelProto:
    indices, weights = low_frequencies(GRID, DIM)
    dct = dct_matrix(GRID)
    constants = [
        numpy_helper.from_array(CLIP_STD.reshape(1, 3, 1, 1), "std"),
        numpy_helper.from_array(CLIP_MEAN.reshape(1, 3, 1, 1), "mean"),
        numpy_helper.from_array(np.array([0.299, 0.587, 0.114], np.float32).reshape(1, 3, 1, 1), "luma"),
        numpy_helper.from_array(dct, "dct"),
        numpy_helper.from_array(np.ascontiguousarray(dct.T), "dct_t"),
        numpy_helper.from_array(np.array([-1, GRID, GRID], np.int64), "grid_shape"),
        numpy_helper.from_array(np.array([-1, GRID * GRID], np.int64), "flat_shape"),
        numpy_helper.from_array(indices, "low_freq"),
        numpy_helper.from_array(weights, "weights"),
        numpy_helper.from_array(np.array(1e-12, np.float32), "eps"),
    ]
    nodes = [
        helper.make_node("Mul", [INPUT_NAME, "std"], ["scaled"]),
        helper.make_node("Add", ["scaled", "mean"], ["rgb"]),
        helper.make_node("Conv", ["rgb", "luma"], ["gray"]),
        helper.make_node("AveragePool", ["gray"], ["pooled"], kernel_shape=[POOL, POOL], strides=[POOL, POOL]),
        helper.make_node("Reshape", ["pooled", "grid_shape"], ["grid"]),
        helper.make_node("MatMul", ["dct", "grid"], ["rows"]),
        helper.make_node("MatMul", ["rows", "dct_t"], ["spectrum"]),
        helper.make_node("Reshape", ["spectrum", "flat_shape"], ["flat"]),
        helper.make_node("Gather", ["flat", "low_freq"], ["coefficients"], axis=1),
        helper.make_node("Mul", ["coefficients", "weights"], ["weighted"]),
        helper.make_node("ReduceL2", ["weighted"], ["norm"], axes=[1], keepdims=1),
        helper.make_node("Max", ["norm", "eps"], ["safe_norm"]),
        helper.make_node("Div", ["weighted", "safe_norm"], [OUTPUT_NAME]),
    ]
    graph = helper.make_graph(
        nodes,
        "dct_descriptor",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["batch", 3, 224, 224])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["batch", DIM])],
        initializer=constants,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="listing-vision")
    model.ir_version = 8
    model.doc_string = "Weight-free DCT perceptual descriptor with the CLIP image-encoder signature (local default)."
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
