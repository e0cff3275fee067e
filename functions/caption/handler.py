"""POST /generate_caption: an LLM caption for a jewelry photo (with the dedupe check)."""

# No `from __future__ import annotations` here: Powertools reads the route annotations at run time.

from typing import Annotated, Any, Literal

from aws_lambda_powertools.event_handler.openapi.params import File, Form, UploadFile
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from listing_vision.api import create_resolver
from listing_vision.errors import NotImplementedYet
from listing_vision.observability import logger, metrics, tracer

app = create_resolver()


@app.post("/generate_caption")
@tracer.capture_method
def generate_caption(
    file: Annotated[UploadFile, File(description="The jewelry photo.")],
    type: Annotated[Literal["earring", "necklace", "bracelet", "ring"], Form()],
    check_duplicate: Annotated[Literal["yes", "no"], Form()] = "yes",
    website: Annotated[Literal["alya", "blysk"], Form()] = "alya",
) -> dict[str, Any]:
    raise NotImplementedYet(
        "Captioning is not built yet (issue 5); the request was valid and nothing was stored.",
        details={"type": type, "website": website, "bytes": len(file.content)},
    )


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
