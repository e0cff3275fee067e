"""Build the Lambda layers declared in layers/layers.json into build/layers/<name>/python.

Each layer holds its packages (pinned in layers/common/requirements.txt and constraints.txt) with
everything they need that `base` does not already hold, as manylinux wheels for the Lambda
platform (Python 3.12, x86_64) whatever machine this runs on; `base` also holds listing_vision.
Tests directories are left out, and every module is compiled to bytecode for Python 3.12 with
unchecked-hash .pyc files (valid whatever the files' timestamps become in the zip): Lambda's /opt
is read-only, so without them every cold start compiles every module it imports. Compiling needs
a Python 3.12 interpreter (PYTHON312, else `python3.12` on PATH); without one the layers are
built without bytecode, and it says so. One that is there but does not run as Python 3.12 (a
pyenv shim of a version not selected, say), or that leaves most modules without bytecode, stops
the build, saying why. Finally each function's layers (functions/specs.py) plus
its code must fit Lambda's 250 MB. The build writes a digest of what it was built from
(`inputs.sha256`), so that the cold-start bench can tell a stale build from a current one.

    python scripts/build_layers.py [--out build/layers] [--no-compile]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from functions.specs import FUNCTIONS  # noqa: E402

PLATFORM = [
    "--implementation",
    "cp",
    "--python-version",
    "3.12",
    "--only-binary=:all:",
    *[
        arg
        for tag in ("manylinux2014_x86_64", "manylinux_2_28_x86_64", "manylinux_2_34_x86_64")
        for arg in ("--platform", tag)
    ],
]
LAMBDA_LIMIT_MB = 250
DIGEST_FILE = "inputs.sha256"
# Test suites that ship inside wheels: never imported at run time.
TESTS = re.compile(r"(^|/)(tests?|testing)$")


def pins(requirements: Path = ROOT / "layers/common/requirements.txt") -> dict[str, str]:
    """Requirement name -> its pinned line, from the library's requirements (comments dropped: pip
    refuses a requirement given on its command line with a trailing `# why`)."""
    found = {}
    for raw in requirements.read_text().splitlines():
        line = re.sub(r"(^|\s+)#.*$", "", raw).strip()
        if line:
            name = re.split(r"[\[=<>!~ ]", line, maxsplit=1)[0].lower()
            found[name] = line
    return found


def resolve(pip: list[str], requirements: list[str]) -> dict[str, str]:
    """Every distribution (name -> version) these requirements install on the Lambda platform."""
    with tempfile.TemporaryDirectory() as work:
        report = Path(work) / "report.json"
        subprocess.run(
            [*pip, "install", "--quiet", "--dry-run", "--ignore-installed", "--target", work, "--report", str(report),
             *PLATFORM, "-c", str(ROOT / "constraints.txt"), *requirements],
            check=True,
        )  # fmt: skip
        installs = json.loads(report.read_text())["install"]
    return {item["metadata"]["name"].lower(): item["metadata"]["version"] for item in installs}


def build(out: Path, compile_bytecode: bool) -> dict[str, int]:
    pip = [os.environ.get("PIP", str(ROOT / ".venv/bin/pip"))]
    if not Path(pip[0]).exists():
        pip = [sys.executable, "-m", "pip"]
    groups = {k: v for k, v in json.loads((ROOT / "layers/layers.json").read_text()).items() if not k.startswith("//")}
    pinned = pins()
    python312 = bytecode_compiler() if compile_bytecode else None  # a broken one stops the build before it starts
    shutil.rmtree(out, ignore_errors=True)
    base: dict[str, str] = {}
    sizes: dict[str, int] = {}
    for name, packages in groups.items():
        resolved = resolve(pip, [pinned[package.lower()] for package in packages])
        wanted = {dist: version for dist, version in resolved.items() if name == "base" or dist not in base}
        target = out / name / "python"
        subprocess.run(
            [*pip, "install", "--quiet", "--no-deps", "--no-compile", "--target", str(target), *PLATFORM,
             *[f"{dist}=={version}" for dist, version in sorted(wanted.items())]],
            check=True,
        )  # fmt: skip
        if name == "base":
            base = resolved
            library = str(ROOT / "layers/common")
            # setuptools reuses layers/common/build/lib from an earlier build and can ship stale modules.
            shutil.rmtree(ROOT / "layers/common/build", ignore_errors=True)
            subprocess.run(
                [*pip, "install", "--quiet", "--no-deps", "--no-compile", "--target", str(target), library], check=True
            )
        for folder in sorted(target.rglob("*"), reverse=True):
            if folder.is_dir() and TESTS.search(folder.relative_to(target).as_posix()):
                shutil.rmtree(folder, ignore_errors=True)
        sizes[name] = folder_mb(out / name)
    if python312:
        for name in groups:
            compile_layer(python312, out / name)
            sizes[name] = folder_mb(out / name)
    elif compile_bytecode:
        print("No Python 3.12 found (set PYTHON312): layers built without bytecode, cold starts will be slower.")
    return sizes


class BytecodeError(SystemExit):
    """The Python 3.12 found cannot compile the layers: the message says which and why."""


def bytecode_compiler() -> str | None:
    """The Python 3.12 that compiles the layers, checked to run as 3.12: PYTHON312 when set, else
    `python3.12` on PATH, else one pyenv has installed (a pyenv shim on PATH fails when 3.12 is
    installed but not selected); None when there is none."""
    chosen = os.environ.get("PYTHON312")
    if chosen:
        return _probe_312(chosen)
    candidates = [found] if (found := shutil.which("python3.12")) else []
    pyenv_root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
    candidates += [str(path) for path in sorted(pyenv_root.glob("versions/3.12*/bin/python3.12"), reverse=True)]
    first_error: BytecodeError | None = None
    for candidate in candidates:
        try:
            return _probe_312(candidate)
        except BytecodeError as error:
            first_error = first_error or error
    if first_error:
        raise first_error
    return None


def _probe_312(python312: str) -> str:
    probe = subprocess.run(
        [python312, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"], capture_output=True, text=True
    )
    if probe.returncode != 0 or probe.stdout.strip() != "3.12":
        said = (probe.stderr.strip() or probe.stdout.strip() or f"exit status {probe.returncode}").splitlines()[0]
        raise BytecodeError(
            f"{python312} does not run as Python 3.12 ({said}): set PYTHON312 to a working Python 3.12, "
            "or build without bytecode (--no-compile)."
        )
    return python312


def compile_layer(python: str, folder: Path) -> int:
    """Compile every module under `folder` to unchecked-hash bytecode; the number compiled. Files
    Pillow or numpy ship for other Pythons fail to compile, so some failures are expected; a build
    where most modules got no bytecode stops, with what the compiler said."""
    compile_all = [python, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash", str(folder)]
    result = subprocess.run(compile_all, check=False, capture_output=True, text=True)
    modules = sum(1 for _ in folder.rglob("*.py"))
    compiled = sum(1 for _ in folder.rglob("__pycache__/*.pyc"))
    if compiled * 2 < modules:
        said = "\n".join((result.stderr or result.stdout).strip().splitlines()[-5:])
        raise BytecodeError(f"{python} compiled {compiled} of the {modules} modules in {folder}:\n{said}")
    return compiled


def inputs_digest() -> str:
    """SHA-256 over everything the layers are built from: the library's sources and pins, the
    layer groups and the constraints (bytecode is unchecked-hash, so a stale build is never
    recompiled by the interpreter)."""
    library = ROOT / "layers/common"
    skipped = {"build", "__pycache__"}
    files = [
        path
        for path in library.rglob("*")
        if path.is_file()
        and not skipped.intersection(path.relative_to(library).parts)
        and not any(part.endswith(".egg-info") for part in path.parts)
    ]
    digest = hashlib.sha256()
    for path in sorted([*files, ROOT / "constraints.txt", ROOT / "layers/layers.json"]):
        digest.update(path.relative_to(ROOT).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def is_current(out: Path) -> bool:
    stamp = out / DIGEST_FILE
    return stamp.is_file() and stamp.read_text().strip() == inputs_digest()


def folder_mb(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) // 1_000_000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python scripts/build_layers.py", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "layers")
    parser.add_argument("--no-compile", action="store_true", help="leave out the .pyc files")
    args = parser.parse_args(argv)
    sizes = build(args.out, not args.no_compile)
    (args.out / DIGEST_FILE).write_text(inputs_digest() + "\n")
    print("Layers (MB unzipped): " + ", ".join(f"{name} {size}" for name, size in sizes.items()))
    too_big = []
    for spec in FUNCTIONS:
        code = folder_mb(ROOT / "functions" / spec.package)
        total = code + sum(sizes[name] for name in spec.all_layers)
        print(f"  {spec.name}: {' + '.join(spec.all_layers)} + code = {total} MB of {LAMBDA_LIMIT_MB} MB")
        if total > LAMBDA_LIMIT_MB:
            too_big.append(spec.name)
    if too_big:
        print(f"Over Lambda's {LAMBDA_LIMIT_MB} MB: {', '.join(too_big)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
