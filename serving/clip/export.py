"""Export a Hugging Face CLIP vision tower plus projection to ONNX, and prove parity.

    python -m serving.clip.export --model openai/clip-vit-base-patch32 --out build/clip/model.onnx
    python -m serving.clip.export --model ./my-local-clip-folder --out build/clip/model.onnx --fp16 --int8

The graph takes `pixel_values` [batch,3,224,224] and returns `image_embeds` [batch,D]
(unnormalised, as `CLIPVisionModelWithProjection` does; the serving code L2-normalises), with a
dynamic batch axis. After export the tool runs both models on the same batch and fails unless the
normalised embeddings agree within 1e-4 (max abs difference).

Needs torch and transformers (development dependencies only; never in Lambda or the endpoint).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from listing_vision.embeddings.clip_onnx import INPUT_NAME, OUTPUT_NAME, ClipEncoder, SessionOptions, l2_normalise

PARITY_TOLERANCE = 1e-4
OPSET = 17


@dataclass(frozen=True)
class ExportReport:
    model: str
    out: str
    dim: int
    image_size: int
    max_abs_diff: float
    min_cosine: float
    fp16_out: str | None = None
    fp16_max_abs_diff: float | None = None
    int8_out: str | None = None
    int8_min_cosine: float | None = None


class ParityError(RuntimeError):
    """The exported graph does not reproduce the PyTorch model."""


def export(
    model_name_or_path: str,
    out: Path,
    fp16: bool = False,
    int8: bool = False,
    parity_batch: int = 4,
    seed: int = 0,
) -> ExportReport:
    import torch
    from transformers import CLIPVisionModelWithProjection

    model = CLIPVisionModelWithProjection.from_pretrained(model_name_or_path)
    model.eval()
    size = int(model.config.image_size)  # type: ignore[arg-type]  # an int for CLIP vision configs

    class Tower(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module):
            super().__init__()
            self.inner = inner

        def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
            return self.inner(pixel_values=pixel_values).image_embeds

    tower = Tower(model).eval()
    out.parent.mkdir(parents=True, exist_ok=True)
    example = torch.zeros(2, 3, size, size)
    with torch.no_grad():
        torch.onnx.export(
            tower,
            (example,),
            str(out),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
            opset_version=OPSET,
            dynamo=False,
        )
    rng = np.random.default_rng(seed)
    batch = rng.standard_normal((parity_batch, 3, size, size)).astype(np.float32)
    with torch.no_grad():
        expected = l2_normalise(tower(torch.from_numpy(batch)).numpy())
    got = ClipEncoder(out, SessionOptions(prefer_gpu=False)).encode_pixels(batch)
    diff = float(np.abs(expected - got).max())
    report = ExportReport(
        model_name_or_path, str(out), int(got.shape[1]), size, diff, float((expected * got).sum(1).min())
    )
    if diff > PARITY_TOLERANCE:
        raise ParityError(f"ONNX and PyTorch embeddings differ by {diff:.2e} (> {PARITY_TOLERANCE:.0e})")
    if fp16:
        report = _export_fp16(out, batch, expected, report)
    if int8:
        report = _export_int8(out, batch, expected, report)
    return report


def _export_int8(out: Path, batch: np.ndarray, expected: np.ndarray, report: ExportReport) -> ExportReport:
    """Dynamic int8 quantisation of the weights: the fast CPU variant (about 2.7× fp32 on 2 cores in
    `make bench`). Not bit-faithful; its agreement with PyTorch is reported as the minimum cosine."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    int8_out = out.with_name(out.stem + ".int8.onnx")
    quantize_dynamic(str(out), str(int8_out), weight_type=QuantType.QInt8)
    got = ClipEncoder(int8_out, SessionOptions(prefer_gpu=False)).encode_pixels(batch)
    return ExportReport(
        **{**asdict(report), "int8_out": str(int8_out), "int8_min_cosine": float((expected * got).sum(1).min())}
    )


def _export_fp16(out: Path, batch: np.ndarray, expected: np.ndarray, report: ExportReport) -> ExportReport:
    """An fp16 copy for the CUDA provider (inputs and weights in half precision)."""
    import onnx
    from onnxruntime.transformers import float16

    half = float16.convert_float_to_float16(onnx.load(out), keep_io_types=False)
    fp16_out = out.with_name(out.stem + ".fp16.onnx")
    onnx.save(half, fp16_out)
    got = ClipEncoder(fp16_out, SessionOptions(prefer_gpu=False)).encode_pixels(batch)
    return ExportReport(
        **{**asdict(report), "fp16_out": str(fp16_out), "fp16_max_abs_diff": float(np.abs(expected - got).max())}
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serving.clip.export", description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="openai/clip-vit-base-patch32", help="hub id or local folder")
    parser.add_argument("--out", type=Path, default=Path("build/clip/model.onnx"))
    parser.add_argument("--fp16", action="store_true", help="also write MODEL.fp16.onnx for the CUDA provider")
    parser.add_argument("--int8", action="store_true", help="also write MODEL.int8.onnx (dynamic quantisation, CPU)")
    args = parser.parse_args(argv)
    try:
        report = export(args.model, args.out, fp16=args.fp16, int8=args.int8)
    except ParityError as error:
        print(f"parity check failed: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # no local folder and no hub access
        print(f"could not load {args.model!r}: {error}", file=sys.stderr)
        return 1
    print(json.dumps(asdict(report), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
