"""The weight-free local image descriptor, built as an ONNX graph with CLIP's signature.

No real CLIP weights can be downloaded on the development machines, and a randomly initialised
CLIP scores unrelated photos up to 0.99 similar, which makes a duplicate threshold meaningless.
This graph takes the same `pixel_values` [N,3,224,224] (CLIP-normalised) and returns
`image_embeds` [N,512], so the whole serving path is unchanged. It is the retrieval stage of
duplicate detection (candidates are then verified on local features), so it is built to keep
re-exported copies near their original rather than to tell near-identical photos apart:

  CLIP-normalised RGB → undo normalisation, then
  - layout: luminance, 7×7 average pool (32×32) → the magnitudes of its 2-D discrete Fourier
    transform at the frequencies with |u|+|v| ≤ 8 (DC dropped), each summed with its mirror
    frequency (u,−v): 44 values, those with u,v ≠ 0 weighted √2 (they stand for two). A magnitude
    does not change when the picture shifts, so a crop that moves the piece in the frame moves this
    block little (a DCT layout moved with it); the mirror sum makes a mirror image embed exactly as
    its original;
  - tones: a soft histogram (24 bins, −2.5σ..2.5σ) of the luminance standardised by its own mean
    and spread (brightness and contrast changes cancel; crops and rotations keep it), Hellinger
    mapped, over the whole image and over its central half;
  - colour: how much of each of 8 hues the picture holds (opponent colour R−G, R+G−2B at 112×112;
    each pixel votes its chroma to the hue sectors within 45° of its hue), divided by its norm, or
    by COLOUR_FLOOR when smaller, so a neutral picture (a silver piece, a grayscale copy) has almost
    no colour block rather than one of amplified noise. It keeps a design's metals apart: in
    luminance alone, a piece in gold, silver, rose gold and black (and all their copies) embed
    almost alike and fill the top k of retrieval;
  - each block L2-normalised and weighted (layout 1, whole 0.6, centre 0.4, colour 0.6; the
    colour block as it is), zero-padded to 512, L2 norm.

A grayscale copy loses the colour block, so it scores about 0.1 further from its coloured original
than a colour copy would, and its ranking among the catalogue still follows luminance.
Weights and sizes were chosen on the dev split of the labelled evaluation
(`python -m evaluation.duplicate_detection`, `evaluation/splits.json`). The file keeps its name
(`dct_descriptor.onnx`), which the model id and the docs use; the signature changes with the graph.

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
MAX_FREQUENCY = 8  # |u| + |v|
HIST_BINS = 24
HIST_RANGE = 2.5  # standard deviations either side of the mean
HIST_POOL = 2  # histograms and colour on a 112×112 image
CENTRE = (28, 84)  # the central half of the 112×112 image, both axes
HUE_SECTORS = 8
COLOUR_FLOOR = 0.03  # the colour block is divided by its norm or by this, whichever is larger
# Opponent colour axes (orthonormal, neutral grey at 0): red-green, yellow-blue
OPPONENT = np.array([[1, -1, 0], [1, 1, -2]], np.float32) / np.array([[np.sqrt(2)], [np.sqrt(6)]], np.float32)
WEIGHTS = {"layout": 1.0, "tones": 0.6, "centre": 0.4, "colour": 0.6}
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


def fourier_matrices(n: int, max_frequency: int) -> tuple[np.ndarray, ...]:
    """Cosine and sine rows of the 2-D DFT of an n×n grid at rows u = 0..max and columns
    v = −max..max (F[u,v] = Σ g[r,c]·e^(−2πi(ur+vc)/n)), and the matrix that takes the flattened
    magnitudes [(max+1)·(2·max+1)] to the mirror-invariant features: per (u, v ≥ 0) with
    0 < u+v ≤ max, |F[u,v]| + |F[u,−v]| (u or v = 0: the two coincide or are one), weighted √2
    where both u and v are non-zero (each of those stands for the pair (u,v), (u,−v))."""
    rows = np.arange(max_frequency + 1)[:, None] * np.arange(n)[None, :] * 2 * np.pi / n  # [U, n]
    cols = np.arange(-max_frequency, max_frequency + 1)[:, None] * np.arange(n)[None, :] * 2 * np.pi / n  # [V, n]
    width = 2 * max_frequency + 1
    span = range(max_frequency + 1)
    selected = [(u, v) for u in span for v in span if 0 < u + v <= max_frequency]
    select = np.zeros(((max_frequency + 1) * width, len(selected)), np.float32)
    for column, (u, v) in enumerate(selected):
        weight = np.sqrt(2.0) if u and v else 1.0
        for signed in {v, -v}:
            select[u * width + signed + max_frequency, column] += weight
    return (
        np.cos(rows).astype(np.float32),
        np.sin(rows).astype(np.float32),
        np.ascontiguousarray(np.cos(cols).T).astype(np.float32),
        np.ascontiguousarray(np.sin(cols).T).astype(np.float32),
        select,
    )


def hue_directions(sectors: int) -> np.ndarray:
    """[sectors, 3, 1, 1] weights: each sector's unit direction in the opponent plane, applied to RGB."""
    angles = np.linspace(-np.pi, np.pi, sectors, endpoint=False)
    directions = np.stack([np.cos(angles), np.sin(angles)], axis=1).astype(np.float32)  # [S, 2]
    return (directions @ OPPONENT).reshape(sectors, 3, 1, 1).astype(np.float32)


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
    cos_rows, sin_rows, cos_cols, sin_cols, select = fourier_matrices(GRID, MAX_FREQUENCY)
    centres = np.linspace(-HIST_RANGE, HIST_RANGE, HIST_BINS, dtype=np.float32)
    sector_width = 2 * np.pi / HUE_SECTORS
    padding = DIM - select.shape[1] - 2 * HIST_BINS - HUE_SECTORS
    constants = [
        numpy_helper.from_array(CLIP_STD.reshape(1, 3, 1, 1), "std"),
        numpy_helper.from_array(CLIP_MEAN.reshape(1, 3, 1, 1), "mean"),
        numpy_helper.from_array(np.array([0.299, 0.587, 0.114], np.float32).reshape(1, 3, 1, 1), "luma"),
        numpy_helper.from_array(cos_rows, "cos_rows"),
        numpy_helper.from_array(sin_rows, "sin_rows"),
        numpy_helper.from_array(cos_cols, "cos_cols"),
        numpy_helper.from_array(sin_cols, "sin_cols"),
        numpy_helper.from_array(select, "mirror_select"),
        numpy_helper.from_array(np.array([-1, GRID, GRID], np.int64), "grid_shape"),
        numpy_helper.from_array(np.array([-1, cos_rows.shape[0] * cos_cols.shape[1]], np.int64), "spectrum_shape"),
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
        numpy_helper.from_array(OPPONENT.reshape(2, 3, 1, 1), "opponent"),
        numpy_helper.from_array(hue_directions(HUE_SECTORS), "hue_directions"),
        numpy_helper.from_array(np.array(np.cos(sector_width), np.float32), "sector_cos"),
        numpy_helper.from_array(np.array(1 - np.cos(sector_width), np.float32), "sector_span"),
        numpy_helper.from_array(np.array(COLOUR_FLOOR, np.float32), "colour_floor"),
        numpy_helper.from_array(np.array([0, 0, 0, padding], np.int64), "pad_widths"),  # [N, D]: pad D at the end
        numpy_helper.from_array(np.array(1e-12, np.float32), "eps"),
        *[numpy_helper.from_array(np.array(np.sqrt(w), np.float32), f"{name}_weight") for name, w in WEIGHTS.items()],
    ]
    nodes = [
        helper.make_node("Mul", [INPUT_NAME, "std"], ["scaled"]),
        helper.make_node("Add", ["scaled", "mean"], ["rgb"]),
        helper.make_node("Conv", ["rgb", "luma"], ["gray"]),
        # layout: DFT magnitudes of the 32×32 luminance, mirror-invariant
        helper.make_node("AveragePool", ["gray"], ["pooled"], kernel_shape=[POOL, POOL], strides=[POOL, POOL]),
        helper.make_node("Reshape", ["pooled", "grid_shape"], ["grid"]),
        helper.make_node("MatMul", ["cos_rows", "grid"], ["row_cos"]),  # [N,U,32]
        helper.make_node("MatMul", ["sin_rows", "grid"], ["row_sin"]),
        helper.make_node("MatMul", ["row_cos", "cos_cols"], ["cc"]),  # [N,U,V]
        helper.make_node("MatMul", ["row_sin", "sin_cols"], ["ss"]),
        helper.make_node("MatMul", ["row_sin", "cos_cols"], ["sc"]),
        helper.make_node("MatMul", ["row_cos", "sin_cols"], ["cs"]),
        helper.make_node("Sub", ["cc", "ss"], ["real"]),  # cos(a+b)
        helper.make_node("Add", ["sc", "cs"], ["imaginary"]),  # sin(a+b), up to sign
        helper.make_node("Mul", ["real", "real"], ["real_sq"]),
        helper.make_node("Mul", ["imaginary", "imaginary"], ["imaginary_sq"]),
        helper.make_node("Add", ["real_sq", "imaginary_sq"], ["power"]),
        helper.make_node("Sqrt", ["power"], ["magnitude"]),
        helper.make_node("Reshape", ["magnitude", "spectrum_shape"], ["spectrum"]),
        helper.make_node("MatMul", ["spectrum", "mirror_select"], ["frequencies"]),
        *_normalise("layout", "frequencies"),
        # tones
        helper.make_node(
            "AveragePool", ["gray"], ["half"], kernel_shape=[HIST_POOL, HIST_POOL], strides=[HIST_POOL, HIST_POOL]
        ),
        *_histogram_nodes("tones", "half"),
        helper.make_node("Slice", ["half", "centre_start", "centre_end"], ["centre_crop"]),
        *_histogram_nodes("centre", "centre_crop"),
        # colour: each pixel's chroma voted to the hue sectors within one sector's width of its hue
        helper.make_node(
            "AveragePool", ["rgb"], ["rgb_half"], kernel_shape=[HIST_POOL, HIST_POOL], strides=[HIST_POOL, HIST_POOL]
        ),
        helper.make_node("Conv", ["rgb_half", "opponent"], ["opponent_colour"]),  # [N,2,H,W]
        helper.make_node("ReduceL2", ["opponent_colour"], ["chroma"], axes=[1], keepdims=1),  # [N,1,H,W]
        helper.make_node("Conv", ["rgb_half", "hue_directions"], ["along"]),  # chroma·cos(hue − sector)
        helper.make_node("Mul", ["chroma", "sector_cos"], ["sector_edge"]),
        helper.make_node("Sub", ["along", "sector_edge"], ["past_edge"]),
        helper.make_node("Relu", ["past_edge"], ["inside"]),
        helper.make_node("Div", ["inside", "sector_span"], ["hue_votes"]),
        helper.make_node("ReduceMean", ["hue_votes"], ["hues"], axes=[2, 3], keepdims=0),  # [N,S]
        helper.make_node("ReduceL2", ["hues"], ["hues_norm"], axes=[1], keepdims=1),
        helper.make_node("Max", ["hues_norm", "colour_floor"], ["hues_divisor"]),
        helper.make_node("Div", ["hues", "hues_divisor"], ["hues_unit"]),
        helper.make_node("Mul", ["hues_unit", "colour_weight"], ["colour_block"]),
        helper.make_node("Concat", ["layout_block", "tones_block", "centre_block", "colour_block"], ["blocks"], axis=1),
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
        "Weight-free retrieval descriptor (mirror-invariant Fourier-magnitude layout, standardised tone "
        "histograms, hue-sector colour) "
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
