"""Export → package → serve, end to end, on a tiny randomly initialised CLIP: the SageMaker path
(real boto3 `sagemaker-runtime` against the real handler behind the container contract) and the
in-process path return identical embeddings, and both match transformers."""

from __future__ import annotations

import base64
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path

import boto3
import numpy as np
import pytest
import requests

from listing_vision import aws
from listing_vision.config import get_settings
from listing_vision.embeddings.factory import get_embedder, reset_embedders
from listing_vision.embeddings.onnx_local import OnnxEmbedder
from listing_vision.embeddings.sagemaker import SageMakerEmbedder
from listing_vision.errors import InvalidRequest, UnsupportedMedia
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


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    folder = tmp_path_factory.mktemp("tiny-clip")
    CLIPVisionModelWithProjection(CLIPVisionConfig(**TINY)).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def model_dir(tiny_clip: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Given the export tool run on the tiny model, with its parity check
    work = tmp_path_factory.mktemp("export")
    report = export(str(tiny_clip), work / "model.onnx")
    assert report.max_abs_diff <= 1e-4 and report.dim == 16
    # And the SageMaker package built from it, unpacked as SageMaker unpacks it
    tarball = build_package(work / "model.onnx", work / "model.tar.gz")
    unpacked = tmp_path_factory.mktemp("opt-ml-model")
    with tarfile.open(tarball) as tar:
        assert sorted(tar.getnames()) == [
            "code/clip_onnx.py",
            "code/inference.py",
            "code/requirements.txt",
            "model.onnx",
        ]
        tar.extractall(unpacked, filter="data")
    assert "onnxruntime-gpu==" in (unpacked / "code" / "requirements.txt").read_text()
    return unpacked


@pytest.fixture(scope="module")
def container(model_dir: Path) -> Iterator[ContainerServer]:
    server = ContainerServer(str(model_dir), port=0).start()
    yield server
    server.stop()


def runtime_client(url: str):
    return boto3.client(
        "sagemaker-runtime",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )


def test_sagemaker_and_in_process_paths_are_identical(
    container: ContainerServer, model_dir: Path, photos: list[Path]
) -> None:
    images = [p.read_bytes() for p in photos]
    remote = SageMakerEmbedder("clip", runtime_client(container.url), dim=16).embed(images)
    local = OnnxEmbedder(model_dir / "model.onnx").embed(images)
    assert remote.shape == (len(photos), 16)
    assert np.array_equal(remote, local)
    assert np.allclose(np.linalg.norm(remote, axis=1), 1.0, atol=1e-5)


def test_serving_matches_transformers_end_to_end(tiny_clip: Path, model_dir: Path, photos: list[Path]) -> None:
    import torch
    from PIL import Image
    from transformers import CLIPImageProcessor, CLIPVisionModelWithProjection

    model = CLIPVisionModelWithProjection.from_pretrained(tiny_clip).eval()
    images = [Image.open(p).convert("RGB") for p in photos[:5]]
    blobs = [p.read_bytes() for p in photos[:5]]
    # Both resize modes: CLIP's centre crop, and serving's whole image squashed to 224×224
    processors = {
        "clip": CLIPImageProcessor(),
        "squash": CLIPImageProcessor(size={"height": 224, "width": 224}, do_center_crop=False),
    }
    for mode, processor in processors.items():
        with torch.no_grad():
            pixels = processor(images=images, return_tensors="pt")["pixel_values"]
            expected = torch.nn.functional.normalize(model(pixel_values=pixels).image_embeds, dim=-1).numpy()
        got = OnnxEmbedder(model_dir / "model.onnx", resize=mode).embed(blobs)  # type: ignore[arg-type]
        assert np.abs(got - expected).max() <= 1e-4, mode


def test_container_contract_content_types_and_errors(container: ContainerServer, photos: list[Path]) -> None:
    assert requests.get(f"{container.url}/ping", timeout=5).status_code == 200
    jpeg = photos[0].read_bytes()
    for content_type in ("image/jpeg", "application/x-image"):
        answer = requests.post(
            f"{container.url}/invocations", data=jpeg, headers={"Content-Type": content_type}, timeout=30
        )
        assert answer.status_code == 200 and len(answer.json()["embeddings"]) == 1
    batch = {"images": [base64.b64encode(p.read_bytes()).decode() for p in photos[:3]]}
    answer = requests.post(f"{container.url}/invocations", json=batch, timeout=30)
    assert answer.json()["dim"] == 16 and len(answer.json()["embeddings"]) == 3
    refusals = [
        (b"GIF89a....", "image/gif", 415, "unsupported_content_type"),
        (b"hello", "image/jpeg", 400, "not_an_image"),
        (json.dumps({"images": ["***"]}).encode(), "application/json", 400, "invalid_request"),
        (json.dumps({"pictures": []}).encode(), "application/json", 400, "invalid_request"),
        (jpeg[: len(jpeg) // 3], "image/jpeg", 400, "corrupt_image"),
    ]
    for body, content_type, status, code in refusals:
        answer = requests.post(
            f"{container.url}/invocations", data=body, headers={"Content-Type": content_type}, timeout=30
        )
        assert (answer.status_code, answer.json()["error"]["code"]) == (status, code)


def test_model_errors_through_sagemaker_runtime_become_domain_errors(
    container: ContainerServer, photos: list[Path]
) -> None:
    import io

    from PIL import Image

    embedder = SageMakerEmbedder("clip", runtime_client(container.url), dim=16)
    with pytest.raises(InvalidRequest) as bad:
        embedder.embed([photos[0].read_bytes(), b"not an image"])
    assert bad.value.code == "not_an_image" and "Image 1" in bad.value.message
    gif = io.BytesIO()
    Image.new("RGB", (8, 8)).save(gif, "GIF")
    with pytest.raises(UnsupportedMedia):
        embedder.embed([gif.getvalue()])


@pytest.fixture
def embedder_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    reset_embedders()
    get_settings.cache_clear()
    aws.reset_clients()
    yield monkeypatch
    monkeypatch.undo()
    reset_embedders()
    get_settings.cache_clear()
    aws.reset_clients()


def test_factory_picks_the_path_from_settings(
    embedder_settings: pytest.MonkeyPatch, container: ContainerServer, model_dir: Path, photos: list[Path]
) -> None:
    # Without an endpoint or a model: the shipped descriptor, in process
    embedder_settings.delenv("SAGEMAKER_ENDPOINT_NAME", raising=False)
    embedder_settings.delenv("CLIP_MODEL_PATH", raising=False)
    assert get_embedder().model_id == "onnx:dct_descriptor.onnx"
    # With an endpoint named: SageMaker
    embedder_settings.setenv("SAGEMAKER_ENDPOINT_NAME", "clip")
    embedder_settings.setenv("AWS_ENDPOINT_URL", container.url)
    embedder_settings.setenv("AWS_ACCESS_KEY_ID", "local")
    embedder_settings.setenv("AWS_SECRET_ACCESS_KEY", "local")
    embedder_settings.setenv("EMBEDDING_DIM", "16")
    reset_embedders()
    get_settings.cache_clear()
    remote = get_embedder()
    assert remote.model_id == "sagemaker:clip"
    # With EMBEDDER=onnx and the exported model: in process, identical vectors
    embedder_settings.setenv("EMBEDDER", "onnx")
    embedder_settings.setenv("CLIP_MODEL_PATH", str(model_dir / "model.onnx"))
    get_settings.cache_clear()
    local = get_embedder()
    assert local.model_id == "onnx:model.onnx"
    image = [photos[3].read_bytes()]
    assert np.array_equal(local.embed(image), remote.embed(image))
