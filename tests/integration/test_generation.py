"""Catalogue-image jobs through the local gateway: 202 with `Prefer: respond-async`, the asynchronous
worker, GET /jobs/{id}; without the header, the original synchronous answer (test_generation_provider.py)."""

from __future__ import annotations

import io
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
from PIL import Image, ImageDraw

from listing_vision.imaging.compose import amazon_main_image_check, place_on_white
from listing_vision.imaging.segment import cut_out
from local.stack import LocalStack
from tests.stores import changed, fingerprint, settle

# RFC 7240: answer 202 at once (without it, POST /generate-images waits for the job)
RESPOND_ASYNC = {"Prefer": "respond-async"}


def earring_photo(seed: int) -> bytes:
    """A product-like photo: a gold hoop with a blue stone on a warm off-white background."""
    rng = np.random.default_rng(seed)
    image = Image.new("RGB", (900, 700), (236, 234, 230))
    draw = ImageDraw.Draw(image)
    x, y = int(rng.integers(250, 350)), int(rng.integers(150, 250))
    draw.ellipse((x, y, x + 300, y + 300), outline=(212, 175, 55), width=40)
    draw.ellipse((x + 120, y - 40, x + 180, y + 20), fill=(30, 90, 200))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=95)
    return buffer.getvalue()


def stored_source(local_stack: LocalStack, data: bytes, website: str = "alya") -> str:
    answer = requests.post(
        f"{local_stack.url}/image_similarity_search",
        timeout=30,
        files={"file": ("earring.jpg", data, "image/jpeg")},
        data={"check_duplicate": "no", "website": website},
    ).json()
    return str(answer["s3_url"])


def wait(local_stack: LocalStack, job_id: str) -> dict[str, Any]:
    settle(local_stack)
    deadline = time.monotonic() + 300  # a hang guard, generous for a loaded machine
    while time.monotonic() < deadline:
        view = requests.get(f"{local_stack.url}/jobs/{job_id}", timeout=10).json()
        if view["status"] in ("done", "partial", "failed"):
            return view
        time.sleep(0.1)
    pytest.fail("job did not finish")


def test_a_job_renders_the_deterministic_types_and_reports_the_rest(local_stack: LocalStack) -> None:
    source = stored_source(local_stack, earring_photo(1))
    # When a job is submitted with every earring type and the piece's dimensions
    submitted = requests.post(
        f"{local_stack.url}/generate-images",
        timeout=10,
        headers=RESPOND_ASYNC,
        json={
            "s3_urls": source,
            "product_type": "ear",
            "image_types": [1, 2, 3, 4, 5],
            "dimensions_mm": {"width": 22, "height": 25},
        },
    )
    # Then it is accepted at once, and the worker finishes it
    assert submitted.status_code == 202 and submitted.json()["status"] == "queued"
    assert submitted.headers["Preference-Applied"] == "respond-async"
    assert submitted.headers["Location"] == f"/jobs/{submitted.json()['job_id']}"
    view = wait(local_stack, submitted.json()["job_id"])
    assert view["status"] == "partial"  # some types delivered, the others failed with their reasons
    assert set(view) >= {"original_image_url", "gen_images", "zip_url", "failed"}
    # and the worker's timing: each image, the batch, the speed-up
    assert set(view["timing"]) >= {"images_s", "batch_s", "sequential_s", "speedup"}
    assert set(view["timing"]["images_s"]) == {"1", "2", "3", "4", "5"}
    images = {g["image_type"]: g for g in view["gen_images"]}
    assert sorted(images) == [1, 3] and images[1]["image_type_name"] == "White Background"
    # Type 1 meets Amazon's main-image rules, checked on the delivered file
    white = Image.open(io.BytesIO(requests.get(images[1]["image_url"], timeout=10).content))
    check = amazon_main_image_check(white)
    assert check.compliant and images[1]["compliance"]["compliant"] is True
    assert white.size[0] >= 1000 and 0.8 <= check.fill <= 0.95
    # The generative types are reported, never faked
    assert {f["image_type"]: f["reason"] for f in view["failed"]} == {
        2: "provider_unavailable",
        4: "provider_unavailable",
        5: "provider_unavailable",
    }
    # And the ZIP holds exactly the delivered images
    archive = zipfile.ZipFile(io.BytesIO(requests.get(view["zip_url"], timeout=10).content))
    assert sorted(archive.namelist()) == ["1-white-background.png", "3-dimension-image.png"]


def test_type_3_needs_dimensions_and_regenerate_refreshes_one_type(local_stack: LocalStack) -> None:
    source = stored_source(local_stack, earring_photo(2))
    settle(local_stack)
    before = fingerprint()
    # When the dimension image is asked for without dimensions_mm
    refused = requests.post(
        f"{local_stack.url}/generate-images",
        timeout=10,
        headers=RESPOND_ASYNC,
        json={"s3_urls": source, "product_type": "earring", "image_types": [1, 3]},
    )
    # Then the request is refused before any job is made (it could only fail)
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "dimensions_required", refused.text
    settle(local_stack)
    assert changed(before, fingerprint()) == []
    # Given a job of the white background alone
    job = requests.post(
        f"{local_stack.url}/generate-images",
        timeout=10,
        headers=RESPOND_ASYNC,
        json={"s3_urls": source, "product_type": "earring", "image_types": [1]},
    ).json()
    view = wait(local_stack, job["job_id"])
    assert view["status"] == "done" and not view.get("failed"), view
    first_zip = requests.get(view["zip_url"], timeout=10).content
    # When its dimension image is asked for again, it is refused too: the job has no dimensions
    no_dimensions = requests.post(
        f"{local_stack.url}/regenerate-image", timeout=10, json={"job_id": job["job_id"], "image_type": 3}
    )
    assert no_dimensions.status_code == 400, no_dimensions.text
    assert no_dimensions.json()["error"]["code"] == "dimensions_required"
    # And one type of it is refreshed on its own
    again = requests.post(
        f"{local_stack.url}/regenerate-image", timeout=10, json={"job_id": job["job_id"], "image_type": 1}
    )
    assert again.status_code == 202 and again.json()["image_types"] == [1]
    refreshed = wait(local_stack, job["job_id"])
    assert [g["image_type"] for g in refreshed["gen_images"]] == [1]
    assert (
        zipfile.ZipFile(io.BytesIO(requests.get(refreshed["zip_url"], timeout=10).content)).namelist()
        == ["1-white-background.png"]
        and first_zip
    )


def test_the_piece_is_kept_pixel_for_pixel(photos: list[Path]) -> None:
    # Inside the eroded product mask, the white-background image equals the (scaled) source cutout
    # (the real photos are scenes, not product shots; these two are ones the segmentation can cut)
    real = [p.read_bytes() for p in photos if p.name in ("image2.jpg", "image5.jpg")]
    for data in (earring_photo(3), *real):
        cutout = cut_out(Image.open(io.BytesIO(data)))
        placement = place_on_white(cutout)
        left, top, right, bottom = placement.box
        scaled = cutout.image.resize((right - left, bottom - top), Image.Resampling.LANCZOS)
        keep = Image.fromarray(cutout.eroded_mask(3)).resize(scaled.size, Image.Resampling.NEAREST)
        inside = np.asarray(keep) > 0
        out = np.asarray(placement.canvas.crop(placement.box)).astype(float)[inside]
        src = np.asarray(scaled.convert("RGB")).astype(float)[inside]
        assert inside.sum() > 100
        assert np.abs(out - src).mean() < 1.0


@pytest.mark.parametrize(
    ("payload", "status", "code"),
    [
        ({"s3_urls": "http://169.254.169.254/latest/meta-data/", "product_type": "ear"}, 400, "source_not_allowed"),
        ({"s3_urls": "s3://some-other-bucket/ring.jpg", "product_type": "ear"}, 400, "source_not_allowed"),
        ({"s3_urls": "file:///etc/passwd", "product_type": "ear"}, 400, "source_not_allowed"),
        ({"s3_urls": "https://evil.example/alyaimg/x.jpg", "product_type": "ear"}, 400, "source_not_allowed"),
        ({"s3_urls": "s3://alyaimg/../blyskimg/x.jpg", "product_type": "ear"}, 400, "source_not_allowed"),
        ({"s3_urls": "s3://alyaimg/missing.jpg", "product_type": "ear"}, 404, "source_not_found"),
        ({"s3_urls": "s3://blyskimg/missing.jpg", "product_type": "ear"}, 404, "source_not_found"),
        ({"s3_urls": "s3://alyaimg/x.jpg", "product_type": "tiara"}, 400, "unknown_product_type"),
        ({"s3_urls": "s3://alyaimg/x.jpg", "product_type": "ear", "image_types": [9]}, 400, "unknown_image_type"),
        ({"product_type": "ear"}, 400, "invalid_request"),
    ],
    ids=[
        "metadata-service",
        "other-bucket",
        "file-scheme",
        "other-host",
        "traversal",
        "missing",
        "missing-blysk",
        "unknown-product",
        "unknown-type",
        "no-source",
    ],
)
def test_bad_requests_are_refused_and_start_nothing(
    local_stack: LocalStack, payload: dict[str, Any], status: int, code: str
) -> None:
    answer = requests.post(f"{local_stack.url}/generate-images", json=payload, timeout=10)
    assert answer.status_code == status, answer.text
    assert answer.json()["error"]["code"] == code
    unknown = requests.get(f"{local_stack.url}/jobs/{'0' * 32}", timeout=10)
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "job_not_found"


def test_compliance_check_names_each_problem() -> None:
    grey = Image.new("RGB", (800, 800), (240, 240, 240))
    ImageDraw.Draw(grey).ellipse((380, 380, 420, 420), fill=(212, 175, 55))
    problems = amazon_main_image_check(grey).problems
    assert any("800 px" in p for p in problems)
    assert any("pure white" in p for p in problems)
    assert any("spans" in p for p in problems)


@pytest.mark.parametrize("width", [1e-300, 5e-131, 0.001], ids=["1e-300", "under-dynamodb-range", "under-0.01-mm"])
def test_dimensions_too_small_to_mean_anything_are_refused_and_start_nothing(
    local_stack: LocalStack, width: float
) -> None:
    # Given a stored source photo, so the only fault is the dimension
    source = stored_source(local_stack, earring_photo(71 + int(-np.log10(width))))
    settle(local_stack)
    before = fingerprint()
    # When a job asks for a width no gauge reads (1e-300 also underflows DynamoDB's number range)
    answer = requests.post(
        f"{local_stack.url}/generate-images",
        json={
            "s3_urls": source,
            "product_type": "ear",
            "image_types": [3],
            "dimensions_mm": {"width": width, "height": 5},
        },
        timeout=10,
    )
    # Then it is refused as an out-of-range field, not a 500, and no job was written or started
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["code"] == "invalid_request"
    settle(local_stack)
    assert changed(before, fingerprint()) == []


def test_a_submission_not_finished_within_its_wait_is_answered_202_with_its_location(
    local_stack: LocalStack,
) -> None:
    # Given a stored photo
    source = stored_source(local_stack, earring_photo(15))
    # When a client asks not to wait (RFC 7240 `wait=0`), without asking for an asynchronous answer
    answer = requests.post(
        f"{local_stack.url}/generate-images",
        headers={"Prefer": "wait=0"},
        json={"s3_urls": source, "product_type": "ear", "image_types": [1]},
        timeout=30,
    )
    # Then the job is answered as still running, with where to follow it, and no preference claimed applied
    assert answer.status_code == 202, answer.text
    assert answer.headers["Location"] == f"/jobs/{answer.json()['job_id']}"
    assert "Preference-Applied" not in answer.headers
    # And the job behind it finishes as any other
    followed = wait(local_stack, answer.headers["Location"].rsplit("/", 1)[1])
    assert followed["status"] == "done" and [g["image_type"] for g in followed["gen_images"]] == [1]
