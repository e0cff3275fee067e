"""The export report that travels inside `model.tar.gz`, and what it allows a stage to serve.

`serving/clip/export.py` writes `model-report.json` (parity of each variant, and where a GPU was at
hand, fp32 and fp16 images/s on it); `package.py` puts it in the tarball beside the models. The
CDK app reads it back at synth, so an endpoint's model option and the files it loads cannot
disagree, and fp16 is served only where it was measured faster. This module needs the standard
library alone: the CDK app imports it.
"""

from __future__ import annotations

import json
import tarfile
from pathlib import Path
from typing import Any

REPORT_NAME = "model-report.json"
FP16_MODEL = "model.fp16.onnx"
FP16_MIN_SPEEDUP = 1.3  # below this, fp16's small loss of precision buys too little


def read_packaged(tarball: str | Path) -> tuple[set[str], dict[str, Any] | None]:
    """The tarball's file names and its report (None when it has none or is not a tarball)."""
    try:
        with tarfile.open(tarball) as tar:
            names = set(tar.getnames())
            member = tar.extractfile(REPORT_NAME) if REPORT_NAME in names else None
            return names, json.loads(member.read()) if member else None
    except (tarfile.TarError, OSError, ValueError):
        return set(), None


def fp16_refusal(tarball: str | Path) -> str | None:
    """Why the package cannot serve fp16, or None when it can: the fp16 model is packaged and its
    measured speed on a GPU is at least FP16_MIN_SPEEDUP × fp32's."""
    names, report = read_packaged(tarball)
    how = (
        "Export with `python -m serving.clip.export --fp16` on a machine with a CUDA GPU, then `make clip-model`, "
        "or set clip_fp16 to false."
    )
    if FP16_MODEL not in names:
        return f"clip_fp16 is set, but {tarball} has no {FP16_MODEL}. {how}"
    speedup = (report or {}).get("fp16_speedup")
    if not isinstance(speedup, (int, float)):
        return f"clip_fp16 is set, but fp16's speed was never measured on a GPU ({REPORT_NAME}). {how}"
    if speedup < FP16_MIN_SPEEDUP:
        device = (report or {}).get("speed_device", "the GPU")
        return (
            f"clip_fp16 is set, but fp16 ran only {speedup:.2f}× fp32's speed on {device} "
            f"(needs {FP16_MIN_SPEEDUP}×): serve fp32."
        )
    return None
