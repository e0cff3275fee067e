"""The serving container starts without a network: it installs its dependencies from the wheels
packed in model.tar.gz, by hash, then loads the model and answers. CI has no Docker, so a network
namespace with no interface but loopback (`unshare -n`) stands in for the model's network
isolation, and a fresh virtual environment for the image's Python. The wheels are this machine's
(the CPU target's requirements: the CPU ONNX Runtime the CPU endpoint modes install); `make
clip-model` packs the serving image's (serving/clip/wheels.py)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from serving.clip import wheels
from serving.clip.package import build as build_package
from serving.clip.package import installs_offline
from serving.clip.targets import ONNXRUNTIME, packaged_target
from tests.images import fresh_image

pytestmark = pytest.mark.skipif(shutil.which("unshare") is None, reason="needs util-linux's unshare")

# What SageMaker's inference toolkit does at start, then one request through the handler's functions
SERVE_ONE = """
import base64, json, os, sys
sys.path.insert(0, os.path.join(sys.argv[1], "code"))
import inference
model = inference.model_fn(sys.argv[1])
body = json.dumps({"images": [base64.b64encode(open(sys.argv[2], "rb").read()).decode()]})
request = inference.input_fn(body, "application/json")
answer, _ = inference.output_fn(inference.predict_fn(request, model), "application/json")
print(json.dumps({"dims": len(json.loads(answer)["embeddings"][0])}))
"""


def offline(command: list[str], **options: object) -> subprocess.CompletedProcess[str]:
    """`command` in a new network namespace: no route anywhere, as with network isolation."""
    return subprocess.run(["unshare", "-n", *command], capture_output=True, text=True, timeout=600, **options)  # type: ignore[call-overload,no-any-return]


def test_the_container_installs_from_its_own_wheels_and_serves_with_no_network(model_dir: Path, tmp_path: Path) -> None:
    # Given the model packaged for the CPU modes with its dependencies' wheels (this machine's),
    # unpacked as SageMaker unpacks it
    packed = wheels.download(tmp_path / "wheels", wheels.local_requirements(), target=None)
    tarball = build_package(model_dir / "model.onnx", tmp_path / "model.tar.gz", wheels=packed, target="cpu")
    assert installs_offline(tarball) and packaged_target(tarball) == "cpu"
    opt_ml_model = tmp_path / "opt-ml-model"
    with tarfile.open(tarball) as tar:
        tar.extractall(opt_ml_model, filter="data")
    requirements = (opt_ml_model / "code" / "requirements.txt").read_text()
    assert "--no-index" in requirements.splitlines() and f"{ONNXRUNTIME['cpu']} --hash" in requirements
    # And a fresh Python with none of them, whose pip sees no configuration (no other index or folder)
    subprocess.run([sys.executable, "-m", "venv", str(tmp_path / "image")], check=True, timeout=300)
    python = str(tmp_path / "image" / "bin" / "python")
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "PIP_CONFIG_FILE": os.devnull, "CLIP_ALLOW_CPU": "true"}
    assert offline([python, "-c", "import onnxruntime"], env=env).returncode != 0
    # When the container's start runs with no network: pip install -r code/requirements.txt, then the model
    install = offline(
        [python, "-m", "pip", "install", "--disable-pip-version-check", "-r", f"{opt_ml_model}/code/requirements.txt"],
        env=env,
    )
    assert install.returncode == 0, install.stdout[-2000:] + install.stderr[-2000:]
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(fresh_image(73_001))
    served = offline([python, "-c", SERVE_ONE, str(opt_ml_model), str(photo)], env=env)
    # Then it loaded the model and answered an embedding
    assert served.returncode == 0, served.stderr[-3000:]
    assert json.loads(served.stdout.strip().splitlines()[-1]) == {"dims": 16}


def test_a_wheel_whose_bytes_changed_is_refused_at_install(model_dir: Path, tmp_path: Path) -> None:
    # Given a package whose requirements pin a wheel's hash, and that wheel replaced afterwards
    packed = wheels.download(tmp_path / "wheels", ("packaging",), target=None)
    tarball = build_package(model_dir / "model.onnx", tmp_path / "model.tar.gz", wheels=packed)
    opt_ml_model = tmp_path / "opt-ml-model"
    with tarfile.open(tarball) as tar:
        tar.extractall(opt_ml_model, filter="data")
    [wheel] = (opt_ml_model / "code" / "wheels").glob("packaging-*.whl")
    wheel.write_bytes(wheel.read_bytes() + b"\0")
    subprocess.run([sys.executable, "-m", "venv", str(tmp_path / "image")], check=True, timeout=300)
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "PIP_CONFIG_FILE": os.devnull}
    # When the container installs, Then pip refuses it by hash
    install = offline(
        [
            str(tmp_path / "image" / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "-r",
            f"{opt_ml_model}/code/requirements.txt",
        ],
        env=env,
    )
    assert install.returncode != 0 and "HASHES" in install.stderr.upper(), install.stderr[-2000:]
