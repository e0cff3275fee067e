"""Catalogue-image generation, the API side: check a request, record the job, start the worker, report.

Image-edit models take from 10 s to over two minutes per image and API Gateway cuts a request at
29 s, so the API records the job and invokes the worker (`generation_worker`) asynchronously;
GET /jobs/{id} reports it. A submission is answered as the original, synchronous API answered it
when the job ends in time: without `Prefer: respond-async` (RFC 7240) the API waits for the job up
to `GENERATION_SYNC_WAIT_S` (or a shorter `Prefer: wait=N`) and answers 200 with the job's images;
a job still running then, or any job submitted with `respond-async`, is answered 202 with its
`Location`. Sources must be objects in this deployment's storefront buckets (no other host, scheme
or bucket is fetched).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

from botocore.exceptions import BotoCoreError, ClientError

from listing_vision.api.access import Caller
from listing_vision.api.idempotency import Outcome, replay_headers
from listing_vision.config import get_settings
from listing_vision.errors import InvalidRequest, NotFound, UpstreamError
from listing_vision.jewelry import job_listing, links, storage
from listing_vision.jewelry.image_types import DEFAULT_TYPES, PRODUCT_ALIASES, TYPE_SETS
from listing_vision.jewelry.jobs import Job, JobStore, RunJob
from listing_vision.jewelry.storage import ImageStore
from listing_vision.observability import metrics

# Time kept back from the API function's remaining time when waiting for a job: to read the job and answer.
ANSWER_MARGIN_S = 3.0
POLL_FIRST_S, POLL_MAX_S = 0.2, 1.0  # job reads while waiting: soon at first, then once a second


@dataclass(frozen=True)
class Preference:
    """What a request's `Prefer` header (RFC 7240) asks of a submission: `respond-async` (answer at
    once), `wait=N` (wait at most N seconds). Unknown preferences and malformed values are ignored,
    as the RFC asks."""

    respond_async: bool = False
    wait_s: float | None = None

    @classmethod
    def parse(cls, header: str | None) -> Preference:
        respond_async, wait_s = False, None
        for preference in (header or "").split(","):
            token, _, value = preference.split(";", 1)[0].partition("=")
            token, value = token.strip().lower(), value.strip().strip('"')
            if token == "respond-async":
                respond_async = True
            elif token == "wait" and value.isascii() and value.isdigit():
                wait_s = float(value)
        return cls(respond_async, wait_s)

    def wait_for(self, limit_s: float) -> float:
        """Seconds to wait for the job: none when asked to answer asynchronously without a wait,
        else what was asked, never over `limit_s`."""
        asked = self.wait_s if self.wait_s is not None else (0.0 if self.respond_async else limit_s)
        return max(0.0, min(asked, limit_s))


@dataclass
class Answer:
    """A submission's HTTP answer: 200 with the finished job, or 202 with where to follow it."""

    status_code: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


def resolve_source(url: str) -> tuple[str, str]:
    """(bucket, key) of a storefront image named by an S3 URL in any common form; anything that is
    not one of this deployment's storefront buckets is refused (no server-side request forgery)."""
    settings = get_settings()
    storefront_buckets = set(settings.storefronts.values())
    try:
        named = links.from_cdn_url(settings, url.strip())  # a stable link this deployment answered
        bucket, key = named or _bucket_and_key(url.strip(), settings.aws_endpoint_url)
    except ValueError:  # urllib refuses a host NFKC would turn into a separator ("alyaimg／x": U+FF0F)
        bucket = key = ""
    key = unquote(key)
    if bucket not in storefront_buckets or not key or ".." in key.split("/"):
        raise InvalidRequest(
            "s3_urls must name an image in this deployment's storefront buckets.",
            code="source_not_allowed",
            details={"url": url[:200]},
        )
    return bucket, key


def _bucket_and_key(url: str, endpoint_url: str | None) -> tuple[str, str]:
    """(bucket, key) as the URL names them (either empty when it names no S3 object); ValueError for
    what urllib cannot split."""
    parts = urlsplit(url)
    bucket = key = ""
    if parts.scheme == "s3":
        bucket, key = parts.netloc, parts.path.lstrip("/")
    elif parts.scheme in ("https", "http"):
        host = parts.hostname or ""
        local = urlsplit(endpoint_url).hostname if endpoint_url else None
        virtual = re.fullmatch(r"([a-z0-9.-]+)\.s3(?:[.-][a-z0-9-]+)?\.amazonaws\.com", host)
        path_style = re.fullmatch(r"s3(?:[.-][a-z0-9-]+)?\.amazonaws\.com", host) or (local and host == local)
        if parts.scheme == "https" and virtual:
            bucket, key = virtual.group(1), parts.path.lstrip("/")
        elif path_style and (parts.scheme == "https" or host == local):
            bucket, _, key = parts.path.lstrip("/").partition("/")
    return bucket, key


def check_order(
    product_type: str, image_types: list[int] | None, dimensions_mm: dict[str, float] | None
) -> tuple[str, list[int]]:
    """(product, types) of a generation request, or its 400: what is checked before any source."""
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
    require_dimensions(product, types, dimensions_mm)
    return product, types


def require_dimensions(product: str, types: list[int], dimensions_mm: dict[str, float] | None) -> None:
    """The dimension image is drawn from `dimensions_mm`: asked for without them, the request is
    refused (400) rather than a job made whose dimension image could only fail."""
    drawn = [t for t in types if TYPE_SETS[product][t].renderer == "dimensions"]  # type: ignore[index]
    if drawn and not dimensions_mm:
        raise InvalidRequest(
            f"Image type {drawn[0]} (dimensions) needs dimensions_mm {{width, height}} in millimetres.",
            code="dimensions_required",
        )


class Generation:
    """Given the jobs table, the buckets, and how to start the worker (a Lambda client and the
    worker's function name)."""

    def __init__(self, jobs: JobStore, images: ImageStore, lambda_client: Any, worker_function: str):
        self.jobs = jobs
        self.images = images
        self.lambda_client = lambda_client
        self.worker_function = worker_function

    def submit(
        self,
        s3_urls: str,
        product_type: str,
        image_types: list[int] | None,
        dimensions_mm: dict[str, float] | None,
        *,
        caller: Caller,
    ) -> dict[str, Any]:
        product, types = check_order(product_type, image_types, dimensions_mm)
        return self.start(self.check_source(s3_urls, caller), product, types, dimensions_mm, caller)

    def check_source(self, s3_url: str, caller: Caller) -> tuple[str, str, str]:
        """(website, bucket, key) of a source photo the caller may use; 400 `source_not_allowed`,
        403 `storefront_forbidden`, 404 `source_not_found`. Writes nothing."""
        private = links.from_private_path(s3_url.strip())
        if private:  # a private link (links.py) this deployment answered: the photo under its content key
            return self._private_source(s3_url, *private, caller)
        bucket, key = resolve_source(s3_url)
        website = self.images.storefront_of_bucket(bucket)
        caller.require(website or "")
        try:
            found = website is not None and self.images.head(storage.StoredImage(bucket, key)) is not None
        except ClientError as error:  # not ours to read: answered as missing, as before any job exists
            raise NotFound(f"No image at {s3_url!r}.", code="source_not_found") from error
        if not found or website is None:
            raise NotFound(f"No image at {s3_url!r}.", code="source_not_found")
        return website, bucket, key

    def _private_source(self, s3_url: str, website: str, image_id: str, caller: Caller) -> tuple[str, str, str]:
        bucket = get_settings().storefronts.get(website)
        if bucket is None:
            raise InvalidRequest(
                "s3_urls must name an image in this deployment's storefront buckets.",
                code="source_not_allowed",
                details={"url": s3_url[:200]},
            )
        caller.require(website)
        for image_format in storage.EXTENSIONS:
            key = storage.catalogue_key(image_id, image_format)
            if self.images.head(storage.StoredImage(bucket, key)) is not None:
                return website, bucket, key
        raise NotFound(f"No image at {s3_url!r}.", code="source_not_found")

    def start(
        self,
        source: tuple[str, str, str],
        product: str,
        types: list[int],
        dimensions_mm: dict[str, float] | None,
        caller: Caller,
    ) -> dict[str, Any]:
        """Record a job for a checked source photo and start its worker: the submission's answer."""
        website, bucket, key = source
        job = self.jobs.create(product, website, bucket, key, types, dimensions_mm, caller.client_id)
        self.start_worker(job)
        metrics.add_metric(name="JobsSubmitted", unit="Count", value=1)
        return {"job_id": job.job_id, "status": job.status, "status_url": f"/jobs/{job.job_id}", "image_types": types}

    def wait_limit_s(self, remaining_s: float | None) -> float:
        """How long a synchronous answer may wait: GENERATION_SYNC_WAIT_S, within the API function's time left."""
        limit_s = get_settings().generation_sync_wait_s
        return limit_s if remaining_s is None else min(limit_s, remaining_s - ANSWER_MARGIN_S)

    def submit_and_wait(
        self,
        s3_urls: str,
        product_type: str,
        image_types: list[int] | None,
        dimensions_mm: dict[str, float] | None,
        *,
        caller: Caller,
        prefer: str | None = None,
        remaining_s: float | None = None,
        once: Callable[[Callable[[], dict[str, Any]]], Outcome] | None = None,
    ) -> Answer:
        """Submit, then wait for the job as `prefer` (the `Prefer` header) asks, within
        `GENERATION_SYNC_WAIT_S` and the API function's `remaining_s`: 200 with the job's view (the
        original API's `original_image_url`, `gen_images`, `zip_url`) when it has ended, else 202 with
        the submission and `Location: /jobs/{id}`.

        `once` (an `Idempotency-Key`: api/idempotency.py) makes the submission itself idempotent, not
        the answer: a retry gets the first request's job, never a second one, and is answered for that
        job as it is now (waited for as the first request was), 200 once it has ended, else 202 with
        its current status. A client retrying after a timeout wants the images, not a stale 202.

        A list of sources is a job per photo, answered together (photo_batch.py)."""
        preference, limit_s = Preference.parse(prefer), self.wait_limit_s(remaining_s)

        def submit() -> dict[str, Any]:
            return self.submit(s3_urls, product_type, image_types, dimensions_mm, caller=caller)

        outcome = once(submit) if once is not None else Outcome(submit())
        accepted = outcome.result
        wait_s = preference.wait_for(limit_s)
        job = self.wait([accepted["job_id"]], wait_s)[accepted["job_id"]]
        if wait_s > 0 and not job.in_progress:  # `respond-async` without a wait: 202 at once, whatever its state
            return Answer(200, self.job_view(job), replay_headers(outcome))
        if outcome.replayed:
            accepted = {**accepted, "status": job.status}
        headers = {"Location": accepted["status_url"], **replay_headers(outcome)}
        if preference.respond_async:
            headers["Preference-Applied"] = "respond-async"
        return Answer(202, accepted, headers)

    def wait(self, job_ids: Sequence[str], wait_s: float) -> dict[str, Job]:
        """Each job as last read, read until all have ended or `wait_s` from now: soon at first, then
        once a second. A run past its deadline is ended on the way (`end_if_overdue`), so a dead
        worker's job is answered as ended, not waited for."""
        latest: dict[str, Job] = {}
        pending = list(dict.fromkeys(job_ids))
        until, pause = time.monotonic() + wait_s, POLL_FIRST_S
        while True:
            for job_id in pending:
                latest[job_id] = self.jobs.end_if_overdue(self.jobs.get(job_id))
            pending = [job_id for job_id in pending if latest[job_id].in_progress]
            left_s = until - time.monotonic()
            if not pending or left_s <= 0:
                return latest
            time.sleep(min(pause, left_s))
            pause = min(pause * 2, POLL_MAX_S)

    def regenerate(self, job_id: str, image_type: int, *, caller: Caller) -> dict[str, Any]:
        """Run one type of a finished job again; one run at a time (a job in progress is a 409)."""
        job = self.jobs.end_if_overdue(self.owned_job(job_id, caller))
        if image_type not in TYPE_SETS[job.product]:  # type: ignore[index]
            raise InvalidRequest(f"Unknown image type {image_type} for {job.product}.", code="unknown_image_type")
        require_dimensions(str(job.product), [image_type], job.dimensions_mm)
        run = self.jobs.start_run(job_id, [image_type], caller.client_id)
        self.start_worker(run)
        return {"job_id": job_id, "status": run.status, "status_url": f"/jobs/{job_id}", "image_types": [image_type]}

    def get_job(self, job_id: str, *, caller: Caller) -> dict[str, Any]:
        return self.job_view(self.jobs.end_if_overdue(self.owned_job(job_id, caller)))

    def output_link(self, job_id: str, image_type: int | None, *, caller: Caller) -> str:
        """A fresh presigned URL of a job's generated image (`image_type`) or, with None, its ZIP: what a
        private link (links.py) redirects to. Another storefront's job is a 404 `job_not_found`, as it is
        everywhere; an output the job does not have (not delivered, not yet zipped) a 404 `image_not_found`."""
        job = self.owned_job(job_id, caller)
        if image_type is None:
            key = job.zip_key
        else:
            result = job.results.get(image_type, {})
            key = result.get("key") if result.get("status") == "ok" else None
        if not key:
            what = "ZIP" if image_type is None else f"image of type {image_type}"
            raise NotFound(f"Job {job_id!r} has no {what}.", code="image_not_found")
        return self.images.presigned_url(storage.StoredImage(get_settings().generated_bucket, str(key)))

    def list_jobs(
        self, website: str | None, status: str | None, cursor: str | None, limit: int, *, caller: Caller
    ) -> dict[str, Any]:
        """GET /jobs: a page of the storefront's jobs, newest first (job_listing.py); another
        storefront's is a 403 `storefront_forbidden`."""
        storefront = caller.storefront(website)  # type: ignore[arg-type]
        caller.require(storefront)
        return job_listing.page(self.jobs, storefront, status, cursor, limit)

    def cancel(self, job_id: str, website: str | None, *, caller: Caller) -> dict[str, Any]:
        """DELETE /jobs/{id}: the job ends `cancelled`, keeping what it delivered; its worker starts
        no further image. Cancelling a cancelled job answers the same; a job that ended otherwise is a
        409 `job_already_finished`. `website`, when given, must be the caller's (403) and the job's (404)."""
        if website is not None:
            caller.require(website)
        job = self.jobs.end_if_overdue(self.owned_job(job_id, caller))  # a run past its deadline has ended
        if website is not None and job.website != website:
            raise NotFound(f"No job {job_id!r}.", code="job_not_found")
        cancelled, now = self.jobs.cancel(job.job_id)
        if now:
            metrics.add_metric(name="JobsCancelled", unit="Count", value=1)
        return self.job_view(cancelled)

    def start_worker(self, job: Job) -> None:
        """Invoke the worker asynchronously for the job's current run. If the invoke itself fails, the run
        is ended at once (`worker_not_started`) rather than left to its deadline."""
        event = RunJob(job_id=job.job_id, run_id=job.run_id)
        try:
            self.lambda_client.invoke(
                FunctionName=self.worker_function, InvocationType="Event", Payload=event.model_dump_json().encode()
            )
        except (ClientError, BotoCoreError) as error:
            self.jobs.finish(job.job_id, job.run_id, "failed", reason="worker_not_started", message=str(error)[:300])
            raise UpstreamError("The generation worker could not be started.", code="worker_not_started") from error

    def owned_job(self, job_id: str, caller: Caller) -> Job:
        """The job, if it belongs to one of the caller's storefronts; another storefront's does not exist."""
        job = self.jobs.get(job_id)
        if not caller.owns(job.website):
            raise NotFound(f"No job {job_id!r}.", code="job_not_found")
        return job

    def job_view(self, job: Job) -> dict[str, Any]:
        """GET /jobs/{id}: status and the current run; once it has ended, the catalogue images
        (`original_image_url`, `gen_images`, `zip_url`), what failed and why, and the run's timing."""
        view: dict[str, Any] = {
            "job_id": job.job_id,
            "status": job.status,
            "product_type": job.product,
            "image_types": job.image_types,
            "run": {"run_id": job.run_id, "image_types": job.run_types},
        }
        if job.reason:
            view["reason"], view["message"] = job.reason, job.message
        if job.in_progress:
            return view
        catalogue = TYPE_SETS[job.product]  # type: ignore[index]
        generated = get_settings().generated_bucket

        def url(bucket: str, key: str) -> str:
            return self.images.url(storage.StoredImage(bucket, key))

        view["original_image_url"] = url(job.source_bucket, job.source_key)
        view["gen_images"] = [
            {
                "image_type": n,
                "image_type_name": catalogue[n].name,
                "image_url": url(generated, r["key"]),
                **({"compliance": r["compliance"]} if "compliance" in r else {}),
            }
            for n, r in sorted(job.results.items())
            if r.get("status") == "ok"
        ]
        view["zip_url"] = url(generated, job.zip_key) if job.zip_key else None
        view["timing"] = job.timing
        view["failed"] = [
            {"image_type": n, "image_type_name": catalogue[n].name, "reason": r["reason"], "message": r["message"]}
            for n, r in sorted(job.results.items())
            if r.get("status") != "ok"
        ]
        return view
