"""Catalogue-image generation, the API: POST /generate-images answers 200 with the images when its
job ends within the synchronous wait, else (and at once with `Prefer: respond-async`) 202 with the
job, whose worker (functions/generate/worker.py) runs asynchronously; POST /regenerate-image answers
202; GET /jobs/{job_id} reports a job; GET /jobs lists a storefront's jobs; DELETE /jobs/{job_id}
cancels one."""

# No `from __future__ import annotations` here: Powertools reads the route annotations at run time.

from typing import Annotated, Any, Literal

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.openapi.params import Header, Path, Query
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponseHeader
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, StrictStr, field_validator
from pydantic_core import PydanticCustomError

from listing_vision import aws
from listing_vision.api import create_resolver, current_caller, query_parameters
from listing_vision.api.idempotency import HEADER_DESCRIPTION, HEADER_SCHEMA, PaidCalls, parse_key, replay_headers
from listing_vision.config import Storefront, get_settings
from listing_vision.jewelry import job_listing, photo_batch
from listing_vision.jewelry.generation import Generation
from listing_vision.jewelry.jobs import JOB_ID_PATTERN, JobStore
from listing_vision.jewelry.photo_batch import MAX_PHOTOS
from listing_vision.jewelry.storage import ImageStore
from listing_vision.jewelry.webhook_delivery import MAX_LIMIT, list_deliveries
from listing_vision.jewelry.webhooks import MAX_URL_CHARS, WebhookStore
from listing_vision.observability import logger, metrics, tracer

app = create_resolver()


@aws.per_container
def generation() -> Generation:
    worker = get_settings().generate_worker_function
    return Generation(JobStore(), ImageStore.from_settings(), aws.client("lambda"), worker)


paid_calls = aws.per_container(PaidCalls)
IdempotencyKey = Annotated[
    str | None, Header(alias="Idempotency-Key", description=HEADER_DESCRIPTION, json_schema_extra=HEADER_SCHEMA)
]


# Strict types (no `true` taken for 1, no "2" for 2) and no unknown fields: a request means what it says.
STRICT = ConfigDict(extra="forbid")


# A piece's side in millimetres: from a hundredth of a millimetre (what a jeweller's gauge reads) to
# half a metre. A positive float alone is not enough: 1e-300 labels nothing, and DynamoDB numbers
# stop at 1e-130 (the job store would fail to write it).
MIN_DIMENSION_MM = 0.01
MAX_DIMENSION_MM = 500


class Dimensions(BaseModel):
    model_config = STRICT
    width: StrictFloat | StrictInt = Field(ge=MIN_DIMENSION_MM, le=MAX_DIMENSION_MM, description="Millimetres.")
    height: StrictFloat | StrictInt = Field(ge=MIN_DIMENSION_MM, le=MAX_DIMENSION_MM, description="Millimetres.")


SourceUrl = Annotated[StrictStr, Field(max_length=2048)]


class GenerateImagesRequest(BaseModel):
    model_config = STRICT
    s3_urls: SourceUrl | Annotated[list[SourceUrl], Field(min_length=1)] = Field(
        description="The source photo in a storefront bucket (s3:// or https://), or a list of 1 to "
        f"{MAX_PHOTOS} of them (a job per photo; answered as `photos`: see PhotoResults). More is a 400 "
        "`too_many_photos`, the same photo twice a 400 `duplicate_photos`."
    )
    product_type: StrictStr = Field(max_length=20, description="`ear`/`earring`, `necklace`, `bracelet` or `ring`.")
    image_types: list[StrictInt] | None = Field(
        None, min_length=1, max_length=5, description="Omitted or null: [1, 2, 4, 5]; an empty list is refused."
    )
    dimensions_mm: Dimensions | None = Field(None, description="Needed for type 3 (dimension image).")

    @field_validator("s3_urls", mode="before")
    @classmethod
    def _one_url_or_a_list(cls, value: object) -> object:
        """What the client sent wrong, in its terms (the union's own errors name pydantic's types)."""
        expected = f"a URL (a string of at most 2048 characters) or a list of 1 to {MAX_PHOTOS} of them"
        if isinstance(value, str):
            if len(value) > 2048:
                raise PydanticCustomError(
                    "s3_urls",
                    "s3_urls is {length} characters long: expected {expected}.",
                    {"length": len(value), "expected": expected},
                )
            return value
        if not isinstance(value, list):
            raise PydanticCustomError(
                "s3_urls", "s3_urls is {kind}: expected {expected}.", {"kind": _json_kind(value), "expected": expected}
            )
        if not value:
            raise PydanticCustomError(
                "s3_urls", "s3_urls is an empty list: expected {expected}.", {"expected": expected}
            )
        for number, url in enumerate(value):
            if not isinstance(url, str) or len(url) > 2048:
                what = f"{len(url)} characters long" if isinstance(url, str) else _json_kind(url)
                raise PydanticCustomError(
                    "s3_urls",
                    "s3_urls[{number}] is {what}: expected {expected}.",
                    {"number": number, "what": what, "expected": expected},
                )
        return value


def _json_kind(value: object) -> str:
    """A JSON value's kind as a client would name it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return "an object" if isinstance(value, dict) else "a list" if isinstance(value, list) else "a string"


class RegenerateImageRequest(BaseModel):
    model_config = STRICT
    job_id: StrictStr = Field(pattern=JOB_ID_PATTERN)
    image_type: StrictInt = Field(ge=1, le=5)


class JobAccepted(BaseModel):
    job_id: str
    status: str = Field(description="`queued` or `running`.")
    status_url: str = Field(description="GET it for the job (the same as `Location`).")
    image_types: list[int]


class GeneratedImage(BaseModel):
    image_type: int
    image_type_name: str
    image_url: str


class FinishedJob(BaseModel):
    """The original, synchronous API's answer (`original_image_url`, `gen_images`, `zip_url`), and the
    job's status, what failed and the run's timing, as GET /jobs/{job_id} reports them."""

    original_image_url: str
    gen_images: list[GeneratedImage]
    zip_url: str | None
    job_id: str
    status: str = Field(
        description="`done`, `partial` (some types failed: see `failed`), `failed` or `cancelled` "
        "(DELETE /jobs/{job_id})."
    )
    failed: list[dict[str, Any]]


class PhotoError(BaseModel):
    code: str = Field(description="As the error table: `source_not_found`, `source_not_allowed`, ...")
    message: str


class PhotoEntry(BaseModel):
    """One photo of a list: its job in the single-photo shape (FinishedJob once it has ended, else
    JobAccepted's fields), or `status` `failed` with the `error` that kept it from starting."""

    model_config = ConfigDict(extra="allow")
    s3_url: str = Field(description="The photo as the request named it.")
    status: str
    job_id: str | None = None
    error: PhotoError | None = None


class PhotoResults(BaseModel):
    """The answer to a list of `s3_urls`: one entry per photo, in the request's order. 200 when no
    job is still in progress, 202 otherwise (each entry has its `status_url`; no `Location`)."""

    photos: list[PhotoEntry]


PREFER = (
    "RFC 7240. Without it the request waits for the job, up to GENERATION_SYNC_WAIT_S (22 s by default), and "
    "answers 200 with its images, or 202 if it is still running then. `respond-async`: answer 202 at once "
    "(with `wait=N`: after at most N s). `wait=N` alone: wait at most N s."
)


REPLAYED: OpenAPIResponseHeader = {
    "description": "`true` when a retry with the same `Idempotency-Key` is answered for the first request's job.",
    "schema": {"type": "string"},
}


@app.post(
    "/generate-images",
    responses={
        200: {
            "description": "The job ended within the wait: its images (`status` says whether all were made).",
            "headers": {"Idempotent-Replayed": REPLAYED},
            "content": {"application/json": {"model": FinishedJob | PhotoResults}},
        },
        202: {
            "description": "The job is running (asked with `Prefer: respond-async`, or past the wait): follow "
            "`Location`.",
            "headers": {
                "Location": {"description": "The job: `/jobs/{job_id}`.", "schema": {"type": "string"}},
                "Preference-Applied": {
                    "description": "`respond-async` when it was asked.",
                    "schema": {"type": "string"},
                },
                "Idempotent-Replayed": REPLAYED,
            },
            "content": {"application/json": {"model": JobAccepted | PhotoResults}},
        },
    },
)
@tracer.capture_method
def generate_images(
    request: GenerateImagesRequest,
    prefer: Annotated[str | None, Header(alias="Prefer", description=PREFER, max_length=200)] = None,
    idempotency_key: IdempotencyKey = None,
) -> Response[dict[str, Any]]:
    key, caller = parse_key(idempotency_key), current_caller(app)
    dimensions = request.dimensions_mm.model_dump() if request.dimensions_mm else None
    answer = photo_batch.submit_and_wait(
        generation(),
        request.s3_urls,
        request.product_type,
        request.image_types,
        dimensions,
        caller=caller,
        prefer=prefer,
        remaining_s=app.lambda_context.get_remaining_time_in_millis() / 1000,
        once=paid_calls().bind("generate-images", key, caller, request.model_dump(mode="json"), app.lambda_context),
    )
    return Response(answer.status_code, content_types.APPLICATION_JSON, answer.body, answer.headers)


@app.post("/regenerate-image", status_code=202)
@tracer.capture_method
def regenerate_image(
    request: RegenerateImageRequest, idempotency_key: IdempotencyKey = None
) -> Response[dict[str, Any]]:
    key, caller = parse_key(idempotency_key), current_caller(app)
    once = paid_calls().bind("regenerate-image", key, caller, request.model_dump(mode="json"), app.lambda_context)
    outcome = once(lambda: generation().regenerate(request.job_id, request.image_type, caller=caller))
    return Response(202, content_types.APPLICATION_JSON, outcome.result, replay_headers(outcome))


@app.get("/jobs/<job_id>")
@tracer.capture_method
def get_job(job_id: Annotated[str, Path(pattern=JOB_ID_PATTERN)]) -> dict[str, Any]:
    return generation().get_job(job_id, caller=current_caller(app))


PRIVATE_LINK = "This is the link it holds when `image_links` is `private`: it does not expire, and only the job's "
PRIVATE_LINK += "storefront's clients can follow it."


def _redirect(location: str) -> Response[None]:
    return Response(status_code=302, body=None, headers={"Location": location, "Cache-Control": "no-store"})


@app.get(
    "/jobs/<job_id>/zip",
    responses={302: {"description": f"The job's ZIP: `Location` is a fresh presigned URL (`zip_url`). {PRIVATE_LINK}"}},
)
@tracer.capture_method
def get_job_zip(job_id: Annotated[str, Path(pattern=JOB_ID_PATTERN)]) -> Response[None]:
    """Redirect to the job's ZIP; 404 `image_not_found` until it has one."""
    return _redirect(generation().output_link(job_id, None, caller=current_caller(app)))


@app.get(
    "/jobs/<job_id>/images/<image_type>",
    responses={
        302: {"description": f"A generated image: `Location` is a fresh presigned URL (`image_url`). {PRIVATE_LINK}"}
    },
)
@tracer.capture_method
def get_job_image(
    job_id: Annotated[str, Path(pattern=JOB_ID_PATTERN)],
    image_type: Annotated[int, Path(ge=1, le=99, description="The image type's number (`image_type`).")],
) -> Response[None]:
    """Redirect to one of the job's generated images; 404 `image_not_found` for a type it has not delivered."""
    return _redirect(generation().output_link(job_id, image_type, caller=current_caller(app)))


WEBSITE = "The storefront; default: the client's own when it holds one, else the first configured."
JobStatus = Literal["queued", "running", "done", "partial", "failed", "cancelled"]


class JobSummary(BaseModel):
    job_id: str
    website: str
    status: str = Field(description="`queued`, `running`, `done`, `partial`, `failed` or `cancelled`.")
    product_type: str
    image_types: list[int]
    delivered: int = Field(description="Images delivered so far.")
    created_at: int = Field(description="Unix seconds.")
    updated_at: int = Field(description="Unix seconds.")
    status_url: str


class JobPage(BaseModel):
    website: str
    status: str | None
    jobs: list[JobSummary]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null after the last. A page may hold fewer than `limit` "
        "jobs (even none) with a cursor: each request reads a bounded number of jobs."
    )


@app.get("/jobs", responses={200: {"description": "One page of the storefront's jobs, newest first."}})
@tracer.capture_method
def list_jobs(
    website: Annotated[Storefront | None, Query(description=WEBSITE)] = None,
    status: Annotated[JobStatus | None, Query(description="Only jobs with this status.")] = None,
    cursor: Annotated[
        str | None, Query(max_length=job_listing.MAX_CURSOR_CHARS, description="`next_cursor` of the page before.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=job_listing.MAX_LIMIT, description="Jobs per page.")] = (
        job_listing.DEFAULT_LIMIT
    ),
) -> JobPage:
    job_listing.check_parameters(app.current_event.multi_value_query_string_parameters or {})
    page = generation().list_jobs(website, status, cursor, limit, caller=current_caller(app))
    return JobPage.model_validate(page)


@app.delete(
    "/jobs/<job_id>",
    responses={
        200: {
            "description": "The job is cancelled (200, not 202: the cancel is recorded before the answer, and no "
            "image starts after it; an edit already paid for when it came is kept). The job as GET /jobs/{job_id} "
            "reports it, `status` `cancelled`. Cancelling it again answers the same."
        }
    },
)
@tracer.capture_method
def cancel_job(
    job_id: Annotated[str, Path(pattern=JOB_ID_PATTERN)],
    website: Annotated[Storefront | None, Query(description="The job's storefront (optional).")] = None,
) -> dict[str, Any]:
    return generation().cancel(job_id, website, caller=current_caller(app))


webhooks = aws.per_container(WebhookStore)
HOOK_WEBSITE = (
    "The storefront whose finished jobs are announced; default: the client's own when it holds one, else alya."
)


class WebhookRequest(BaseModel):
    model_config = STRICT
    url: StrictStr = Field(
        min_length=1,
        max_length=MAX_URL_CHARS,
        description="An http(s) URL whose host resolves to public addresses only; each finished run of the "
        "storefront's jobs is POSTed to it, signed (docs/jewelry-api.md, Webhooks).",
    )


class Webhook(BaseModel):
    website: str
    url: str
    created_at: int = Field(description="Unix seconds.")


class RegisteredWebhook(Webhook):
    secret: str = Field(
        description="The signing secret, answered only here: `X-Webhook-Signature` is `sha256=` + hex "
        "HMAC-SHA256 of `<X-Webhook-Timestamp>.<body>` under it. Registering again replaces it."
    )


class WebhookDeliveries(BaseModel):
    website: str
    deliveries: list[dict[str, Any]] = Field(
        description="Newest first: `delivery_id`, `job_id`, `run_id`, `job_status`, `url`, `status` (`pending`, "
        "`delivered`, `failed`, `refused`), `attempts` (each: `attempt`, `at`, `status_code` or `error`, `ms`), "
        "`created_at`."
    )


def _hook_scope(website: Storefront | None, known: tuple[str, ...], operation: str) -> tuple[str, str]:
    query_parameters.check_parameters(app.current_event.multi_value_query_string_parameters or {}, known, operation)
    caller = current_caller(app)
    chosen = caller.storefront(website)
    caller.require(chosen)
    return chosen, caller.client_id


@app.put(
    "/webhooks",
    responses={201: {"description": "Registered (or replaced): the secret, shown this once."}},
)
@tracer.capture_method
def put_webhook(
    request: WebhookRequest, website: Annotated[Storefront | None, Query(description=HOOK_WEBSITE)] = None
) -> Response[RegisteredWebhook]:
    chosen, client_id = _hook_scope(website, ("website",), "PUT /webhooks")
    registered = RegisteredWebhook.model_validate(webhooks().register(chosen, client_id, request.url))
    return Response(201, content_types.APPLICATION_JSON, registered)


@app.get("/webhooks", responses={200: {"description": "The client's webhook of the storefront (no secret)."}})
@tracer.capture_method
def get_webhook(website: Annotated[Storefront | None, Query(description=HOOK_WEBSITE)] = None) -> Webhook:
    chosen, client_id = _hook_scope(website, ("website",), "GET /webhooks")
    return Webhook.model_validate(webhooks().get(chosen, client_id).public())


@app.delete("/webhooks", responses={204: {"description": "No webhook any more (also when there was none)."}})
@tracer.capture_method
def delete_webhook(website: Annotated[Storefront | None, Query(description=HOOK_WEBSITE)] = None) -> Response[None]:
    chosen, client_id = _hook_scope(website, ("website",), "DELETE /webhooks")
    webhooks().delete(chosen, client_id)
    return Response(204, None, None)


@app.get(
    "/webhooks/deliveries",
    responses={200: {"description": "The client's latest deliveries to its webhook of the storefront."}},
)
@tracer.capture_method
def get_webhook_deliveries(
    website: Annotated[Storefront | None, Query(description=HOOK_WEBSITE)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Deliveries, newest first.")] = 20,
) -> WebhookDeliveries:
    chosen, client_id = _hook_scope(website, ("website", "limit"), "GET /webhooks/deliveries")
    return WebhookDeliveries(website=chosen, deliveries=list_deliveries(webhooks(), chosen, client_id, limit))


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
