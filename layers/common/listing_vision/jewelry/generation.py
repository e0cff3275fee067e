"""Catalogue images as jobs: submit (202), a worker renders each type, GET /jobs/{id} reports.

Image-edit models take from 10 s to over two minutes per image and API Gateway cuts a request at
29 s, so the API only records the job and invokes the worker asynchronously. Sources must be
objects in this deployment's storefront buckets (no other host, scheme or bucket is fetched).
Types 1 and 3 are rendered by image processing from the piece's cutout (exact, free,
repeatable); the generative types need the image-edit provider and, without one, are reported as
failed with reason `provider_unavailable`, never faked. Outputs and a ZIP of them go to the
storefront's bucket under `generated/<job>/` and are answered as presigned URLs.
"""

from __future__ import annotations

import io
import json
import re
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import unquote, urlsplit

from botocore.exceptions import ClientError
from PIL import Image

from listing_vision import aws
from listing_vision.config import get_settings
from listing_vision.errors import InvalidRequest, NotFound, VisionError
from listing_vision.imaging.compose import (
    amazon_main_image_check,
    dimension_markings,
    edit_inputs,
    paste_back,
    place_on_white,
)
from listing_vision.imaging.decode import load_image
from listing_vision.imaging.segment import Cutout, cut_out
from listing_vision.jewelry import storage
from listing_vision.jewelry.image_types import DEFAULT_TYPES, PRODUCT_ALIASES, TYPE_SETS, ImageType, Product
from listing_vision.jewelry.jobs import Job, JobStore
from listing_vision.observability import logger, metrics
from listing_vision.providers.clients import openai_key
from listing_vision.providers.image_edit import OpenAIImageEditor


def resolve_source(url: str) -> tuple[str, str]:
    """(bucket, key) of a storefront image named by an S3 URL in any common form; anything that is
    not one of this deployment's storefront buckets is refused (no server-side request forgery)."""
    settings = get_settings()
    storefront_buckets = {settings.alya_bucket, settings.blysk_bucket}
    parts = urlsplit(url.strip())
    bucket = key = ""
    if parts.scheme == "s3":
        bucket, key = parts.netloc, parts.path.lstrip("/")
    elif parts.scheme in ("https", "http"):
        host = parts.hostname or ""
        local = urlsplit(settings.aws_endpoint_url).hostname if settings.aws_endpoint_url else None
        virtual = re.fullmatch(r"([a-z0-9.-]+)\.s3(?:[.-][a-z0-9-]+)?\.amazonaws\.com", host)
        path_style = re.fullmatch(r"s3(?:[.-][a-z0-9-]+)?\.amazonaws\.com", host) or (local and host == local)
        if parts.scheme == "https" and virtual:
            bucket, key = virtual.group(1), parts.path.lstrip("/")
        elif path_style and (parts.scheme == "https" or host == local):
            bucket, _, key = parts.path.lstrip("/").partition("/")
    key = unquote(key)
    if bucket not in storefront_buckets or not key or ".." in key.split("/"):
        raise InvalidRequest(
            "s3_urls must name an image in this deployment's storefront buckets.",
            code="source_not_allowed",
            details={"url": url[:200]},
        )
    return bucket, key


def submit(
    s3_urls: str,
    product_type: str,
    image_types: list[int] | None,
    dimensions_mm: dict[str, float] | None,
    worker_function: str,
) -> dict[str, Any]:
    product = PRODUCT_ALIASES.get(product_type.strip().lower())
    if product is None:
        raise InvalidRequest(
            f"Unknown product_type {product_type!r}; use one of {', '.join(sorted(PRODUCT_ALIASES))}.",
            code="unknown_product_type",
        )
    types = list(dict.fromkeys(image_types or DEFAULT_TYPES))
    unknown = [t for t in types if t not in TYPE_SETS[product]]
    if unknown:
        raise InvalidRequest(
            f"Unknown image types {unknown} for {product}; available: {list(TYPE_SETS[product])}.",
            code="unknown_image_type",
        )
    if dimensions_mm is not None and not all(dimensions_mm.get(k, 0) > 0 for k in ("width", "height")):
        raise InvalidRequest("dimensions_mm needs positive width and height.", code="invalid_dimensions")
    bucket, key = resolve_source(s3_urls)
    try:
        aws.client("s3").head_object(Bucket=bucket, Key=key)
    except ClientError as error:
        raise NotFound(f"No image at {s3_urls!r}.", code="source_not_found") from error
    website = storage.storefront_of_bucket(bucket) or "alya"
    job = JobStore().create(product, website, bucket, key, types, dimensions_mm)
    start_worker(worker_function, {"operation": "run_job", "job_id": job.job_id})
    metrics.add_metric(name="JobsSubmitted", unit="Count", value=1)
    return {"job_id": job.job_id, "status": job.status, "status_url": f"/jobs/{job.job_id}", "image_types": types}


def regenerate(job_id: str, image_type: int, worker_function: str) -> dict[str, Any]:
    job = JobStore().get(job_id)
    if image_type not in TYPE_SETS[job.product]:  # type: ignore[index]
        raise InvalidRequest(f"Unknown image type {image_type} for {job.product}.", code="unknown_image_type")
    if job.status != "done":
        raise InvalidRequest("The job is still running; regenerate a type once it is done.", code="job_in_progress")
    JobStore().set_status(job_id, "running")
    start_worker(worker_function, {"operation": "run_job", "job_id": job_id, "only": [image_type]})
    return {"job_id": job_id, "status": "running", "status_url": f"/jobs/{job_id}", "image_types": [image_type]}


def start_worker(function_name: str, payload: dict[str, Any]) -> None:
    aws.client("lambda").invoke(
        FunctionName=function_name, InvocationType="Event", Payload=json.dumps(payload).encode()
    )


# --- the worker ---------------------------------------------------------------------------------
def run_job(job_id: str, only: list[int] | None = None) -> dict[str, Any]:
    store = JobStore()
    job = store.get(job_id)
    store.set_status(job_id, "running")
    types = only or job.image_types
    catalogue = TYPE_SETS[job.product]  # type: ignore[index]
    s3 = aws.client("s3")
    try:
        data = s3.get_object(Bucket=job.source_bucket, Key=job.source_key)["Body"].read()
        cutout: Cutout | None = cut_out(load_image(data, get_settings().max_image_pixels))
        failure = None
    except (ValueError, InvalidRequest) as error:
        cutout, failure = None, ("no_piece_found", f"The piece could not be cut out of the photo: {error}")
    editor = OpenAIImageEditor() if openai_key() and any(catalogue[t].renderer == "edit" for t in types) else None

    def timed(number: int) -> dict[str, Any]:
        started = time.perf_counter()
        result = render_type(job, catalogue[number], cutout, failure, editor)
        return result | {"seconds": round(time.perf_counter() - started, 3)}

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=get_settings().image_edit_concurrency) as pool:
        results = list(pool.map(timed, types))
    total = time.perf_counter() - started
    sequential = sum(r["seconds"] for r in results)
    # The seed's timing logs, as structured logs and metrics: each image, the batch, the speed-up.
    timing = {
        "images_s": {str(n): r["seconds"] for n, r in zip(types, results, strict=True)},
        "batch_s": round(total, 3),
        "sequential_s": round(sequential, 3),
        "speedup": round(sequential / total, 2) if total else None,
        "rate_limit_wait_s": round(editor.limiter.waited_s, 3) if editor else 0.0,
    }
    logger.info("batch timing", extra={"job_id": job_id, **timing})
    for result in results:
        metrics.add_metric(name="ImageSeconds", unit="Seconds", value=result["seconds"])
    metrics.add_metric(name="BatchSeconds", unit="Seconds", value=total)
    for number, result in zip(types, results, strict=True):
        store.record(job_id, number, result)
    finished = store.get(job_id)
    zip_key = write_zip(finished)
    store.finish(job_id, zip_key, timing)
    logger.info(
        "job done",
        extra={
            "job_id": job_id,
            "types": types,
            "failed": [t for t, r in zip(types, results, strict=True) if r["status"] != "ok"],
        },
    )
    return job_view(store.get(job_id))


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG", compress_level=1)  # sent to the provider once: speed over size
    return buffer.getvalue()


def render_type(
    job: Job,
    image_type: ImageType,
    cutout: Cutout | None,
    failure: tuple[str, str] | None,
    editor: OpenAIImageEditor | None = None,
) -> dict[str, Any]:
    if failure is not None or cutout is None:
        reason, message = failure or ("no_piece_found", "The piece could not be cut out of the photo.")
        return {"status": "failed", "reason": reason, "message": message}
    if image_type.renderer == "white":
        placement = place_on_white(cutout)
        compliance = amazon_main_image_check(placement.canvas)
        return _store(job, image_type, placement.canvas) | {
            "compliance": {
                "compliant": compliance.compliant,
                "problems": compliance.problems,
                "fill": round(compliance.fill, 3),
                "longest_side": compliance.longest_side,
                "pure_white_background": compliance.pure_white_background,
            }
        }
    if image_type.renderer == "dimensions":
        if not job.dimensions_mm:
            return {
                "status": "failed",
                "reason": "dimensions_required",
                "message": "The dimension image needs dimensions_mm {width, height} in millimetres.",
            }
        placement = place_on_white(cutout, fill=0.70)  # room for the markings
        image = dimension_markings(placement, job.dimensions_mm["width"], job.dimensions_mm["height"])
        return _store(job, image_type, image)
    if editor is None:
        return {
            "status": "failed",
            "reason": "provider_unavailable",
            "message": "No image-edit provider is configured (set OPENAI_API_KEY or OPENAI_API_KEY_SECRET).",
        }
    placement, mask = edit_inputs(cutout)
    try:
        edited, seconds = editor.edit(_png(placement.canvas), _png(mask), image_type.prompt)
        composite = paste_back(Image.open(io.BytesIO(edited)), cutout, placement)
    except VisionError as error:
        return {"status": "failed", "reason": error.code, "message": error.message}
    except OSError as error:  # the reply was not an image
        return {"status": "failed", "reason": "malformed_model_reply", "message": str(error)[:200]}
    return _store(job, image_type, composite) | {"provider_seconds": round(seconds, 3)}


def _store(job: Job, image_type: ImageType, image: Image.Image) -> dict[str, Any]:
    buffer = io.BytesIO()
    # zlib level 1: several times faster than the default 6 for a modestly larger file (optimize=True
    # cost seconds per image); the ZIP and the storefront's CDN compress again anyway.
    image.save(buffer, "PNG", compress_level=1)
    slug = image_type.name.lower().replace(" ", "-")
    key = f"generated/{job.job_id}/{image_type.number}-{slug}.png"
    aws.client("s3").put_object(Bucket=job.source_bucket, Key=key, Body=buffer.getvalue(), ContentType="image/png")
    metrics.add_metric(name="ImagesRendered", unit="Count", value=1)
    return {"status": "ok", "key": key}


def write_zip(job: Job) -> str | None:
    """A ZIP of every image the job has, refreshed after each run (and each regeneration)."""
    done = {n: r for n, r in sorted(job.results.items()) if r.get("status") == "ok"}
    if not done:
        return None
    s3 = aws.client("s3")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for result in done.values():
            archive.writestr(
                result["key"].rsplit("/", 1)[-1],
                s3.get_object(Bucket=job.source_bucket, Key=result["key"])["Body"].read(),
            )
    key = f"generated/{job.job_id}/catalogue.zip"
    s3.put_object(Bucket=job.source_bucket, Key=key, Body=buffer.getvalue(), ContentType="application/zip")
    return key


def job_view(job: Job) -> dict[str, Any]:
    """GET /jobs/{id}: status, and once done the seed's shape plus what failed and why."""
    view: dict[str, Any] = {
        "job_id": job.job_id,
        "status": job.status,
        "product_type": job.product,
        "image_types": job.image_types,
    }
    if job.status != "done":
        return view
    catalogue = TYPE_SETS[job.product]  # type: ignore[index]

    def url(key: str) -> str:
        return storage.public_url(storage.StoredImage(job.source_bucket, key))

    view["original_image_url"] = url(job.source_key)
    view["gen_images"] = [
        {
            "image_type": n,
            "image_type_name": catalogue[n].name,
            "image_url": url(r["key"]),
            **({"compliance": r["compliance"]} if "compliance" in r else {}),
        }
        for n, r in sorted(job.results.items())
        if r.get("status") == "ok"
    ]
    view["zip_url"] = url(job.zip_key) if job.zip_key else None
    view["timing"] = job.timing
    view["failed"] = [
        {"image_type": n, "image_type_name": catalogue[n].name, "reason": r["reason"], "message": r["message"]}
        for n, r in sorted(job.results.items())
        if r.get("status") != "ok"
    ]
    return view


def get_job(job_id: str) -> dict[str, Any]:
    return job_view(JobStore().get(job_id))


__all__ = ["Product", "get_job", "regenerate", "run_job", "submit"]
