"""Export → package → serve, end to end, on a tiny randomly initialised CLIP: the SageMaker path
(real boto3 `sagemaker-runtime` against the real handler behind the container contract) and the
in-process path return identical embeddings, and both match transformers."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import tarfile
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
from listing_vision.embeddings.clip_onnx import CLIP_STD, ClipEncoder, SessionOptions, preprocess
from listing_vision.embeddings.factory import get_embedder, reset_embedders
from listing_vision.embeddings.onnx_local import OnnxEmbedder
from listing_vision.embeddings.sagemaker import SageMakerEmbedder, for_transport, model_error
from listing_vision.errors import InvalidRequest, UnsupportedMedia
from listing_vision.imaging.features import MODEL_SIDE_PX
from listing_vision.imaging.pixels import decode_image
from serving.clip import inference
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
            "code/inference.py",
            "code/listing_vision/__init__.py",
            "code/listing_vision/embeddings/__init__.py",
            "code/listing_vision/embeddings/batching.py",
            "code/listing_vision/embeddings/clip_onnx.py",
            "code/listing_vision/embeddings/multipart.py",
            "code/listing_vision/embeddings/vision_model.py",
            "code/listing_vision/imaging/__init__.py",
            "code/listing_vision/imaging/features.py",
            "code/listing_vision/imaging/pixels.py",
            "code/listing_vision/imaging/verify.py",
            "code/requirements.txt",
            "model.onnx",
        ]
        tar.extractall(unpacked, filter="data")
    assert "onnxruntime-gpu[cuda,cudnn]==" in (unpacked / "code" / "requirements.txt").read_text()
    return unpacked


@pytest.fixture(scope="module")
def container(model_dir: Path) -> Iterator[ContainerServer]:
    with pytest.MonkeyPatch.context() as env:
        env.setenv("CLIP_ALLOW_CPU", "true")  # this machine has no GPU: serve on CPU on purpose
        server = ContainerServer(str(model_dir), port=0).start()
    yield server
    server.stop()


def test_a_gpu_endpoint_refuses_to_serve_on_cpu_unless_allowed(
    model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given ONNX Runtime without a usable CUDA provider (this machine), and no permission for CPU
    monkeypatch.delenv("CLIP_ALLOW_CPU", raising=False)
    # When the SageMaker handler loads the model, it refuses, naming the providers it got
    with pytest.raises(RuntimeError, match="CPUExecutionProvider") as refused:
        inference.model_fn(str(model_dir))
    assert "CLIP_ALLOW_CPU" in str(refused.value)
    # And with the explicit setting it serves on CPU
    monkeypatch.setenv("CLIP_ALLOW_CPU", "true")
    assert inference.model_fn(str(model_dir)).provider == "CPUExecutionProvider"


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


def test_the_packaged_handler_runs_on_its_own_code_alone(model_dir: Path, photos: list[Path], tmp_path: Path) -> None:
    # Given the unpacked model.tar.gz, run by a Python that has the installed packages but not this repository
    script = """
import base64, json, sys
sys.path.insert(0, sys.argv[1] + "/code")
import inference
model = inference.model_fn(sys.argv[1])
image = base64.b64encode(open(sys.argv[2], "rb").read()).decode()
request = inference.input_fn(json.dumps({"images": [image], "features": True}), "application/json")
described = json.loads(inference.output_fn(inference.predict_fn(request, model), "application/json")[0])
features = described["features"][0]
check = {"verify": {"query": features, "candidates": [{"features": features, "near": True}]}}
request = inference.input_fn(json.dumps(check), "application/json")
verdicts = json.loads(inference.output_fn(inference.predict_fn(request, model), "application/json")[0])
files = [module.__file__ for name, module in sys.modules.items() if name.split(".")[0] in ("listing_vision", "serving")]
print(json.dumps({"files": files, "dim": described["dim"], "verdicts": verdicts["verdicts"]}))
"""
    env = {"PATH": os.environ["PATH"], "CLIP_ALLOW_CPU": "true", "HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-I", "-c", script, str(model_dir), str(photos[0])],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout.splitlines()[-1])
    # Then it embeds and verifies, and every library module it loaded came from the package
    assert answer["dim"] == 16 and answer["verdicts"][0]["match"] == "near"
    assert answer["files"] and all(f.startswith(str(model_dir / "code")) for f in answer["files"]), answer["files"]


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


def test_the_descriptor_is_packaged_for_the_endpoint_only_when_asked(tmp_path: Path) -> None:
    from listing_vision.embeddings.onnx_local import DESCRIPTOR_MODEL
    from serving.clip.package import DescriptorRefused

    # Given no CLIP export, only the weight-free descriptor: packaging it for the GPU endpoint is refused
    with pytest.raises(DescriptorRefused, match="allow-descriptor"):
        build_package(DESCRIPTOR_MODEL, tmp_path / "model.tar.gz")
    assert not (tmp_path / "model.tar.gz").exists()
    # unless asked for explicitly
    assert build_package(DESCRIPTOR_MODEL, tmp_path / "model.tar.gz", allow_descriptor=True).is_file()
    # and the container's requirements pin the onnxruntime-gpu that links the serving image's CUDA 12
    with tarfile.open(tmp_path / "model.tar.gz") as tar:
        requirements = tar.extractfile("code/requirements.txt").read().decode()  # type: ignore[union-attr]
    assert "onnxruntime-gpu[cuda,cudnn]==1.26.0" in requirements
    # and the rest of what the packaged code imports is pinned as the tests here run it
    constraints = Path(__file__).resolve().parents[2] / "constraints.txt"
    pinned = dict(line.split("==") for line in constraints.read_text().split() if "==" in line)
    for package in ("opencv-python-headless", "numpy", "pillow"):
        assert f"{package}=={pinned[package]}" in requirements.split(), package


def camera_sized(photos: list[Path], factor: int) -> list[bytes]:
    """The shipped photos upscaled to camera sizes and saved as JPEG, so decoding can skip pixels."""
    import io

    blobs = []
    for path in photos:
        image = Image.open(path).convert("RGB")
        buffer = io.BytesIO()
        image.resize((image.width * factor, image.height * factor), Image.Resampling.LANCZOS).save(
            buffer, "JPEG", quality=92
        )
        blobs.append(buffer.getvalue())
    return blobs


# The host path decodes JPEGs at a reduced DCT scale; these bound how far that moves embeddings
# from decoding every pixel (what serving did before), so catalogue vectors need no re-embedding.
PARITY_MIN_COSINE = 0.9995
PARITY_MEAN_GREY_LEVELS = 0.5
CLIP_STD_GREY = CLIP_STD[:, None, None] * 255  # normalised units back to grey levels


def test_decoding_at_reduced_scale_embeds_as_decoding_every_pixel(model_dir: Path, photos: list[Path]) -> None:
    from listing_vision.embeddings.onnx_local import DESCRIPTOR_MODEL
    from listing_vision.embeddings.vision_model import VisionModel

    package = sorted((Path(__file__).resolve().parents[1] / "data" / "package_photos").glob("*.jpg"))
    for factor in (4, 8):  # decoded at 1/2 and 1/4 scale
        blobs = camera_sized(photos + package, factor)
        assert decode_image(blobs[0], reduce_to=384).width < decode_image(blobs[0]).width  # pixels were skipped
        # Given the full decode's preprocessed pixels and the host path's
        full = np.stack([preprocess(decode_image(b), 224, "squash") for b in blobs])
        reduced = np.stack([preprocess(decode_image(b, reduce_to=384), 224, "squash") for b in blobs])
        grey_levels = np.abs(full - reduced) * CLIP_STD_GREY
        assert grey_levels.mean() <= PARITY_MEAN_GREY_LEVELS, factor
        # Then both models embed them alike: the shipped descriptor and a ViT (tiny, random weights)
        for model in (DESCRIPTOR_MODEL, model_dir / "model.onnx"):
            encoder = ClipEncoder(model, SessionOptions(prefer_gpu=False))
            before = encoder.encode_images([decode_image(b) for b in blobs])
            after = VisionModel(encoder).embed(blobs)
            assert float((before * after).sum(1).min()) >= PARITY_MIN_COSINE, (factor, model.name)


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


def test_fp16_is_exported_with_fp32_edges_and_refused_at_synth_until_measured_faster(
    tiny_clip: Path, tmp_path: Path
) -> None:
    import onnx

    from serving.clip.model_report import fp16_refusal

    # Given the export with its fp16 variant (no GPU here: its speed cannot be measured)
    report = export(str(tiny_clip), tmp_path / "model.onnx", fp16=True)
    fp16 = onnx.load(report.fp16_out or "")
    # Then it takes and returns fp32, is fp16 inside with attention fused, and agrees with PyTorch
    assert [i.type.tensor_type.elem_type for i in fp16.graph.input] == [onnx.TensorProto.FLOAT]
    assert [o.type.tensor_type.elem_type for o in fp16.graph.output] == [onnx.TensorProto.FLOAT]
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in fp16.graph.initializer)
    assert report.fp16_fused and report.fp16_fused.get("Attention") == TINY["num_hidden_layers"]
    assert report.fp16_min_cosine is not None and report.fp16_min_cosine >= 0.999
    assert report.fp16_speedup is None
    written = json.loads((tmp_path / "model-report.json").read_text())
    assert written["fp16_min_cosine"] == report.fp16_min_cosine and written["fp16_speedup"] is None
    # And a package of fp32 alone, or of fp16 never measured, or measured slower, is refused for fp16
    fp32_only = build_package(tmp_path / "model.onnx", tmp_path / "fp32.tar.gz")
    assert "has no model.fp16.onnx" in (fp16_refusal(fp32_only) or "")
    unmeasured = build_package(
        tmp_path / "model.onnx",
        tmp_path / "fp16.tar.gz",
        Path(report.fp16_out or ""),
        report=tmp_path / "model-report.json",
    )
    assert "never measured" in (fp16_refusal(unmeasured) or "")
    for speedup, refused in ((1.1, True), (1.45, False)):
        measured = tmp_path / f"report-{speedup}.json"
        measured.write_text(json.dumps({**written, "fp16_speedup": speedup, "speed_device": "NVIDIA H200"}))
        tarball = build_package(
            tmp_path / "model.onnx", tmp_path / f"m-{speedup}.tar.gz", Path(report.fp16_out or ""), report=measured
        )
        assert (fp16_refusal(tarball) is not None) == refused, speedup
    assert "1.10× fp32's speed on NVIDIA H200" in (fp16_refusal(tmp_path / "m-1.1.tar.gz") or "")
