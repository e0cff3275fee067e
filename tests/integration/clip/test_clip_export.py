"""Export → package, on a tiny randomly initialised CLIP: the exported model matches transformers,
the package's handler runs on its own code alone and refuses a CPU unless allowed, the descriptor and
fp16 are packaged only when asked or measured, and decoding at reduced scale embeds as decoding every
pixel."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from listing_vision.embeddings.clip_onnx import CLIP_STD, ClipEncoder, SessionOptions, preprocess
from listing_vision.embeddings.onnx_local import OnnxEmbedder
from listing_vision.imaging.pixels import decode_image
from serving.clip import inference
from serving.clip import wheels as container_wheels
from serving.clip.export import export
from serving.clip.package import build as build_package
from tests.integration.clip.conftest import TINY

# The export traces the model; its tracer warnings are expected. (Named here, not in pyproject.toml,
# whose filters pytest resolves at start-up: naming the class there imports torch in every run.)
pytestmark = pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")


def test_a_gpu_endpoint_refuses_to_serve_on_cpu_unless_allowed(
    model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given ONNX Runtime without a usable CUDA provider (this machine), and no permission for CPU
    monkeypatch.delenv("CLIP_ALLOW_CPU", raising=False)
    # When the SageMaker handler loads the model, it refuses, naming the providers it got
    with pytest.raises(RuntimeError, match="CPUExecutionProvider") as refused:
        inference.model_fn(str(model_dir))
    assert "CLIP_ALLOW_CPU" in str(refused.value)
    # And with the explicit setting it serves on CPU
    monkeypatch.setenv("CLIP_ALLOW_CPU", "true")
    assert inference.model_fn(str(model_dir)).provider == "CPUExecutionProvider"


def test_the_packaged_handler_runs_on_its_own_code_alone(model_dir: Path, photos: list[Path], tmp_path: Path) -> None:
    # Given the unpacked model.tar.gz, run by a Python that has the installed packages but not this repository
    script = """
import base64, json, sys
sys.path.insert(0, sys.argv[1] + "/code")
import inference
model = inference.model_fn(sys.argv[1])
image = base64.b64encode(open(sys.argv[2], "rb").read()).decode()
request = inference.input_fn(json.dumps({"images": [image], "features": True}), "application/json")
described = json.loads(inference.output_fn(inference.predict_fn(request, model), "application/json")[0])
features = described["features"][0]
check = {"verify": {"query": features, "candidates": [{"features": features, "near": True}]}}
request = inference.input_fn(json.dumps(check), "application/json")
verdicts = json.loads(inference.output_fn(inference.predict_fn(request, model), "application/json")[0])
files = [module.__file__ for name, module in sys.modules.items() if name.split(".")[0] in ("listing_vision", "serving")]
print(json.dumps({"files": files, "dim": described["dim"], "verdicts": verdicts["verdicts"]}))
"""
    env = {"PATH": os.environ["PATH"], "CLIP_ALLOW_CPU": "true", "HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-I", "-c", script, str(model_dir), str(photos[0])],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout.splitlines()[-1])
    # Then it embeds and verifies, and every library module it loaded came from the package
    assert answer["dim"] == 16 and answer["verdicts"][0]["match"] == "near"
    assert answer["files"] and all(f.startswith(str(model_dir / "code")) for f in answer["files"]), answer["files"]


def test_serving_matches_transformers_end_to_end(tiny_clip: Path, model_dir: Path, photos: list[Path]) -> None:
    import torch
    from PIL import Image
    from transformers import CLIPImageProcessor, CLIPVisionModelWithProjection

    model = CLIPVisionModelWithProjection.from_pretrained(tiny_clip).eval()
    images = [Image.open(p).convert("RGB") for p in photos[:5]]
    blobs = [p.read_bytes() for p in photos[:5]]
    # Both resize modes: CLIP's centre crop, and serving's whole image squashed to 224×224
    processors = {
        "clip": CLIPImageProcessor(),
        "squash": CLIPImageProcessor(size={"height": 224, "width": 224}, do_center_crop=False),
    }
    for mode, processor in processors.items():
        with torch.no_grad():
            pixels = processor(images=images, return_tensors="pt")["pixel_values"]
            expected = torch.nn.functional.normalize(model(pixel_values=pixels).image_embeds, dim=-1).numpy()
        got = OnnxEmbedder(model_dir / "model.onnx", resize=mode).embed(blobs)  # type: ignore[arg-type]
        assert np.abs(got - expected).max() <= 1e-4, mode


def test_the_descriptor_is_packaged_for_the_endpoint_only_when_asked(tmp_path: Path) -> None:
    from listing_vision.embeddings.onnx_local import DESCRIPTOR_MODEL
    from serving.clip.package import DescriptorRefused

    # Given no CLIP export, only the weight-free descriptor: packaging it for the GPU endpoint is refused
    with pytest.raises(DescriptorRefused, match="allow-descriptor"):
        build_package(DESCRIPTOR_MODEL, tmp_path / "model.tar.gz")
    assert not (tmp_path / "model.tar.gz").exists()
    # unless asked for explicitly
    assert build_package(DESCRIPTOR_MODEL, tmp_path / "model.tar.gz", allow_descriptor=True).is_file()
    # and the GPU container's wheels are the onnxruntime-gpu that links the serving image's CUDA 12,
    assert "onnxruntime-gpu==1.26.0" in container_wheels.CONTAINER_REQUIREMENTS
    assert container_wheels.container_requirements("gpu") == container_wheels.CONTAINER_REQUIREMENTS
    # and the rest of what the packaged code imports, pinned as the tests here run it, in both targets
    constraints = Path(__file__).resolve().parents[3] / "constraints.txt"
    pinned = dict(line.split("==") for line in constraints.read_text().split() if "==" in line)
    for package in ("opencv-python-headless", "numpy", "pillow"):
        for target in ("gpu", "cpu"):
            assert f"{package}=={pinned[package]}" in container_wheels.container_requirements(target), package


def camera_sized(photos: list[Path], factor: int) -> list[bytes]:
    """The shipped photos upscaled to camera sizes and saved as JPEG, so decoding can skip pixels."""
    import io

    blobs = []
    for path in photos:
        image = Image.open(path).convert("RGB")
        buffer = io.BytesIO()
        image.resize((image.width * factor, image.height * factor), Image.Resampling.LANCZOS).save(
            buffer, "JPEG", quality=92
        )
        blobs.append(buffer.getvalue())
    return blobs


# The host path decodes JPEGs at a reduced DCT scale; these bound how far that moves embeddings
# from decoding every pixel (what serving did before), so catalogue vectors need no re-embedding.
PARITY_MIN_COSINE = 0.9995
PARITY_MEAN_GREY_LEVELS = 0.5
CLIP_STD_GREY = CLIP_STD[:, None, None] * 255  # normalised units back to grey levels


def test_decoding_at_reduced_scale_embeds_as_decoding_every_pixel(model_dir: Path, photos: list[Path]) -> None:
    from listing_vision.embeddings.onnx_local import DESCRIPTOR_MODEL
    from listing_vision.embeddings.vision_model import VisionModel

    package = sorted((Path(__file__).resolve().parents[2] / "data" / "package_photos").glob("*.jpg"))
    for factor in (4, 8):  # decoded at 1/2 and 1/4 scale
        blobs = camera_sized(photos + package, factor)
        decoded = [decode_image(b) for b in blobs]  # every pixel, as serving decoded before
        assert decode_image(blobs[0], reduce_to=384).width < decoded[0].width  # pixels were skipped
        # Given the full decode's preprocessed pixels and the host path's
        full = np.stack([preprocess(image, 224, "squash") for image in decoded])
        reduced = np.stack([preprocess(decode_image(b, reduce_to=384), 224, "squash") for b in blobs])
        grey_levels = np.abs(full - reduced) * CLIP_STD_GREY
        assert grey_levels.mean() <= PARITY_MEAN_GREY_LEVELS, factor
        # Then both models embed them alike: the shipped descriptor and a ViT (tiny, random weights)
        for model in (DESCRIPTOR_MODEL, model_dir / "model.onnx"):
            encoder = ClipEncoder(model, SessionOptions(prefer_gpu=False))
            before = encoder.encode_images(decoded)
            after = VisionModel(encoder).embed(blobs)
            assert float((before * after).sum(1).min()) >= PARITY_MIN_COSINE, (factor, model.name)


def test_fp16_is_exported_with_fp32_edges_and_refused_at_synth_until_measured_faster(
    tiny_clip: Path, tmp_path: Path
) -> None:
    import onnx

    from serving.clip.model_report import fp16_refusal

    # Given the export with its fp16 variant (no GPU here: its speed cannot be measured)
    report = export(str(tiny_clip), tmp_path / "model.onnx", fp16=True)
    fp16 = onnx.load(report.fp16_out or "")
    # Then it takes and returns fp32, is fp16 inside with attention fused, and agrees with PyTorch
    assert [i.type.tensor_type.elem_type for i in fp16.graph.input] == [onnx.TensorProto.FLOAT]
    assert [o.type.tensor_type.elem_type for o in fp16.graph.output] == [onnx.TensorProto.FLOAT]
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in fp16.graph.initializer)
    assert report.fp16_fused and report.fp16_fused.get("Attention") == TINY["num_hidden_layers"]
    assert report.fp16_min_cosine is not None and report.fp16_min_cosine >= 0.999
    assert report.fp16_speedup is None
    written = json.loads((tmp_path / "model-report.json").read_text())
    assert written["fp16_min_cosine"] == report.fp16_min_cosine and written["fp16_speedup"] is None
    # And a package of fp32 alone, or of fp16 never measured, or measured slower, is refused for fp16
    fp32_only = build_package(tmp_path / "model.onnx", tmp_path / "fp32.tar.gz")
    assert "has no model.fp16.onnx" in (fp16_refusal(fp32_only) or "")
    unmeasured = build_package(
        tmp_path / "model.onnx",
        tmp_path / "fp16.tar.gz",
        Path(report.fp16_out or ""),
        report=tmp_path / "model-report.json",
    )
    assert "never measured" in (fp16_refusal(unmeasured) or "")
    for speedup, refused in ((1.1, True), (1.45, False)):
        measured = tmp_path / f"report-{speedup}.json"
        measured.write_text(json.dumps({**written, "fp16_speedup": speedup, "speed_device": "NVIDIA H200"}))
        tarball = build_package(
            tmp_path / "model.onnx", tmp_path / f"m-{speedup}.tar.gz", Path(report.fp16_out or ""), report=measured
        )
        assert (fp16_refusal(tarball) is not None) == refused, speedup
    assert "1.10× fp32's speed on NVIDIA H200" in (fp16_refusal(tmp_path / "m-1.1.tar.gz") or "")
