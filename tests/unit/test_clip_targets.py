"""The model package's target (serving/clip/targets.py): which ONNX Runtime it packs, recorded in its
code/requirements.txt, refused when its wheels are the other target's, and chosen per stage."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
import typing
from pathlib import Path

import pytest

from infra.config import DeploymentConfig
from serving.clip import targets, wheels
from serving.clip.package import build as build_package

ROOT = Path(__file__).resolve().parents[2]
WHEEL_NAMES = {
    "gpu": "onnxruntime_gpu-1.26.0-cp312-cp312-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl",
    "cpu": "onnxruntime-1.31.1-cp312-cp312-manylinux_2_28_x86_64.whl",
}


def stand_in_wheels(folder: Path, *names: str) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(name.encode())
    return sorted(folder.glob("*.whl"))


def descriptor_package(out: Path, packed: list[Path], target: str | None) -> Path:
    from listing_vision.embeddings.onnx_local import DESCRIPTOR_MODEL

    return build_package(DESCRIPTOR_MODEL, out, allow_descriptor=True, wheels=packed, target=target)


@pytest.mark.parametrize("target", ["cpu", "gpu"])
def test_the_package_records_its_target_and_pins_that_onnx_runtime(target: str, tmp_path: Path) -> None:
    # Given the target's wheels (stand-ins named as pip downloads them)
    packed = stand_in_wheels(
        tmp_path / "wheels", WHEEL_NAMES[target], "pillow-13.0.0-cp312-cp312-manylinux_2_28_x86_64.whl"
    )
    # When the package is built for that target
    tarball = descriptor_package(tmp_path / "model.tar.gz", packed, target)
    # Then its requirements say the target and pin the target's ONNX Runtime (only that one)
    with tarfile.open(tarball) as tar:
        member = tar.extractfile("code/requirements.txt")
        assert member is not None
        requirements = member.read().decode()
    assert f"# target: {target} " in requirements
    assert targets.ONNXRUNTIME[target] + " --hash=sha256:" in requirements
    other = "gpu" if target == "cpu" else "cpu"
    assert targets.ONNXRUNTIME[other] + " " not in requirements
    # and synth reads the target back
    assert targets.packaged_target(tarball) == target


def test_wheels_of_the_other_target_are_refused_and_nothing_is_written(tmp_path: Path) -> None:
    # Given the GPU build's wheels
    packed = stand_in_wheels(tmp_path / "wheels", WHEEL_NAMES["gpu"])
    # When they are packed for the CPU target, Then the build refuses, saying whose they are
    with pytest.raises(ValueError, match="gpu's ONNX Runtime, not cpu's"):
        descriptor_package(tmp_path / "model.tar.gz", packed, "cpu")
    assert not (tmp_path / "model.tar.gz").exists()
    # and a folder holding both builds is refused whatever the target
    both = stand_in_wheels(tmp_path / "both", *WHEEL_NAMES.values())
    with pytest.raises(ValueError, match="both ONNX Runtime builds"):
        wheels.requirements_file(both)


def test_a_package_without_requirements_has_no_target(tmp_path: Path) -> None:
    # Given the synth-only stand-in: a package without wheels, and a file that is no tarball
    from listing_vision.embeddings.onnx_local import DESCRIPTOR_MODEL

    bare = build_package(DESCRIPTOR_MODEL, tmp_path / "bare.tar.gz", allow_descriptor=True)
    (tmp_path / "junk.tar.gz").write_bytes(b"not a tarball")
    # Then neither has a target, so no mode is refused for it (a deploy refuses it: infra/app.py)
    assert targets.packaged_target(bare) is None and targets.packaged_target(tmp_path / "junk.tar.gz") is None
    assert all(targets.target_refusal(bare, mode) is None for mode in targets.MODE_TARGETS)


def test_the_modes_and_pins_agree_with_the_stage_context_and_the_tested_runtime() -> None:
    # Given the stage context's endpoint modes and constraints.txt (what the tests run)
    modes = typing.get_args(DeploymentConfig.model_fields["endpoint_mode"].annotation)
    pinned = dict(line.split("==") for line in (ROOT / "constraints.txt").read_text().split() if "==" in line)
    # Then every mode has a target, only realtime_gpu the GPU's
    assert set(targets.MODE_TARGETS) == set(modes)
    assert [mode for mode, target in targets.MODE_TARGETS.items() if target == "gpu"] == ["realtime_gpu"]
    # and the CPU package's ONNX Runtime is the one the tests run (the offline start installs it)
    assert targets.ONNXRUNTIME["cpu"] == f"onnxruntime=={pinned['onnxruntime']}"
    assert wheels.local_requirements() == wheels.container_requirements("cpu")


@pytest.mark.parametrize(
    ("context", "printed"),
    [({"endpoint_mode": "serverless_cpu"}, "cpu"), ({"endpoint_mode": "realtime_cpu"}, "cpu"), ({}, "gpu")],
)
def test_make_clip_model_gets_the_stages_target(context: dict[str, str], printed: str, tmp_path: Path) -> None:
    # Given a stage's context file (no endpoint_mode: realtime_gpu)
    stage = tmp_path / "stage.json"
    stage.write_text(json.dumps({"stage": "dev", **context}))
    # When the Makefile asks for its target, Then it is the mode's
    run = subprocess.run([sys.executable, "-m", "serving.clip.targets", str(stage)], capture_output=True, text=True)
    assert (run.returncode, run.stdout.strip()) == (0, printed)


def test_the_example_dev_stage_packages_for_cpu() -> None:
    # Given the example dev context (serverless_cpu), Then its package is the CPU one
    assert targets.stage_target(ROOT / "infra/stages/dev.example.json") == "cpu"
