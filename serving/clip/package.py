"""Build `model.tar.gz` in the layout SageMaker expects.

model.onnx                  the encoder (and model.fp16.onnx / model.int8.onnx when given)
model-report.json           the export's report (parity, fp16 speed), when given: what synth checks
code/inference.py           serving/clip/inference.py
code/listing_vision/...     the library modules the handler runs (SERVING_MODULES: the CLIP
                            encoder, the duplicate check's verification), nothing else
code/requirements.txt       no index, the wheels beside it, every package pinned by hash, and the
                            target the package is for (`# target: gpu|cpu`, which synth checks)
code/wheels/*.whl           the target's ONNX Runtime (gpu: onnxruntime-gpu; cpu: onnxruntime),
                            opencv-python-headless, numpy, pillow and their dependencies, for the
                            serving image's platform (serving/clip/wheels.py, serving/clip/targets.py):
                            the endpoint installs them at start and downloads nothing

python -m serving.clip.package --model build/clip/model.onnx --out build/clip/model.tar.gz \
    [--target gpu|cpu] [--wheels DIR]
"""

from __future__ import annotations

import argparse
import io
import sys
import tarfile
from collections.abc import Sequence
from pathlib import Path

import listing_vision
from serving.clip import inference
from serving.clip import wheels as container_wheels
from serving.clip.model_report import FP16_MODEL, REPORT_NAME
from serving.clip.targets import ONNXRUNTIME, REQUIREMENTS, TARGETS

LIBRARY = Path(listing_vision.__file__).parent
# The handler's imports, with their packages' __init__ files: a test runs the packaged code alone.
SERVING_MODULES = (
    "__init__.py",
    "embeddings/__init__.py",
    "embeddings/batching.py",
    "embeddings/clip_onnx.py",
    "embeddings/multipart.py",
    "embeddings/vision_model.py",
    "imaging/__init__.py",
    "imaging/features.py",
    "imaging/npz.py",
    "imaging/pixels.py",
    "imaging/verify.py",
)

DESCRIPTOR_DOC = "Weight-free retrieval descriptor"


class DescriptorRefused(SystemExit):
    """The weight-free descriptor is not CLIP: a GPU endpoint serving it is a mistake unless asked for."""


def is_descriptor(model: Path) -> bool:
    import onnx

    return onnx.load(str(model), load_external_data=False).doc_string.startswith(DESCRIPTOR_DOC)


def build(
    model: Path,
    out: Path,
    fp16_model: Path | None = None,
    int8_model: Path | None = None,
    allow_descriptor: bool = False,
    report: Path | None = None,
    wheels: Sequence[Path] | None = None,
    target: str | None = None,
) -> Path:
    """The package SageMaker unpacks into /opt/ml/model. `wheels` (serving/clip/wheels.py) are what
    the container installs at start, for `target` (gpu or cpu; None: what their ONNX Runtime is),
    refused when they are another target's; without them the package has no requirements.txt and
    serves only in a process that has its dependencies already (tests, benchmarks, the synth-only
    stand-in)."""
    requirements = None if wheels is None else container_wheels.requirements_file(wheels, target)
    if not allow_descriptor and is_descriptor(model):
        raise DescriptorRefused(
            f"{model} is the weight-free descriptor, not CLIP. Export real CLIP first "
            "(python -m serving.clip.export --model openai/clip-vit-base-patch32 --out build/clip/model.onnx), "
            "or package the descriptor on purpose with --allow-descriptor (make clip-model CLIP_DESCRIPTOR=1)."
        )
    out.parent.mkdir(parents=True, exist_ok=True)

    def add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        info.mode = 0o644
        tar.addfile(info, io.BytesIO(data))

    with tarfile.open(out, "w:gz") as tar:
        add_bytes(tar, "model.onnx", model.read_bytes())
        if fp16_model:
            add_bytes(tar, FP16_MODEL, fp16_model.read_bytes())
        if report:
            add_bytes(tar, REPORT_NAME, report.read_bytes())
        if int8_model:  # served when CLIP_MODEL_FILE=model.int8.onnx (CPU instances)
            add_bytes(tar, "model.int8.onnx", int8_model.read_bytes())
        add_bytes(tar, "code/inference.py", Path(inference.__file__).read_bytes())
        for module in SERVING_MODULES:
            add_bytes(tar, f"code/listing_vision/{module}", (LIBRARY / module).read_bytes())
        if wheels is not None and requirements is not None:
            add_bytes(tar, REQUIREMENTS, requirements.encode())
            for wheel in wheels:
                tar.add(wheel, f"code/{container_wheels.WHEELS_DIR}/{wheel.name}")
    return out


def installs_offline(tarball: Path) -> bool:
    """Whether the package's container installs its dependencies from its own wheels, by hash (what
    a deploy needs: the model runs with network isolation)."""
    try:
        with tarfile.open(tarball) as tar:
            member = tar.extractfile(REQUIREMENTS)
            lines = member.read().decode().splitlines() if member else []
    except (tarfile.TarError, KeyError, OSError):
        return False
    packages = [line for line in lines if line and not line.startswith(("#", "--"))]
    return "--no-index" in lines and bool(packages) and all("--hash=sha256:" in line for line in packages)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serving.clip.package")
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--fp16-model", type=Path)
    parser.add_argument("--int8-model", type=Path)
    parser.add_argument("--report", type=Path, help="the export's model-report.json")
    parser.add_argument("--out", type=Path, default=Path("build/clip/model.tar.gz"))
    parser.add_argument(
        "--allow-descriptor", action="store_true", help="package the weight-free descriptor for the endpoint on purpose"
    )
    parser.add_argument(
        "--wheels",
        type=Path,
        help="a folder holding the target's wheels already (default: download them into build/clip/wheels/TARGET)",
    )
    parser.add_argument(
        "--target",
        choices=TARGETS,
        default="gpu",
        help="the ONNX Runtime packed: gpu for endpoint_mode realtime_gpu, cpu for realtime_cpu and serverless_cpu",
    )
    args = parser.parse_args(argv)
    if args.wheels:
        wheels = sorted(args.wheels.glob("*.whl"))
    else:
        requirements = container_wheels.container_requirements(args.target)
        wheels = container_wheels.download(Path("build/clip/wheels") / args.target, requirements)
    path = build(
        args.model, args.out, args.fp16_model, args.int8_model, args.allow_descriptor, args.report, wheels, args.target
    )
    print(f"wrote {path} ({path.stat().st_size:,} bytes, target {args.target}: {ONNXRUNTIME[args.target]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
