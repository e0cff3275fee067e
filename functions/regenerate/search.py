"""Listing search, the API: GET /listings/search pages listings matching a query and filters on
their split visual features (listing_vision.realestate.listing_search); GET /listings/migration
reports how far the visual-features migration has got (listing_vision.realestate.migration_progress);
GET /listings/{zpid} shows one listing's photos and its text before and after the split
(listing_vision.realestate.listing_view)."""

# No `from __future__ import annotations` here: Powertools reads the route annotations at run time.

from typing import Annotated, Any

from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, Field

from listing_vision import aws
from listing_vision.api import create_resolver, current_caller
from listing_vision.api.query_parameters import check_parameters
from listing_vision.observability import logger, metrics, tracer
from listing_vision.realestate import listing_search, listing_view, migration_progress
from listing_vision.realestate.listing_search import (
    DEFAULT_LIMIT,
    MAX_AMENITIES_CHARS,
    MAX_CURSOR_CHARS,
    MAX_LIMIT,
    MAX_TEXT_CHARS,
)
from listing_vision.realestate.listing_view import ZPID_PATTERN
from listing_vision.realestate.listings_index import ListingsIndex

app = create_resolver()


@aws.per_container
def listings() -> ListingsIndex:
    return ListingsIndex.from_settings()


class FoundListing(BaseModel):
    zpid: str
    score: float = Field(
        description="Relevance to `q` (OpenSearch's score; the same for every hit without `q`); ties go by zpid."
    )
    exterior_visual_features: str | None
    interior_visual_features: str | None
    amenities_visual_features: str | None


class SearchPage(BaseModel):
    listings: list[FoundListing]
    total: int = Field(description="Listings matching the query and filters, over all pages.")
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last.")


@app.get("/listings/search", responses={200: {"description": "One page of listings, best first."}})
@tracer.capture_method
def search_listings(
    q: Annotated[
        str | None,
        Query(
            max_length=MAX_TEXT_CHARS,
            description="Words, searched in the split field they describe (exterior, interior or amenities).",
        ),
    ] = None,
    amenities: Annotated[
        str | None,
        Query(
            max_length=MAX_AMENITIES_CHARS,
            description="Comma-separated amenities the listing must have (`pool,garage`), in any words for them.",
        ),
    ] = None,
    exterior: Annotated[
        str | None, Query(max_length=MAX_TEXT_CHARS, description="Words the exterior features must all hold.")
    ] = None,
    interior: Annotated[
        str | None, Query(max_length=MAX_TEXT_CHARS, description="Words the interior features must all hold.")
    ] = None,
    cursor: Annotated[
        str | None, Query(max_length=MAX_CURSOR_CHARS, description="`next_cursor` of the page before.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Listings per page.")] = DEFAULT_LIMIT,
) -> SearchPage:
    current_caller(app)  # any client with a key: listings belong to no storefront
    parameters = app.current_event.multi_value_query_string_parameters or {}
    request = listing_search.parse(parameters)  # also refuses what the declaration above cannot
    return SearchPage.model_validate(listing_search.search(listings(), request))


class FieldShare(BaseModel):
    listings: int
    pct: float = Field(description="Percent of all listings.")


class LastRun(BaseModel):
    run_id: str | None
    operation: str | None = Field(description="execute, rollback or backup.")
    finished_at: int | None = Field(description="When its finish step ran (Unix seconds).")
    batches: int
    batches_done: int
    batches_failed: int
    failed_batches: list[dict[str, Any]] = Field(description="The first 20 failed batches: number, zpids, error.")
    listings_failed: int | None = Field(
        None,
        description="An in-process run's (the CLI's) listings that failed: its batches go on past a failed "
        "listing, so they are not failed one by one. Null for a Step Functions run, where a failed listing "
        "fails its batch.",
    )
    passed: bool | None = Field(description="Whether it passed (verify's criteria and no failed batch, for execute).")
    verify: dict[str, Any] | None = Field(
        description="Verify's figures after an execute: passed, failures, total, has_all_three(_pct), "
        "other_fields_changed (given a backup)."
    )


class CurrentRun(BaseModel):
    run_id: str
    operation: str | None = Field(description="execute, rollback or backup.")
    started_at: int | None = Field(description="When its plan step ran (Unix seconds).")
    batches: int = Field(description="Batches planned.")
    batches_recorded: int = Field(
        description="Batches that have left a record so far: done, or failed with their retries spent and "
        "caught. Which failed is known only when the run finishes (see `last_run`: a batch with no record "
        "then failed), so a run going shows no failures."
    )
    recorded_complete: bool = Field(
        description="Whether `batches_recorded` counted every record (false: it stopped at 100,000)."
    )
    running: bool = Field(description="Always true: a finished run shows as `last_run` instead.")
    execution: str | None = Field(
        None, description="The Step Functions execution running it, which holds the run's lease (one run at a time)."
    )
    holder: str | None = Field(
        None,
        description="An in-process run's (the CLI's) host and process id, which hold the lease while it renews "
        "it; its `batches_recorded` are the batches done when it last renewed (at most a minute ago).",
    )


class MigrationProgress(BaseModel):
    total: int = Field(description="Listings in the index.")
    fields: dict[str, FieldShare] = Field(description="Listings holding each of the three split fields.")
    all_fields: FieldShare = Field(description="Listings holding all three: the migration's monitoring figure.")
    target_pct: float = Field(description="The share with all three that `verify` requires.")
    meets_target: bool
    current_run: CurrentRun | None = Field(
        description="The run going (planned, not finished), on Step Functions or in process; null when none is."
    )
    last_run: LastRun | None = Field(
        description="The last finished run (on Step Functions or in process); null before any."
    )


@app.get(
    "/listings/migration",
    responses={
        200: {
            "description": "How many listings hold the split fields (read-only; the index's figures), the "
            "run going's batches recorded so far, and the last finished run's batches and verify results."
        }
    },
)
@tracer.capture_method
def migration_status() -> MigrationProgress:
    current_caller(app)  # any client with a key, as search
    parameters = app.current_event.multi_value_query_string_parameters or {}
    check_parameters(parameters, (), "GET /listings/migration")
    return MigrationProgress.model_validate(migration_progress.progress(listings()))


class ListingPhoto(BaseModel):
    url: str = Field(description="As the listing holds it (an s3:// URI or an http(s) URL).")
    link: str | None = Field(description="The URL to open it at; null for an s3:// URI.")


class ListingView(BaseModel):
    zpid: str
    photos: list[ListingPhoto]
    before: dict[str, str | None] = Field(description="`visual_features_text`: the aggregated text the split reads.")
    after: dict[str, str | None] = Field(description="The three split fields; null where not split yet.")
    split: bool = Field(description="Whether the listing holds all three fields, its images all analysed.")
    images_pending: bool = Field(description="Ingest left it with images still to analyse.")


@app.get(
    "/listings/<zpid>",
    responses={200: {"description": "One listing's photos and its text before and after the split (read-only)."}},
)
@tracer.capture_method
def get_listing(
    zpid: Annotated[str, Path(pattern=ZPID_PATTERN, description="The listing's id.")],
) -> ListingView:
    current_caller(app)  # any client with a key, as search: listings belong to no storefront
    parameters = app.current_event.multi_value_query_string_parameters or {}
    check_parameters(parameters, (), "GET /listings/{zpid}")
    return ListingView.model_validate(listing_view.view(listings(), zpid))


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
