"""Duplicate detection for the jewelry storefronts, the API: POST /image_similarity_search (check,
store, index), POST /uploads (presigned upload for large files), GET /uploads/{upload_id}, and the
catalogue's lifecycle: GET /images (a storefront's stored images, paged), GET /images/{image_id} (302 to
the photo: a private link), DELETE /images/{image_id}; and reviewers' verdicts on duplicate pairs:
PUT /verdicts, GET /verdicts (listing_vision.jewelry.verdicts)."""

# No `from __future__ import annotations` here: Powertools reads the route annotations at run time.

from typing import Annotated, Any, Literal

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import File, Form, Path, Query, UploadFile
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, Field, StrictStr

from listing_vision import aws
from listing_vision.api import create_resolver, current_caller
from listing_vision.api.query_parameters import check_parameters
from listing_vision.config import Storefront, get_settings
from listing_vision.embeddings.factory import get_embedder
from listing_vision.jewelry import catalogue as catalogue_module
from listing_vision.jewelry import verdicts as verdicts_module
from listing_vision.jewelry.catalogue import Catalogue
from listing_vision.jewelry.dedupe import DedupeService, Upload
from listing_vision.jewelry.image_ids import IMAGE_ID_PATTERN
from listing_vision.jewelry.stores import CatalogueStores
from listing_vision.jewelry.uploads import UPLOAD_ID_PATTERN, UploadForms
from listing_vision.jewelry.verdicts import Verdict, Verdicts
from listing_vision.observability import logger, metrics, tracer

app = create_resolver()
Website = Storefront
WEBSITE = "The storefront; default: the client's own when it holds one, else the first configured."


@aws.per_container
def dedupe() -> DedupeService:
    service = DedupeService(get_embedder(), CatalogueStores.from_settings())
    service.require_ready()  # 503 not_provisioned / model_mismatch until provisioning has made the collection
    return service


@aws.per_container
def upload_forms() -> UploadForms:
    dedupe()  # a form only when its photo can be indexed: the collection exists and holds the model's vectors
    stores = CatalogueStores.from_settings()
    return UploadForms(stores.images, stores.uploads)


@app.post("/image_similarity_search")
@tracer.capture_method
def image_similarity_search(
    file: Annotated[UploadFile, File(description="The product photo (JPEG, PNG or WebP).")],
    check_duplicate: Annotated[Literal["yes", "no"], Form()] = "yes",
    website: Annotated[Website | None, Form(description=WEBSITE)] = None,
    scope: Annotated[Literal["storefront", "all"], Form(description="Search this storefront or all.")] = "storefront",
) -> dict[str, Any]:
    caller = current_caller(app)
    result = dedupe().check_and_store(
        Upload(file.content, file.filename, caller.storefront(website)),
        caller=caller,
        check_duplicate=check_duplicate == "yes",
        scope=scope,
        max_bytes=get_settings().max_upload_bytes,
    )
    return result.to_response()


class UploadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # Omitted: the client's storefront (Caller.storefront). An explicit null is refused, as for every field:
    # the default is not validated, a value is.
    website: Website = Field(None, description=WEBSITE)  # type: ignore[assignment]  # None: omitted
    filename: StrictStr | None = Field(None, max_length=255)
    content_type: Literal["image/jpeg", "image/png", "image/webp"] = "image/jpeg"


@app.post("/uploads")
@tracer.capture_method
def create_upload(request: UploadRequest) -> dict[str, Any]:
    caller = current_caller(app)
    return upload_forms().presigned_upload(
        caller, caller.storefront(request.website), request.filename, request.content_type
    )


@app.get("/uploads/<upload_id>")
@tracer.capture_method
def get_upload(
    upload_id: Annotated[str, Path(pattern=UPLOAD_ID_PATTERN)],
    website: Annotated[Website | None, Query(description=WEBSITE)] = None,
) -> dict[str, Any]:
    caller = current_caller(app)
    return upload_forms().upload_status(caller, caller.storefront(website), upload_id)


@aws.per_container
def catalogue() -> Catalogue:
    dedupe()  # the collection exists and holds the model's vectors
    return Catalogue(CatalogueStores.from_settings())


class ListedImage(BaseModel):
    image_id: str = Field(description="The photo's id: the SHA-256 of its bytes (DELETE /images/{image_id}).")
    image_name: str | None = Field(description="The file name it was uploaded with, where it had one.")
    s3_url: str | None
    created_at: int | None = Field(description="When it was stored (Unix seconds).")


class ImagePage(BaseModel):
    images: list[ListedImage]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last. A page may be short and still have one."
    )


LIST_PARAMETERS = ("website", "cursor", "limit")
ImageIdPath = Annotated[
    str, Path(pattern=IMAGE_ID_PATTERN, description="The photo's id: the SHA-256 of its bytes, in hex (`image_id`).")
]


@app.get("/images", responses={200: {"description": "One page of the storefront's stored images."}})
@tracer.capture_method
def list_images(
    website: Annotated[Website | None, Query(description=WEBSITE)] = None,
    cursor: Annotated[
        str | None, Query(max_length=catalogue_module.MAX_CURSOR_CHARS, description="`next_cursor` of the page before.")
    ] = None,
    limit: Annotated[
        int,
        Query(
            ge=1,
            le=catalogue_module.MAX_LIMIT,
            description=f"Images per page, at most: 1 to {catalogue_module.MAX_LIMIT} "
            f"(default {catalogue_module.DEFAULT_LIMIT}).",
        ),
    ] = catalogue_module.DEFAULT_LIMIT,
) -> ImagePage:
    """The storefront's stored photos, newest first, a page at a time: each page holds `limit` images
    unless it is the last, which has no `next_cursor`. A cursor is tied to its storefront."""
    check_parameters(app.current_event.multi_value_query_string_parameters or {}, LIST_PARAMETERS, "GET /images")
    caller = current_caller(app)
    listed = catalogue().list_images(caller, caller.storefront(website), cursor, limit)
    return ImagePage.model_validate(listed)


@app.get(
    "/images/<image_id>",
    responses={
        302: {
            "description": "The photo: `Location` is a fresh presigned URL of it. This is the link `s3_url` holds "
            "when `image_links` is `private`; it does not expire, and only the storefront's clients can follow it."
        }
    },
)
@tracer.capture_method
def get_image(
    image_id: ImageIdPath,
    website: Annotated[Website | None, Query(description=WEBSITE)] = None,
) -> Response[None]:
    """Redirect to a stored photo (302 to a fresh presigned URL): 403 `storefront_forbidden` for another
    storefront's client, 404 `image_not_found` for an id the storefront does not hold."""
    check_parameters(app.current_event.multi_value_query_string_parameters or {}, ("website",), "GET /images/{id}")
    caller = current_caller(app)
    location = catalogue().presigned_link(caller, caller.storefront(website), image_id)
    return Response(status_code=302, body=None, headers={"Location": location, "Cache-Control": "no-store"})


@app.delete(
    "/images/<image_id>",
    responses={204: {"description": "Deleted: the object, its vector and its record. Deleting it again answers 404."}},
)
@tracer.capture_method
def delete_image(
    image_id: ImageIdPath,
    website: Annotated[Website | None, Query(description=WEBSITE)] = None,
) -> Response[None]:
    """Delete a stored photo: its object under catalogue/, its vector, its record and captions. The same
    photo uploaded afterwards is new, not a duplicate. A second delete answers 404 `image_not_found`."""
    check_parameters(app.current_event.multi_value_query_string_parameters or {}, ("website",), "DELETE /images")
    caller = current_caller(app)
    catalogue().delete(caller, caller.storefront(website), image_id)
    return Response(status_code=204, body=None)


@aws.per_container
def verdicts() -> Verdicts:
    return Verdicts(CatalogueStores.from_settings().claims)


IMAGE_ID = "An image id: the SHA-256 of the photo's bytes, in hex."


class VerdictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    website: Website = Field(None, description=WEBSITE)  # type: ignore[assignment]  # None: omitted
    image_id: StrictStr = Field(
        pattern=IMAGE_ID_PATTERN, description="The upload's id (the SHA-256 of its bytes; it need not be stored)."
    )
    matched_image_id: StrictStr = Field(
        pattern=IMAGE_ID_PATTERN,
        description="The matched image's id (`image_id` of a duplicate's result): stored in the storefront.",
    )
    verdict: Verdict = Field(description="`same_piece`: the same piece; `not_duplicate`: a different piece.")


class RecordedVerdict(BaseModel):
    website: str
    image_id: str
    matched_image_id: str
    verdict: Verdict
    recorded_at: int = Field(description="When it was recorded (Unix seconds).")
    recorded_by: str | None = Field(description="The client that recorded it.")


class VerdictPage(BaseModel):
    verdicts: list[RecordedVerdict]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null on the last. A page may be short and still have one."
    )


@app.put("/verdicts", responses={200: {"description": "The verdict as recorded (it replaces the pair's one before)."}})
@tracer.capture_method
def record_verdict(request: VerdictRequest) -> RecordedVerdict:
    """Record a reviewer's verdict on a duplicate pair, in either order: the pair is unordered, and
    recording it again replaces its verdict. 404 `image_not_found` when the matched image is not stored
    in the storefront; 400 `same_image_pair` for one image twice."""
    caller = current_caller(app)
    recorded = verdicts().record(
        caller, caller.storefront(request.website), request.image_id, request.matched_image_id, request.verdict
    )
    return RecordedVerdict.model_validate(recorded)


@app.get("/verdicts", responses={200: {"description": "One page of the storefront's verdicts."}})
@tracer.capture_method
def list_verdicts(
    website: Annotated[Website | None, Query(description=WEBSITE)] = None,
    image_id: Annotated[
        str | None, Query(pattern=IMAGE_ID_PATTERN, description="Only the verdicts on pairs holding this image.")
    ] = None,
    cursor: Annotated[
        str | None, Query(max_length=verdicts_module.MAX_CURSOR_CHARS, description="`next_cursor` of the page before.")
    ] = None,
    limit: Annotated[
        int, Query(ge=1, le=verdicts_module.MAX_LIMIT, description="Verdicts per page, at most.")
    ] = verdicts_module.DEFAULT_LIMIT,
) -> VerdictPage:
    """The storefront's verdicts, newest first, a page at a time (the labels `python -m evaluation.calibrate
    --verdicts-from-api` exports). A cursor is tied to its storefront and `image_id`."""
    parameters = app.current_event.multi_value_query_string_parameters or {}
    check_parameters(parameters, ("website", "image_id", "cursor", "limit"), "GET /verdicts")
    caller = current_caller(app)
    listed = verdicts().page(caller, caller.storefront(website), image_id, cursor, limit)
    return VerdictPage.model_validate(listed)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
