"""Export a Hugging Face CLIP vision tower plus projection to ONNX, and prove parity.

    python -m serving.clip.export --model openai/clip-vit-base-patch32 --out build/clip/model.onnx
    python -m serving.clip.export --model ./my-local-clip-folder --out build/clip/model.onnx --fp16 --int8

The graph takes `pixel_values` [batch,3,224,224] and returns `image_embeds` [batch,D]
(unnormalised, as `CLIPVisionModelWithProjection` does; the serving code L2-normalises), with a
dynamic batch axis. After export the tool runs both models on the same batch and fails unless the
normalised embeddings agree within 1e-4 (max abs difference).

The fp16 variant keeps fp32 inputs and outputs with fp16 inside, after ONNX Runtime's transformer
optimizer has fused attention, layer norms and activations (a graph converted whole to fp16,
inputs included, ran 2.9–3.7× slower than fp32 on an H200). It must agree with PyTorch to a
cosine of `FP16_MIN_COSINE`; where a CUDA GPU is present its speed against fp32 is measured and
written to the report, which `serving/clip/package.py` packages: a stage may serve fp16 only when
that measurement shows it faster (`model_report.py`). The report is written beside the model as
`model-report.json`.

Needs torch and transformers (development dependencies only; never in Lambda or the endpoint).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from listing_vision.embeddings.clip_onnx import INPUT_NAME, OUTPUT_NAME, ClipEncoder, SessionOptions, l2_normalise

PARITY_TOLERANCE = 1e-4
FP16_MIN_COSINE = 0.999
OPSET = 17
SPEED_BATCH = 64  # the fp16/fp32 comparison's batch (what a backfill sends)


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
    fp16_min_cosine: float | None = None
    fp16_fused: dict[str, int] | None = None  # operators the transformer optimizer fused
    speed_device: str | None = None  # the GPU the speeds below were measured on
    fp32_img_per_s: float | None = None
    fp16_img_per_s: float | None = None
    int8_out: str | None = None
    int8_min_cosine: float | None = None

    @property
    def fp16_speedup(self) -> float | None:
        if self.fp16_img_per_s is None or not self.fp32_img_per_s:
            return None
        return self.fp16_img_per_s / self.fp32_img_per_s


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
    _to_onnx(tower, size, out)
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
        eager = CLIPVisionModelWithProjection.from_pretrained(model_name_or_path, attn_implementation="eager").eval()
        report = _export_fp16(Tower(eager).eval(), eager.config, out, batch, expected, report)
    if int8:
        report = _export_int8(out, batch, expected, report)
    (out.parent / "model-report.json").write_text(json.dumps(report_json(report), indent=2))
    return report


def report_json(report: ExportReport) -> dict[str, object]:
    return {**asdict(report), "fp16_speedup": report.fp16_speedup}


def _to_onnx(tower: object, size: int, path: Path) -> None:
    import torch

    with torch.no_grad():
        torch.onnx.export(
            tower,  # type: ignore[arg-type]
            (torch.zeros(2, 3, size, size),),
            str(path),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
            opset_version=OPSET,
            dynamo=False,
        )


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


def _export_fp16(
    tower: object, config: object, out: Path, batch: np.ndarray, expected: np.ndarray, report: ExportReport
) -> ExportReport:
    """fp16 inside, fp32 at the edges, after fusion. The tower is exported again with eager attention:
    the optimizer recognises that pattern as one Attention operator, not PyTorch's SDPA export."""
    import tempfile

    from onnxruntime.transformers.optimizer import optimize_model

    fp16_out = out.with_name(out.stem + ".fp16.onnx")
    with tempfile.TemporaryDirectory() as work:
        eager = Path(work) / "eager.onnx"
        _to_onnx(tower, batch.shape[-1], eager)
        optimized = optimize_model(
            str(eager),
            model_type="clip",
            num_heads=int(config.num_attention_heads),  # type: ignore[attr-defined]
            hidden_size=int(config.hidden_size),  # type: ignore[attr-defined]
            opt_level=0,  # the fusions only; ONNX Runtime applies its own graph optimisations at load
            use_gpu=True,
        )
        fused = {name: count for name, count in optimized.get_fused_operator_statistics().items() if count}
        optimized.convert_float_to_float16(keep_io_types=True)
        optimized.save_model_to_file(str(fp16_out))
    got = ClipEncoder(fp16_out, SessionOptions(prefer_gpu=False)).encode_pixels(batch)
    min_cosine = float((expected * got).sum(1).min())
    if min_cosine < FP16_MIN_COSINE:
        raise ParityError(f"fp16 embeddings reach a cosine of only {min_cosine:.5f} (< {FP16_MIN_COSINE})")
    speeds = _gpu_speeds(out, fp16_out, batch.shape[-1])
    return ExportReport(
        **{
            **asdict(report),
            "fp16_out": str(fp16_out),
            "fp16_max_abs_diff": float(np.abs(expected - got).max()),
            "fp16_min_cosine": min_cosine,
            "fp16_fused": fused,
            **speeds,
        }
    )


def _gpu_speeds(fp32: Path, fp16: Path, size: int) -> dict[str, Any]:
    """fp32 and fp16 images/s at SPEED_BATCH on the CUDA provider (median of 20 runs), or nothing
    where there is no usable GPU: the fp16 option's speed is measured, never assumed."""
    import statistics
    import time

    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return {}
    pixels = np.random.default_rng(1).standard_normal((SPEED_BATCH, 3, size, size)).astype(np.float32)
    speeds: dict[str, Any] = {}
    for key, path in (("fp32_img_per_s", fp32), ("fp16_img_per_s", fp16)):
        encoder = ClipEncoder(path, SessionOptions(prefer_gpu=True), max_batch=SPEED_BATCH)
        if encoder.provider != "CUDAExecutionProvider":
            return {}
        for _ in range(5):
            encoder.encode_pixels(pixels)
        samples = []
        for _ in range(20):
            started = time.perf_counter()
            encoder.encode_pixels(pixels)
            samples.append(time.perf_counter() - started)
        speeds[key] = round(SPEED_BATCH / statistics.median(samples), 1)
    speeds["speed_device"] = _gpu_name()
    return speeds


def _gpu_name() -> str:
    try:
        import torch

        return str(torch.cuda.get_device_name(0))
    except Exception:  # noqa: BLE001 - a name is a label; the figures stand without it
        return "CUDA GPU"


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
    print(json.dumps(report_json(report), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
