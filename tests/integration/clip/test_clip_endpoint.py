"""Serving through the SageMaker path: real boto3 `sagemaker-runtime` against the real handler behind
the container contract returns what the in-process path returns (embeddings, features, verdicts),
refuses bad requests with the model's own error codes, and is chosen from settings."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import boto3
import numpy as np
import pytest
import requests
from botocore.exceptions import ClientError
from PIL import Image

from listing_vision import aws
from listing_vision.config import get_settings
from listing_vision.embeddings import multipart
from listing_vision.embeddings.factory import get_embedder, reset_embedders
from listing_vision.embeddings.onnx_local import OnnxEmbedder
from listing_vision.embeddings.sagemaker import SageMakerEmbedder, for_transport, model_error
from listing_vision.errors import InvalidRequest, UnsupportedMedia
from listing_vision.imaging.features import MODEL_SIDE_PX
from serving.clip.container import ContainerServer

# The export traces the model; its tracer warnings are expected. (Named here, not in pyproject.toml,
# whose filters pytest resolves at start-up: naming the class there imports torch in every run.)
pytestmark = pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")


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


def test_features_and_verdicts_through_the_endpoint_are_the_in_process_ones(
    container: ContainerServer, model_dir: Path, photos: list[Path]
) -> None:
    from evaluation import variants
    from listing_vision.imaging.features import Candidate, VerifySettings

    # Given a photo, a crop of it and a recoloured copy, described through the endpoint and in process
    original = photos[4].read_bytes()
    image = Image.open(photos[4]).convert("RGB")
    crop = variants.encode(variants.crop(image, 0.8, np.random.default_rng(1)))
    hue = variants.encode(variants.rotate_hue(image, 120))
    remote = SageMakerEmbedder("clip", runtime_client(container.url), dim=16)
    local = OnnxEmbedder(model_dir / "model.onnx")
    remote_described, local_described = remote.describe([original, crop, hue]), local.describe([original, crop, hue])
    # Then the embeddings and the features (query form, mirrored set included) are identical
    for a, b in zip(remote_described, local_described, strict=True):
        assert np.array_equal(a.embedding, b.embedding)
        assert np.array_equal(a.features.descriptors, b.features.descriptors)
        assert a.features.mirrored is not None and b.features.mirrored is not None
        assert np.array_equal(a.features.mirrored.keypoints, b.features.mirrored.keypoints)
    # And the endpoint's verdicts on the original as a stored candidate are the in-process ones
    stored = Candidate(remote_described[0].features)
    for query in (remote_described[1].features, remote_described[2].features):
        assert remote.verify(query, [stored], VerifySettings()) == local.verify(query, [stored], VerifySettings())
    assert [v.match for v in remote.verify(remote_described[1].features, [stored], VerifySettings())] == ["verified"]
    assert [v.reason for v in remote.verify(remote_described[2].features, [stored], VerifySettings())] == [
        "colours_differ"
    ]
    assert remote.verify(remote_described[1].features, [], VerifySettings()) == []


def json_body(payload: object) -> bytes:
    return json.dumps(payload).encode()


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
    # the binary form Lambda sends gives the same answer as JSON, features included
    body, multipart_type = multipart.encode([p.read_bytes() for p in photos[:3]], features=True)
    binary = requests.post(f"{container.url}/invocations", data=body, headers={"Content-Type": multipart_type})
    as_json = requests.post(f"{container.url}/invocations", json={**batch, "features": True}, timeout=30)
    assert binary.status_code == 200 and binary.json()["features"] == as_json.json()["features"]
    vectors = np.frombuffer(base64.b64decode(binary.json()["embeddings"]), "<f4").reshape(3, 16)
    assert np.array_equal(vectors, np.asarray(as_json.json()["embeddings"], np.float32))
    not_an_image, not_an_image_type = multipart.encode([jpeg, b"hello"])
    refused_json = ("application/json", 400, "invalid_request")
    refusals = [
        (b"GIF89a....", "image/gif", 415, "unsupported_content_type"),
        (b"hello", "image/jpeg", 400, "not_an_image"),
        (json.dumps({"images": ["***"]}).encode(), "application/json", 400, "invalid_request"),
        (json.dumps({"pictures": []}).encode(), "application/json", 400, "invalid_request"),
        (jpeg[: len(jpeg) // 3], "image/jpeg", 400, "corrupt_image"),
        (b"{not json", "application/json", 400, "invalid_request"),
        (json_body({"images": [base64.b64encode(jpeg).decode()], "features": "yes"}), *refused_json),
        (json_body({"verify": {"query": "***", "candidates": []}}), *refused_json),
        (json_body({"verify": {"query": base64.b64encode(b"PK damaged").decode(), "candidates": []}}), *refused_json),
        (json_body({"verify": {"candidates": "all"}}), *refused_json),
        (json_body({"verify": []}), *refused_json),
        (json_body([1, 2]), *refused_json),
        (body.replace(b"\r\n\r\ntrue", b"\r\n\r\nyes"), multipart_type, 400, "invalid_request"),
        (body, "multipart/form-data", 400, "invalid_request"),
        (not_an_image, not_an_image_type, 400, "not_an_image"),
    ]
    for body, content_type, status, code in refusals:
        answer = requests.post(
            f"{container.url}/invocations", data=body, headers={"Content-Type": content_type}, timeout=30
        )
        # As the inference toolkit answers: text, the error shape as JSON on the first line, then the trace
        first_line = answer.text.splitlines()[0]
        assert (answer.status_code, json.loads(first_line)["error"]["code"]) == (status, code)
        assert "Traceback" in answer.text


def test_model_errors_through_sagemaker_runtime_become_domain_errors(
    container: ContainerServer, photos: list[Path]
) -> None:
    import io

    from PIL import Image

    # Given requests the model refuses, sent through the real sagemaker-runtime client
    client = runtime_client(container.url)
    gif = io.BytesIO()
    Image.new("RGB", (8, 8)).save(gif, "GIF")
    refused = {
        "not_an_image": (b"not an image", "image/jpeg"),
        "unsupported_content_type": (gif.getvalue(), "image/gif"),
        "invalid_request": (b'{"pictures": []}', "application/json"),
    }
    for code, (body, content_type) in refused.items():
        with pytest.raises(ClientError) as raised:
            client.invoke_endpoint(EndpointName="clip", ContentType=content_type, Body=body)
        # Then each ModelError, whose body is the toolkit's text, becomes the model's own error code
        error = model_error(raised.value)
        assert error.code == code, raised.value.response
    assert isinstance(model_error(raised.value), InvalidRequest)
    # And the embedder itself refuses an undecodable image before invoking anything
    embedder = SageMakerEmbedder("clip", client, dim=16)
    with pytest.raises(UnsupportedMedia):
        embedder.embed([gif.getvalue()])
    with pytest.raises(InvalidRequest) as bad:
        embedder.embed([photos[0].read_bytes(), b"not an image"])
    assert bad.value.code == "not_an_image"


def test_a_model_error_in_plain_text_is_an_upstream_error_by_its_status() -> None:
    # A body that is not the serving code's (a crash in the container, a proxy's page) maps by status
    def error(status: int, text: str) -> ClientError:
        return ClientError(
            {"Error": {"Code": "ModelError", "Message": "x"}, "OriginalStatusCode": status, "OriginalMessage": text},
            "InvokeEndpoint",
        )

    crash = model_error(error(500, "Traceback (most recent call last):\n  File ...\nRuntimeError: CUDA out of memory"))
    assert crash.code == "embedding_failed" and "Traceback" in crash.message
    assert model_error(error(413, "Request Entity Too Large")).code == "payload_too_large"
    assert model_error(error(415, "unsupported")).code == "unsupported_media_type"
    assert model_error(error(400, "<html>bad request</html>")).code == "embedding_rejected"
    throttled = ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow"}}, "InvokeEndpoint")
    assert model_error(throttled).code == "embedding_failed"


def test_large_images_are_downscaled_before_the_endpoint_and_embed_the_same(
    container: ContainerServer, model_dir: Path, photos: list[Path]
) -> None:
    import io

    from PIL import Image

    # Given a photo upscaled to 4000 px with sensor-like noise (over 6 MB as PNG: InvokeEndpoint's payload limit)
    upscaled = np.asarray(Image.open(photos[2]).convert("RGB").resize((4000, 2600)), dtype=np.int16)
    noise = np.random.default_rng(7).integers(-6, 7, upscaled.shape, dtype=np.int16)
    big = Image.fromarray(np.clip(upscaled + noise, 0, 255).astype(np.uint8))
    buffer = io.BytesIO()
    big.save(buffer, "PNG")
    data = buffer.getvalue()
    assert len(data) > 6_000_000
    # When it is prepared for the endpoint, it is sent with its short side at what the model side needs, aspect kept
    sent = Image.open(io.BytesIO(for_transport(data, 1024, 40_000_000)))
    assert min(sent.size) == MODEL_SIDE_PX and abs(sent.size[0] / sent.size[1] - 4000 / 2600) < 0.01
    # and a panorama's long side is capped
    assert max(Image.open(io.BytesIO(for_transport(data, 500, 40_000_000))).size) == 500
    # And it embeds through the endpoint as the full image does in process
    remote = SageMakerEmbedder("clip", runtime_client(container.url), dim=16).embed([data])[0]
    local = OnnxEmbedder(model_dir / "model.onnx").embed([data])[0]
    assert float(remote @ local) > 0.99


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
    embedder_settings.delenv("SAGEMAKER_RUNTIME_URL", raising=False)
    embedder_settings.delenv("CLIP_MODEL_PATH", raising=False)
    assert get_embedder().model_id == "onnx:dct_descriptor.onnx"
    # With an endpoint named: SageMaker
    embedder_settings.setenv("SAGEMAKER_ENDPOINT_NAME", "clip")
    embedder_settings.setenv("SAGEMAKER_RUNTIME_URL", container.url)
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


def test_concurrent_requests_through_the_container_get_their_own_answers(
    container: ContainerServer, model_dir: Path, photos: list[Path]
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    # Given eight clients sending different photos at once (the model shares batches among them)
    client = runtime_client(container.url)
    remote = SageMakerEmbedder("clip", client, dim=16)
    singles = [[p.read_bytes()] for p in photos[:8]]
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(remote.embed, singles * 3))
    # Then each answer is that photo's embedding, as embedded alone in process
    local = OnnxEmbedder(model_dir / "model.onnx")
    for blobs, answer in zip(singles * 3, answers, strict=True):
        assert np.allclose(answer, local.embed(blobs), atol=1e-5)
