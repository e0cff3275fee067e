"""Which ONNX Runtime build a CLIP model package carries, and which one an endpoint mode needs.

A package is built for one target (`python -m serving.clip.package --target gpu|cpu`; `make
clip-model` picks the stage's): `gpu` packs onnxruntime-gpu, the build that links the GPU image's
CUDA (277 MB as a wheel), for `endpoint_mode` realtime_gpu; `cpu` packs the CPU `onnxruntime`
(24 MB), for realtime_cpu and serverless_cpu, whose CPU image has no CUDA for the GPU build to load.
The target is written in the package's `code/requirements.txt` (a `# target:` line beside the
pins), and the synth refuses an endpoint whose mode and package disagree (`target_refusal`).
This module needs the standard library alone: the CDK app imports it.

    python -m serving.clip.targets infra/stages/dev.json    # prints gpu or cpu: that stage's target
"""

from __future__ import annotations

import json
import sys
import tarfile
from pathlib import Path

# The ONNX Runtime each target installs. gpu: 1.26.0 is the last PyPI build linking CUDA 12 and
# cuDNN 9, what the GPU image (PyTorch 2.6 DLC, CUDA 12.4) has. cpu: the version constraints.txt
# pins, so the tests (the offline start among them) run the very build the CPU endpoints install.
ONNXRUNTIME = {"gpu": "onnxruntime-gpu==1.26.0", "cpu": "onnxruntime==1.31.1"}
TARGETS = tuple(ONNXRUNTIME)
# What each endpoint mode (infra/config.py, `endpoint_mode`) runs on
MODE_TARGETS = {"realtime_gpu": "gpu", "realtime_cpu": "cpu", "serverless_cpu": "cpu"}
DEFAULT_MODE = "realtime_gpu"
# The ONNX Runtime distributions, by their normalised names, and the target each one is
PROJECT_TARGETS = {pin.split("==")[0]: target for target, pin in ONNXRUNTIME.items()}
TARGET_LINE = "# target: "
REQUIREMENTS = "code/requirements.txt"


def target_line(target: str) -> str:
    if target not in ONNXRUNTIME:
        raise ValueError(f"unknown target {target!r}: one of {', '.join(TARGETS)}")
    return f"{TARGET_LINE}{target} ({ONNXRUNTIME[target]}; serving/clip/targets.py)"


def packaged_target(tarball: str | Path) -> str | None:
    """The target a package was built for: what its requirements pin (onnxruntime-gpu or onnxruntime),
    else its `# target:` line; None for a package without requirements (a synth-only stand-in)."""
    try:
        with tarfile.open(tarball) as tar:
            member = tar.extractfile(REQUIREMENTS)
            lines = member.read().decode().splitlines() if member else []
    except (tarfile.TarError, KeyError, OSError, UnicodeDecodeError):
        return None
    for line in lines:
        project = line.split("==")[0].strip().lower().replace("_", "-")
        if project in PROJECT_TARGETS:
            return PROJECT_TARGETS[project]
    recorded = [line[len(TARGET_LINE) :].split()[0] for line in lines if line.startswith(TARGET_LINE)]
    return recorded[0] if recorded and recorded[0] in ONNXRUNTIME else None


def target_refusal(tarball: str | Path, mode: str) -> str | None:
    """Why this package cannot serve an endpoint in `mode`, or None: its ONNX Runtime is the other
    target's (a package without requirements is refused elsewhere: infra/app.py, at deploy)."""
    needed, packed = MODE_TARGETS[mode], packaged_target(tarball)
    if packed is None or packed == needed:
        return None
    why = (
        "the CPU container has no CUDA for it to load, and it is 277 MB of wheels to install at every start"
        if needed == "cpu"
        else "it has no CUDA provider: the GPU would sit idle"
    )
    return (
        f"endpoint_mode={mode} runs on {needed.upper()}, but {tarball} was built for {packed} "
        f"({ONNXRUNTIME[packed]}): {why}. Rebuild it with `make clip-model CLIP_TARGET={needed}`."
    )


def stage_target(context_file: Path) -> str:
    """The target of a stage's context file (its endpoint_mode; unset: realtime_gpu)."""
    mode = json.loads(context_file.read_text()).get("endpoint_mode", DEFAULT_MODE)
    if mode not in MODE_TARGETS:
        raise SystemExit(f"{context_file}: endpoint_mode={mode!r} is none of {', '.join(MODE_TARGETS)}")
    return MODE_TARGETS[mode]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        raise SystemExit("usage: python -m serving.clip.targets CONTEXT_FILE")
    print(stage_target(Path(args[0])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
