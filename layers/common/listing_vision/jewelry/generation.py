"""Catalogue-image generation, the API side: check a request, record the job, start the worker, report.

Image-edit models take from 10 s to over two minutes per image and API Gateway cuts a request at
29 s, so the API only records the job and invokes the worker (`generation_worker`) asynchronously;
GET /jobs/{id} reports it. Sources must be objects in this deployment's storefront buckets (no
other host, scheme or bucket is fetched).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote, urlsplit

from botocore.exceptions import ClientError

from listing_vision import aws
from listing_vision.config import get_settings
from listing_vision.errors import InvalidRequest, NotFound
from listing_vision.jewelry import storage
from listing_vision.jewelry.image_types import DEFAULT_TYPES, PRODUCT_ALIASES, TYPE_SETS
from listing_vision.jewelry.jobs import Job, JobStore, RunJob
from listing_vision.observability import metrics


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
    start_worker(worker_function, RunJob(job_id=job.job_id))
    metrics.add_metric(name="JobsSubmitted", unit="Count", value=1)
    return {"job_id": job.job_id, "status": job.status, "status_url": f"/jobs/{job.job_id}", "image_types": types}


def regenerate(job_id: str, image_type: int, worker_function: str) -> dict[str, Any]:
    job = JobStore().get(job_id)
    if image_type not in TYPE_SETS[job.product]:  # type: ignore[index]
        raise InvalidRequest(f"Unknown image type {image_type} for {job.product}.", code="unknown_image_type")
    if job.status != "done":
        raise InvalidRequest("The job is still running; regenerate a type once it is done.", code="job_in_progress")
    JobStore().set_status(job_id, "running")
    start_worker(worker_function, RunJob(job_id=job_id, only=[image_type]))
    return {"job_id": job_id, "status": "running", "status_url": f"/jobs/{job_id}", "image_types": [image_type]}


def start_worker(function_name: str, event: RunJob) -> None:
    aws.client("lambda").invoke(
        FunctionName=function_name, InvocationType="Event", Payload=event.model_dump_json(exclude_none=True).encode()
    )


def job_view(job: Job) -> dict[str, Any]:
    """GET /jobs/{id}: status, and once done the catalogue images (`original_image_url`,
    `gen_images`, `zip_url`) plus what failed and why."""
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
