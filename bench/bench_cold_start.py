"""Cold start: each function's handler imported in a fresh Python 3.12 process, with its layers as
deployed, against the simplest layer a competent user would build, in the same run: every
dependency in one layer by `pip install --target` (pip's defaults, so with its bytecode: timestamp
.pyc files, which stay valid on Lambda because a zip keeps the files' times).

Lambda's /opt is read-only, so modules without .pyc files are compiled on every cold start; the
deployed layers (make layer: scripts/build_layers.py) carry unchecked-hash bytecode, hold only
what each function needs, and the SDKs and pymilvus are imported by the first call that needs
them. So each function also gets a second figure: the import of the handler and of everything
its first real request imports (the SDKs, pymilvus), which is what a cold request pays in all.
Each process gets Lambda's environment (LAMBDA_TASK_ROOT included), so the Powertools Tracer is
on and patches its modules as under active tracing.
Each figure is the median of COLD_RUNS fresh processes. It needs a Python 3.12 interpreter
(PYTHON312 or python3.12 on PATH) and builds both layer sets when missing or built from other
sources than today's (a few minutes).
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

from bench.figures import Figure
from functions.specs import FUNCTIONS, FunctionSpec
from local.stack import LocalStack
from scripts.build_layers import DIGEST_FILE, bytecode_compiler, inputs_digest, is_current

NAME = "cold_start"
ROOT = Path(__file__).resolve().parents[1]
LAYERS = ROOT / "build" / "layers"
MONOLITH = ROOT / "build" / "bench" / "one-layer-pip"
BASELINE = "one layer, pip install --target (with bytecode)"
COLD_RUNS = 5
# What the first real request of a function imports beyond its handler (deferred imports).
FIRST_REQUEST = {
    "dedupe": ["pymilvus"],
    "dedupe-indexer": ["pymilvus"],
    "dedupe-backfill": ["pymilvus"],
    "caption": ["pymilvus", "openai", "anthropic"],
    "generate-worker": ["openai"],
    "listing-ingest": ["anthropic"],
}


def python312() -> str | None:
    """The Python 3.12 the layer build uses (a pyenv-installed one when the shim on PATH fails)."""
    return bytecode_compiler()


def ensure_layers(interpreter: str) -> None:
    env = {**os.environ, "PYTHON312": interpreter}
    if not is_current(LAYERS):
        subprocess.run([sys.executable, str(ROOT / "scripts" / "build_layers.py")], check=True, env=env)
    if not is_current(MONOLITH):  # every runtime dependency in one layer, as pip installs it
        shutil.rmtree(MONOLITH, ignore_errors=True)
        pip = [sys.executable, "-m", "pip", "install", "--quiet", "--target", str(MONOLITH / "python")]
        platform = ["--implementation", "cp", "--python-version", "3.12", "--only-binary=:all:"]
        platform += [a for tag in ("manylinux2014_x86_64", "manylinux_2_28_x86_64") for a in ("--platform", tag)]
        requirements = ["-c", str(ROOT / "constraints.txt"), "-r", str(ROOT / "layers/common/requirements.txt")]
        subprocess.run([*pip, *platform, *requirements], check=True)
        subprocess.run([*pip, "--no-deps", str(ROOT / "layers/common")], check=True)
        (MONOLITH / DIGEST_FILE).write_text(inputs_digest() + "\n")


def import_seconds(interpreter: str, spec: FunctionSpec, paths: list[Path], extra: list[str]) -> float:
    """Median seconds to import the handler (and `extra` modules) in fresh processes that cannot
    write bytecode, as on Lambda."""
    modules = [spec.module, *extra]
    code = "import time; t = time.perf_counter(); " + "; ".join(f"import {m}" for m in modules)
    code += "; print(time.perf_counter() - t)"
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONPATH": os.pathsep.join([".", *(str(p) for p in paths)]),
        "AWS_REGION": "us-east-1",
        "AWS_LAMBDA_FUNCTION_NAME": spec.name,
        "LAMBDA_TASK_ROOT": "/var/task",
        "POWERTOOLS_SERVICE_NAME": spec.name,
        # What CDK gives every function (infra/constructs/storage.py): settings refuse to load without it
        "STOREFRONTS": os.environ["STOREFRONTS"],
    }
    samples = []
    for _ in range(COLD_RUNS):
        out = subprocess.run(
            [interpreter, "-c", code],
            cwd=ROOT / "functions" / spec.package,
            env=env,
            capture_output=True,
            text=True,
        )
        if out.returncode:
            raise SystemExit(f"{spec.name}: the handler did not import:\n{out.stderr.strip()[-2000:]}")
        samples.append(float(out.stdout.strip().splitlines()[-1]))
    return statistics.median(samples)


def folder_mb(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 1e6


def run(stack: LocalStack) -> list[Figure]:
    interpreter = python312()
    if interpreter is None:
        print("  skipped: no Python 3.12 interpreter (set PYTHON312)", flush=True)
        return []
    ensure_layers(interpreter)
    monolith = [MONOLITH / "python"]
    figures = []
    for spec in FUNCTIONS:
        layers = [LAYERS / name / "python" for name in spec.all_layers]
        ours = import_seconds(interpreter, spec, layers, [])
        before = import_seconds(interpreter, spec, monolith, [])
        figures.append(Figure(NAME, f"{spec.name}: handler import", ours, before, "s", BASELINE))
        extra = FIRST_REQUEST.get(spec.name)
        if extra:
            whole = import_seconds(interpreter, spec, layers, extra)
            eager = import_seconds(interpreter, spec, monolith, extra)
            label = f"{spec.name}: handler + first request's imports ({', '.join(extra)})"
            figures.append(Figure(NAME, label, whole, eager, "s", BASELINE))
        size = sum(folder_mb(LAYERS / name) for name in spec.all_layers)
        figures.append(Figure(NAME, f"{spec.name}: layers, unzipped", size, folder_mb(MONOLITH), "MB", "one layer"))
        print(f"  {spec.name}: {ours:.2f} s (one layer by pip: {before:.2f} s), {size:.0f} MB", flush=True)
    return figures
