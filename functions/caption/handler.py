"""POST /generate_caption: an LLM caption for a jewelry photo, after the duplicate check."""

# No `from __future__ import annotations` here: Powertools reads the route annotations at run time.

from typing import Annotated, Any, Literal

from aws_lambda_powertools.event_handler.openapi.params import File, Form, UploadFile
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from listing_vision import aws
from listing_vision.api import create_resolver, current_caller
from listing_vision.embeddings.factory import get_embedder
from listing_vision.jewelry.caption_service import CaptionService
from listing_vision.jewelry.captions import get_captioner
from listing_vision.jewelry.dedupe import DedupeService, Upload
from listing_vision.jewelry.stores import CatalogueStores
from listing_vision.observability import logger, metrics, tracer

app = create_resolver()


@aws.per_container
def captions() -> CaptionService:
    dedupe = DedupeService(get_embedder(), CatalogueStores.from_settings())
    dedupe.require_ready()  # 503 not_provisioned / model_mismatch until provisioning has made the collection
    return CaptionService(dedupe)


@app.post("/generate_caption")
@tracer.capture_method
def generate_caption(
    file: Annotated[UploadFile, File(description="The jewelry photo (JPEG, PNG or WebP).")],
    type: Annotated[Literal["earring", "necklace", "bracelet", "ring"], Form()],
    check_duplicate: Annotated[Literal["yes", "no"], Form()] = "yes",
    website: Annotated[
        Literal["alya", "blysk"] | None,
        Form(description="The storefront; default: the client's own when it holds one, else alya."),
    ] = None,
    scope: Annotated[Literal["storefront", "all"], Form()] = "storefront",
) -> dict[str, Any]:
    caller = current_caller(app)
    return captions().caption_upload(
        Upload(file.content, file.filename, caller.storefront(website)),
        type,
        get_captioner(),
        caller=caller,
        check_duplicate=check_duplicate == "yes",
        scope=scope,
    )


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
