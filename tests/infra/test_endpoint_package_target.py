"""The endpoint's model package carries the ONNX Runtime its mode runs (serving/clip/targets.py): the
synth refuses a CPU mode given the GPU package and the GPU mode given the CPU package, naming the
`make clip-model` to run. The packages are built by serving.clip.package from stand-in wheel files
(the synth reads only their names in code/requirements.txt; test_offline_start installs real ones)."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra import costs
from serving.clip.package import build as build_package

ROOT = Path(__file__).resolve().parents[2]
SHARED_WHEELS = (
    "numpy-2.4.6-cp312-cp312-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl",
    "pillow-13.0.0-cp312-cp312-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl",
)
ONNXRUNTIME_WHEELS = {
    "gpu": "onnxruntime_gpu-1.26.0-cp312-cp312-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl",
    "cpu": "onnxruntime-1.31.1-cp312-cp312-manylinux_2_28_x86_64.whl",
}


def package_for(target: str, tmp: Path) -> Path:
    """A model package built for `target`, as `make clip-model CLIP_TARGET=target` builds it."""
    from listing_vision.embeddings.onnx_local import DESCRIPTOR_MODEL

    wheels = tmp / f"wheels-{target}"
    wheels.mkdir()
    for name in (*SHARED_WHEELS, ONNXRUNTIME_WHEELS[target]):
        (wheels / name).write_bytes(f"stand-in {name}".encode())
    return build_package(
        DESCRIPTOR_MODEL, tmp / f"model-{target}.tar.gz", allow_descriptor=True, wheels=sorted(wheels.iterdir())
    )


@pytest.mark.parametrize("mode", ["realtime_cpu", "serverless_cpu"])
def test_a_cpu_mode_given_the_gpu_package_is_refused_at_synth(mode: str, tmp_path: Path) -> None:
    # Given the package built for the GPU (onnxruntime-gpu)
    package = package_for("gpu", tmp_path)
    # When the example stage's endpoint is synthesized in a CPU mode with it
    with pytest.raises(ValueError, match="make clip-model CLIP_TARGET=cpu") as refused:
        costs.synthesize_endpoint(mode, ROOT, package)
    # Then the synth stops, saying the mode, what the package carries and which package to build
    assert f"endpoint_mode={mode} runs on CPU" in str(refused.value)
    assert "onnxruntime-gpu==1.26.0" in str(refused.value)


def test_the_gpu_mode_given_the_cpu_package_is_refused_at_synth(tmp_path: Path) -> None:
    # Given the package built for the CPU modes (the CPU onnxruntime)
    package = package_for("cpu", tmp_path)
    # When the endpoint is synthesized in realtime_gpu with it, Then the synth stops, naming the GPU package
    with pytest.raises(ValueError, match="make clip-model CLIP_TARGET=gpu") as refused:
        costs.synthesize_endpoint("realtime_gpu", ROOT, package)
    assert "endpoint_mode=realtime_gpu runs on GPU" in str(refused.value)
    assert "onnxruntime==1.31.1" in str(refused.value)


@pytest.mark.parametrize(("mode", "target"), [("serverless_cpu", "cpu"), ("realtime_gpu", "gpu")])
def test_each_mode_synthesizes_with_its_own_targets_package(mode: str, target: str, tmp_path: Path) -> None:
    # Given the package built for the mode's target
    package = package_for(target, tmp_path)
    # When the endpoint is synthesized with it
    template = costs.synthesize_endpoint(mode, ROOT, package)
    # Then its model is that package (an asset) on the mode's container
    (model,) = [r["Properties"] for r in template["Resources"].values() if r["Type"] == "AWS::SageMaker::Model"]
    image = str(model["PrimaryContainer"]["Image"])
    assert ("-cpu-" in image) == (target == "cpu") and ("-gpu-" in image) == (target == "gpu")
    assert "ModelDataUrl" in model["PrimaryContainer"]
