"""Shared by the CLIP serving tests: a tiny randomly initialised CLIP, exported and packaged as
SageMaker unpacks it, and the container serving it. Built once per session (tests/conftest.py runs
this folder on one worker under xdist)."""

from __future__ import annotations

import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from serving.clip.container import ContainerServer
from serving.clip.export import export
from serving.clip.package import build as build_package

TINY = {
    "hidden_size": 32,
    "intermediate_size": 37,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "image_size": 224,
    "patch_size": 32,
    "projection_dim": 16,
}


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    folder = tmp_path_factory.mktemp("tiny-clip")
    CLIPVisionModelWithProjection(CLIPVisionConfig(**TINY)).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def model_dir(tiny_clip: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Given the export tool run on the tiny model, with its parity check
    work = tmp_path_factory.mktemp("export")
    report = export(str(tiny_clip), work / "model.onnx")
    assert report.max_abs_diff <= 1e-4 and report.dim == 16
    # And the SageMaker package built from it, unpacked as SageMaker unpacks it (without the container's
    # wheels: the container here is this process, which has them; test_offline_start packs them)
    tarball = build_package(work / "model.onnx", work / "model.tar.gz")
    unpacked = tmp_path_factory.mktemp("opt-ml-model")
    with tarfile.open(tarball) as tar:
        assert sorted(tar.getnames()) == [
            "code/inference.py",
            "code/listing_vision/__init__.py",
            "code/listing_vision/embeddings/__init__.py",
            "code/listing_vision/embeddings/batching.py",
            "code/listing_vision/embeddings/clip_onnx.py",
            "code/listing_vision/embeddings/multipart.py",
            "code/listing_vision/embeddings/vision_model.py",
            "code/listing_vision/imaging/__init__.py",
            "code/listing_vision/imaging/features.py",
            "code/listing_vision/imaging/npz.py",
            "code/listing_vision/imaging/pixels.py",
            "code/listing_vision/imaging/verify.py",
            "model.onnx",
        ]
        tar.extractall(unpacked, filter="data")
    return unpacked


@pytest.fixture(scope="session")
def container(model_dir: Path) -> Iterator[ContainerServer]:
    with pytest.MonkeyPatch.context() as env:
        env.setenv("CLIP_ALLOW_CPU", "true")  # this machine has no GPU: serve on CPU on purpose
        server = ContainerServer(str(model_dir), port=0).start()
    yield server
    server.stop()
