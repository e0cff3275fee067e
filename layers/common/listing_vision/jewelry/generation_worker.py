"""The generation worker: render the catalogue types of one run of a job, store them, end the run.

Types 1 and 3 are rendered by image processing from the piece's cutout (exact, free,
repeatable); the generative types need the image-edit provider and, without one, are reported as
failed with reason `provider_unavailable`, never faked. The cutout and the edits' shared request
are prepared once per run, then every type renders in parallel, edits first so that their calls
start at once. Outputs and a ZIP of them go to the generated bucket under `<website>/<job>/`.

The order of a run's writes, chosen so that a worker dying after any of them leaves what its retry
(Lambda's, same request id) completes: claim the run (the retry takes its own claim over); per type,
take a rate-limit token (a token spent by a dead attempt only costs capacity), store the image
(tagged with its run id in its metadata), record its result (only while the run is in progress);
then the ZIP, then end the run. A retry skips the types whose result this run recorded, and reuses
an edited image this run stored but did not record, so no paid edit is made twice for one image.
A run first charges its paid edits to its client's daily quota (edit_quota.py: over it, the run
ends `quota_exceeded` having paid for nothing; a retry is not charged twice), and each edit waits
for its client's turn at the rate limit (fair_turns.py). Each run logs the seconds of the
preparation, of every image, of the batch and the speed-up against their sequential sum.
"""

from __future__ import annotations

import io
import time
import zipfile
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError
from PIL import Image

from listing_vision.concurrency import thread_map
from listing_vision.config import get_settings
from listing_vision.errors import VisionError
from listing_vision.imaging.compose import (
    EditRequest,
    amazon_main_image_check,
    dimension_markings,
    paste_back,
    place_on_white,
    prepare_edits,
)
from listing_vision.imaging.decode import load_image
from listing_vision.imaging.png import encode_png
from listing_vision.imaging.segment import Cutout, NoPieceFound, cut_out
from listing_vision.jewelry import storage
from listing_vision.jewelry.edit_quota import EditQuota
from listing_vision.jewelry.image_types import TYPE_SETS, ImageType
from listing_vision.jewelry.jobs import CANCELLED_MESSAGE, Job, JobStore
from listing_vision.jewelry.storage import ImageStore
from listing_vision.observability import logger, metrics
from listing_vision.providers.clients import openai_key
from listing_vision.providers.image_edit import OpenAIImageEditor

RUN_METADATA = "run-id"  # the run that stored a generated image (x-amz-meta-run-id)


class Cancelled(VisionError):
    """The job was cancelled (or the run superseded) before this image's paid call started."""

    code = "cancelled"


@dataclass(frozen=True)
class RunInputs:
    """What every type of a run renders from, prepared once: the cutout (or why there is none),
    the edits' shared request and the provider (None when no type needs them)."""

    cutout: Cutout | None
    failure: tuple[str, str] | None
    edits: EditRequest | None = None
    editor: OpenAIImageEditor | None = None


def output_prefix(job: Job) -> str:
    """Where a job's images go in the generated bucket (never a storefront bucket: nothing generated
    is ever indexed as a catalogue photo)."""
    return f"{job.website}/{job.job_id}/"


class GenerationWorker:
    """Given the jobs table and the buckets."""

    def __init__(self, jobs: JobStore, images: ImageStore):
        self.jobs = jobs
        self.images = images

    def run_job(self, job_id: str, run_id: str, lease_s: float, holder: str | None = None) -> dict[str, Any]:
        """Run one run of a job: claim it for `lease_s` seconds, render its types, record each outcome,
        write the ZIP and end the run. The job's status is over all its types, each by its latest run
        (`Job.overall_status`). Whatever is raised on the way, the run ends with a reason, its types
        counted failed. A duplicated event finds the run taken or finished and does nothing; a
        retry of the invocation (`holder`: its request id, the same) takes its claim over and skips
        the images this run already delivered."""
        store = self.jobs
        job = store.claim(job_id, run_id, lease_s, holder)
        if job is None:
            logger.info("run not claimed: finished, superseded or in another worker", extra={"job_id": job_id})
            return {"job_id": job_id, "run_id": run_id, "status": "skipped"}
        try:
            return self._render_run(job, store)
        except Exception as error:  # noqa: BLE001 - the run must end, whatever went wrong
            reason = error.code if isinstance(error, VisionError) else "internal_error"
            logger.exception("generation run failed", extra={"job_id": job_id, "run_id": run_id, "reason": reason})
            message = error.message if isinstance(error, VisionError) else f"{type(error).__name__} while rendering."
            status = store.get(job_id).overall_status(failing=job.run_types)  # types done before still count
            store.finish(job_id, run_id, status, reason=reason, message=message)
            metrics.add_metric(name="JobsFailed", unit="Count", value=1)
            return {"job_id": job_id, "run_id": run_id, "status": "failed", "reason": reason}

    def _prepare(self, job: Job, types: list[ImageType]) -> RunInputs:
        if not types:
            return RunInputs(None, None)
        cutout, failure = self._cutout(job)
        if cutout is None or not any(t.renderer == "edit" for t in types) or not openai_key():
            return RunInputs(cutout, failure)
        return RunInputs(cutout, failure, prepare_edits(cutout), OpenAIImageEditor(client=job.client_id))

    def _render_run(self, job: Job, store: JobStore) -> dict[str, Any]:
        types = job.run_types
        catalogue = TYPE_SETS[job.product]  # type: ignore[index]
        delivered = {
            n: r for n, r in job.results.items() if n in types and r.get("run_id") == job.run_id and r["status"] == "ok"
        }
        # Edits first: their calls are the long pole, the local renders fit inside them.
        todo = sorted((t for t in types if t not in delivered), key=lambda t: catalogue[t].renderer != "edit")
        if not self._charge_quota(job, [catalogue[t] for t in todo]):
            return self._refuse_over_quota(job, todo)
        started = time.perf_counter()
        inputs = self._prepare(job, [catalogue[t] for t in todo])
        prepared = time.perf_counter() - started
        editor = inputs.editor

        def timed(number: int) -> dict[str, Any]:
            started = time.perf_counter()
            result = self._guarded_render(job, catalogue[number], inputs)
            result |= {"seconds": round(time.perf_counter() - started, 3), "run_id": job.run_id}
            store.record(job.job_id, job.run_id, number, result)  # as soon as it is known: a retry keeps it
            return result

        started = time.perf_counter()
        results = dict(zip(todo, thread_map(timed, todo, get_settings().image_edit_concurrency), strict=True))
        total = time.perf_counter() - started
        sequential = sum(r["seconds"] for r in results.values())
        # Timing as structured logs and metrics: each image, the batch, the speed-up against the sequential sum.
        timing = {
            "prepare_s": round(prepared, 3),
            "images_s": {str(n): r["seconds"] for n, r in sorted(results.items())},
            "batch_s": round(total, 3),
            "sequential_s": round(sequential, 3),
            "speedup": round(sequential / total, 2) if total else None,
            "rate_limit_wait_s": round(editor.limiter.waited_s, 3) if editor else 0.0,
            "reused": sorted(delivered),
        }
        logger.info("batch timing", extra={"job_id": job.job_id, **timing})
        for result in results.values():
            metrics.add_metric(name="ImageSeconds", unit="Seconds", value=result["seconds"])
        metrics.add_metric(name="BatchSeconds", unit="Seconds", value=total)
        metrics.add_metric(name="RateLimitWaitSeconds", unit="Seconds", value=timing["rate_limit_wait_s"])  # alarmed on
        outcomes = {**delivered, **results}
        failed = [{"image_type": n, "reason": r["reason"]} for n, r in sorted(outcomes.items()) if r["status"] != "ok"]
        latest = store.get(job.job_id)  # every type's latest result, this run's included
        status = latest.overall_status()
        reason = message = None
        if status == "failed":
            reasons = {r.get("reason") for r in latest.results.values()}
            reason = str(reasons.pop()) if len(reasons) == 1 else "no_image_delivered"
            message = "No image of this job could be delivered; see `failed` for each type."
        if latest.status == "cancelled":  # under this run: its ZIP is written, the cancel announced it
            return self._settle_cancelled(job, timing, failed)
        if not store.finish(job.job_id, job.run_id, status, self.write_zip(latest), timing, reason, message):
            return self._settle_cancelled(job, timing, failed)  # ended meanwhile: cancelled, or past its deadline
        logger.info("run finished", extra={"job_id": job.job_id, "status": status, "types": types, "failed": failed})
        return {"job_id": job.job_id, "run_id": job.run_id, "status": status, "timing": timing, "failed": failed}

    @staticmethod
    def _charge_quota(job: Job, types: list[ImageType]) -> bool:
        """Count the run's paid edits against its client's daily quota (edit_quota.py); False: over it.
        Nothing is charged when no edit would be paid for (none asked, or no provider)."""
        edits = sum(1 for t in types if t.renderer == "edit")
        return not edits or not openai_key() or EditQuota().charge(job.client_id, job.run_id, edits)

    def _refuse_over_quota(self, job: Job, todo: list[int]) -> dict[str, Any]:
        """End the run over the client's quota before anything is rendered or paid for: each of its
        types failed with `quota_exceeded`."""
        message = "This client's image edits for today are used up (IMAGE_EDITS_PER_CLIENT_PER_DAY)."
        refused = {
            n: {"status": "failed", "reason": "quota_exceeded", "message": message, "run_id": job.run_id} for n in todo
        }
        status = Job(**{**job.__dict__, "results": {**job.results, **refused}}).overall_status()
        reason = "quota_exceeded" if status == "failed" else None
        self.jobs.finish(job.job_id, job.run_id, status, reason=reason, message=message, results=refused)
        metrics.add_metric(name="EditQuotaRefusals", unit="Count", value=1)
        logger.info("run refused by the edit quota", extra={"job_id": job.job_id, "client_id": job.client_id})
        failed = [{"image_type": n, "reason": "quota_exceeded"} for n in todo]
        return {"job_id": job.job_id, "run_id": job.run_id, "status": status, "failed": failed}

    def _settle_cancelled(self, job: Job, timing: dict[str, Any], failed: list[dict[str, Any]]) -> dict[str, Any]:
        """The run was ended under the worker: when by a cancel, the ZIP of what it delivered (the
        cancel announced the job already); else (its deadline, a newer run) nothing is written."""
        latest = self.jobs.get(job.job_id)
        if latest.status != "cancelled" or latest.run_id != job.run_id:
            logger.info("run ended elsewhere", extra={"job_id": job.job_id, "status": latest.status})
            return {"job_id": job.job_id, "run_id": job.run_id, "status": latest.status, "failed": failed}
        self.jobs.settle_cancelled(job.job_id, job.run_id, self.write_zip(latest), timing)
        logger.info("run cancelled", extra={"job_id": job.job_id, "failed": failed})
        return {"job_id": job.job_id, "run_id": job.run_id, "status": "cancelled", "timing": timing, "failed": failed}

    def _cutout(self, job: Job) -> tuple[Cutout | None, tuple[str, str] | None]:
        """The piece cut out of the job's source photo, or why it could not be (for every type)."""
        try:
            data = self.images.read(storage.StoredImage(job.source_bucket, job.source_key))
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            return None, ("source_unreadable", f"The source photo could not be read ({code}).")
        try:
            image = load_image(data, get_settings().max_image_pixels)
        except VisionError as error:
            return None, (error.code, f"The source photo cannot be used: {error.message}")
        try:
            return cut_out(image), None
        except NoPieceFound as error:
            return None, (error.code, f"The piece could not be cut out of the photo: {error.message}")

    def _guarded_render(self, job: Job, image_type: ImageType, inputs: RunInputs) -> dict[str, Any]:
        """One type's result; anything unexpected fails that type only (the others are still delivered).
        A job cancelled (or a run superseded) starts no further image: the job is read before each
        local render, and before each paid edit once the rate limit lets it go (`_unless_cancelled`)."""
        if image_type.renderer != "edit" and self.jobs.cancelled(job.job_id, job.run_id):
            return {"status": "failed", "reason": "cancelled", "message": CANCELLED_MESSAGE}
        try:
            return self.render_type(job, image_type, inputs)
        except Exception as error:  # noqa: BLE001 - recorded on the type, logged with its stack
            logger.exception("rendering a type failed", extra={"job_id": job.job_id, "image_type": image_type.number})
            reason = error.code if isinstance(error, VisionError) else "internal_error"
            message = error.message if isinstance(error, VisionError) else f"{type(error).__name__} while rendering."
            return {"status": "failed", "reason": reason, "message": message}

    def render_type(self, job: Job, image_type: ImageType, inputs: RunInputs) -> dict[str, Any]:
        cutout = inputs.cutout
        if inputs.failure is not None or cutout is None:
            reason, message = inputs.failure or ("no_piece_found", "The piece could not be cut out of the photo.")
            return {"status": "failed", "reason": reason, "message": message}
        if image_type.renderer == "white":
            placement = place_on_white(cutout)
            compliance = amazon_main_image_check(placement.canvas)
            return self._store(job, image_type, placement.canvas) | {
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
            return self._store(job, image_type, image)
        if inputs.edits is None or inputs.editor is None:
            return {
                "status": "failed",
                "reason": "provider_unavailable",
                "message": "No image-edit provider is configured (set OPENAI_API_KEY or OPENAI_API_KEY_SECRET).",
            }
        stored = self._stored_by_this_run(job, image_type)
        if stored is not None:  # an earlier attempt of this run paid for it, and died before recording it
            return {"status": "ok", "key": stored, "reused": True}
        request = inputs.edits
        try:
            edited, seconds = inputs.editor.edit(
                request.image_png,
                request.mask_png,
                image_type.prompt,
                before_call=lambda: self._unless_cancelled(job),
                turn=f"{job.run_id}-{image_type.number}",  # a retry of this run takes its dead attempt's turn
            )
        except VisionError as error:
            return {"status": "failed", "reason": error.code, "message": error.message}
        try:
            composite = paste_back(load_image(edited), request)  # the one decoding path
        except VisionError as error:  # the reply was not an image we can use
            return {"status": "failed", "reason": "malformed_model_reply", "message": error.message[:200]}
        return self._store(job, image_type, composite) | {"provider_seconds": round(seconds, 3)}

    def _unless_cancelled(self, job: Job) -> None:
        if self.jobs.cancelled(job.job_id, job.run_id):
            raise Cancelled(CANCELLED_MESSAGE)

    @staticmethod
    def _key(job: Job, image_type: ImageType) -> str:
        slug = image_type.name.lower().replace(" ", "-")
        return f"{output_prefix(job)}{image_type.number}-{slug}.png"

    def _stored_by_this_run(self, job: Job, image_type: ImageType) -> str | None:
        """The key of this type's image if this very run stored it (its metadata names the run)."""
        key = self._key(job, image_type)
        found = self.images.head(storage.StoredImage(get_settings().generated_bucket, key))
        return key if found and found.get("Metadata", {}).get(RUN_METADATA) == job.run_id else None

    def _store(self, job: Job, image_type: ImageType, image: Image.Image) -> dict[str, Any]:
        key = self._key(job, image_type)
        image_ref = storage.StoredImage(get_settings().generated_bucket, key)
        self.images.put(image_ref, encode_png(image), "image/png", {RUN_METADATA: job.run_id})
        metrics.add_metric(name="ImagesRendered", unit="Count", value=1)
        return {"status": "ok", "key": key}

    def write_zip(self, job: Job) -> str | None:
        """A ZIP of every image the job has, refreshed after each run (and each regeneration)."""
        done = {n: r for n, r in sorted(job.results.items()) if r.get("status") == "ok"}
        if not done:
            return None
        bucket = get_settings().generated_bucket
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
            for result in done.values():
                image = storage.StoredImage(bucket, result["key"])
                archive.writestr(image.key.rsplit("/", 1)[-1], self.images.read(image))
        key = f"{output_prefix(job)}catalogue.zip"
        self.images.put(storage.StoredImage(bucket, key), buffer.getvalue(), "application/zip")
        return key
