"""The generation worker: render each requested catalogue type of one job, store them, finish the job.

Types 1 and 3 are rendered by image processing from the piece's cutout (exact, free,
repeatable); the generative types need the image-edit provider and, without one, are reported as
failed with reason `provider_unavailable`, never faked. Outputs and a ZIP of them go to the
storefront's bucket under `generated/<job>/`. Each run logs the seconds of every image, of the
batch and the speed-up against their sequential sum.
"""

from __future__ import annotations

import io
import time
import zipfile
from typing import Any

from PIL import Image

from listing_vision import aws
from listing_vision.concurrency import thread_map
from listing_vision.config import get_settings
from listing_vision.errors import InvalidRequest, VisionError
from listing_vision.imaging.compose import (
    amazon_main_image_check,
    dimension_markings,
    edit_inputs,
    paste_back,
    place_on_white,
)
from listing_vision.imaging.decode import load_image
from listing_vision.imaging.segment import Cutout, cut_out
from listing_vision.jewelry.image_types import TYPE_SETS, ImageType
from listing_vision.jewelry.jobs import Job, JobStore
from listing_vision.observability import logger, metrics
from listing_vision.providers.clients import openai_key
from listing_vision.providers.image_edit import OpenAIImageEditor


def run_job(job_id: str, only: list[int] | None = None) -> dict[str, Any]:
    """Render the job's types (or `only` these), record each outcome, write the ZIP, finish the job;
    returns the run's summary (status, timing, what failed)."""
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
    results = thread_map(timed, types, get_settings().image_edit_concurrency)
    total = time.perf_counter() - started
    sequential = sum(r["seconds"] for r in results)
    # Timing as structured logs and metrics: each image, the batch, the speed-up against the sequential sum.
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
    failed = [
        {"image_type": n, "reason": r["reason"]} for n, r in zip(types, results, strict=True) if r["status"] != "ok"
    ]
    logger.info("job done", extra={"job_id": job_id, "types": types, "failed": failed})
    return {"job_id": job_id, "status": "done", "timing": timing, "failed": failed}


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
