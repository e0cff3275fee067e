"""The serving container's Python dependencies, carried in `model.tar.gz` as wheels and pinned by
hash, so the endpoint installs them from its own artefact and downloads nothing at start.

The AWS PyTorch inference container runs `pip install -r code/requirements.txt` before it loads the
model. The file written here says `--no-index` and `--find-links wheels` (pip reads a relative
folder beside the requirements file), and pins every package, dependencies included, to the hash
of the wheel packed beside it. So the start is reproducible, and it works with the model's network
isolation (`EnableNetworkIsolation`). The ONNX Runtime is the target's (serving/clip/targets.py):
onnxruntime-gpu for the GPU mode, the CPU `onnxruntime` for the CPU modes. The CUDA and cuDNN
libraries onnxruntime-gpu loads are not packed: the PyTorch image's own PyTorch installs them as
nvidia pip packages, which ONNX Runtime preloads (`inference._preload_cuda_libraries`;
infra/constructs/clip_endpoint.py names the image).

    python -m serving.clip.wheels --dest build/clip/wheels/gpu               # the container's platform (default)
    python -m serving.clip.wheels --dest build/clip/wheels/cpu --target cpu  # the CPU modes' wheels
    python -m serving.clip.wheels --dest /tmp/wheels --here                  # this interpreter's (the offline test)
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import parse_wheel_filename

from serving.clip.targets import ONNXRUNTIME, PROJECT_TARGETS, target_line

# What code/inference.py imports besides ONNX Runtime (the target's: serving/clip/targets.py).
# OpenCV (headless: the image has no display libraries) runs the duplicate verification.
SHARED_REQUIREMENTS = (
    "opencv-python-headless==4.10.0.84",
    "numpy==2.4.6",
    "pillow==13.0.0",
)
WHEELS_DIR = "wheels"


def container_requirements(target: str = "gpu") -> tuple[str, ...]:
    """What the container installs for a target: gpu (endpoint_mode realtime_gpu) or cpu."""
    return (ONNXRUNTIME[target], *SHARED_REQUIREMENTS)


CONTAINER_REQUIREMENTS = container_requirements("gpu")


def local_requirements() -> tuple[str, ...]:
    """The CPU target's packages, downloaded for this machine by the offline start test (its
    ONNX Runtime is the one constraints.txt pins, which the tests run)."""
    return container_requirements("cpu")


def wheels_target(wheels: Iterable[Path]) -> str | None:
    """The target these wheels are for (from their ONNX Runtime), None when they hold none."""
    projects = {str(parse_wheel_filename(wheel.name)[0]) for wheel in wheels}
    found = {PROJECT_TARGETS[project] for project in projects if project in PROJECT_TARGETS}
    if len(found) > 1:
        raise ValueError("both ONNX Runtime builds among the wheels: pack one target's")
    return found.pop() if found else None


@dataclass(frozen=True)
class Target:
    """The interpreter the wheels are for, as `pip download` names it."""

    platforms: tuple[str, ...]
    python_version: str

    def pip_options(self) -> list[str]:
        options = [f"--platform={platform}" for platform in self.platforms]
        return [*options, f"--python-version={self.python_version}", "--implementation=cp"]


# The PyTorch 2.6 inference image: Ubuntu 22.04 (glibc 2.35), CPython 3.12, x86_64
CONTAINER = Target(("manylinux_2_28_x86_64", "manylinux2014_x86_64"), "3.12")


def download(
    dest: Path, requirements: Sequence[str] = CONTAINER_REQUIREMENTS, target: Target | None = CONTAINER
) -> list[Path]:
    """Every wheel `requirements` needs on `target` (None: this interpreter), dependencies included,
    in `dest` (emptied of wheels first, so none of an earlier resolution is packed)."""
    dest.mkdir(parents=True, exist_ok=True)
    for stale in dest.glob("*.whl"):
        stale.unlink()
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:", f"--dest={dest}"]
    subprocess.run([*command, *(target.pip_options() if target else []), *requirements], check=True)
    return sorted(dest.glob("*.whl"))


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def requirements_file(wheels: Iterable[Path], target: str | None = None) -> str:
    """`code/requirements.txt` for these wheels: no index, the wheels' folder, each package pinned to
    its version and its wheels' hashes (hash-checking mode then refuses anything else), and the
    target they are for (given, or read from their ONNX Runtime), which synth checks."""
    wheels = list(wheels)
    packed = wheels_target(wheels)
    if target and packed and packed != target:
        raise ValueError(f"the wheels hold {packed}'s ONNX Runtime, not {target}'s ({ONNXRUNTIME[target]})")
    target = target or packed
    hashes: dict[tuple[str, str], list[str]] = defaultdict(list)
    for wheel in wheels:
        project, release, _, _ = parse_wheel_filename(wheel.name)
        hashes[(str(project), str(release))].append(sha256(wheel))
    if not hashes:
        raise ValueError("no wheels to pin: the container would have nothing to install")
    projects = [project for project, _ in hashes]
    if len(set(projects)) != len(projects):
        raise ValueError(f"two versions of one package among the wheels: {sorted(hashes)}")
    lines = [
        "# Installed from the wheels beside this file, by hash; nothing is downloaded (serving/clip/wheels.py).",
        *([target_line(target)] if target else []),
        "--no-index",
        f"--find-links {WHEELS_DIR}",
    ]
    for (pinned, at), digests in sorted(hashes.items()):
        lines.append(f"{pinned}=={at} " + " ".join(f"--hash=sha256:{digest}" for digest in sorted(digests)))
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serving.clip.wheels", description=__doc__.splitlines()[0])
    parser.add_argument("--dest", type=Path, default=Path("build/clip/wheels/gpu"))
    parser.add_argument("--target", choices=tuple(ONNXRUNTIME), default="gpu", help="the endpoint modes' ONNX Runtime")
    parser.add_argument("--here", action="store_true", help="for this interpreter, with the CPU ONNX Runtime")
    args = parser.parse_args(argv)
    if args.here:
        wheels = download(args.dest, local_requirements(), None)
    else:
        wheels = download(args.dest, container_requirements(args.target))
    print(requirements_file(wheels), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
