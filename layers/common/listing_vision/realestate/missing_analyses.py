"""analyse-missing: the images listings name that the vision cache has no analysis of are analysed,
then those listings are split. The migration itself never calls a model (it only reuses the cache),
so a listing whose photos were never analysed stays unsplit until this step has run.

- Each missing image is analysed as ingest analyses a new one (`ListingIngest.analyse_image`:
  fetched from the allowed sources, analysed by the vision model, embedded, cached with its raw
  reply, hash and model names), at most `rate_per_minute` across every process running the step
  (a token bucket in DynamoDB, as image edits are limited) and `concurrency` at once.
- Resumable: the cache is the progress. A run cut short (`limit` images, a provider outage, a
  killed process) leaves what it analysed cached, and the next run starts from what is still
  missing. An image that is not an image, or not from an allowed source, is reported `invalid`
  (it costs a fetch on each run, never a model call); one that failed for now is `pending`.
- Without a provider key (or with `dry_run`) it reports what it would analyse and stops.
- Then the listings it completed are split by the migration's own `execute`, which re-splits
  exactly the listings whose inputs changed (split_records.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from listing_vision.concurrency import thread_map
from listing_vision.config import get_settings
from listing_vision.observability import logger, metrics
from listing_vision.providers.rate_limit import TokenBucket
from listing_vision.realestate.listings_index import ListingDoc, ListingsIndex
from listing_vision.realestate.migration import Migration
from listing_vision.realestate.vision_cache import CachedImage, VisionCache

PAGE = 100  # listings whose images are looked up in the cache at once (BatchGetItem reads 100 keys)
Analyse = Callable[[str], "CachedImage | str"]  # an image's analysis, or "invalid" / "pending"


@dataclass
class MissingReport:
    listings_scanned: int = 0
    listings_missing: int = 0  # listings with at least one image the cache lacks
    images_missing: int = 0
    analysed: int = 0
    pending: list[str] = field(default_factory=list)
    invalid: list[str] = field(default_factory=list)
    touched: list[str] = field(default_factory=list)  # listings with a new analysis: to split again
    stopped: str | None = None  # why the run ended before analysing everything

    def to_json(self) -> dict[str, Any]:
        return {
            "listings_scanned": self.listings_scanned,
            "listings_missing": self.listings_missing,
            "images_missing": self.images_missing,
            "analysed": self.analysed,
            "pending": self.pending[:100],
            "pending_count": len(self.pending),
            "invalid": self.invalid[:100],
            "invalid_count": len(self.invalid),
            "listings_with_new_analyses": len(self.touched),
            "stopped": self.stopped,
        }


def missing_images(
    listings: ListingsIndex, cache: VisionCache, zpids: list[str] | None = None
) -> Iterator[tuple[str, list[str]]]:
    """(zpid, its images the cache lacks, in the listing's order) for each listing with any, in id
    order (or for the chosen listings), a page of listings in memory at a time."""
    docs: Iterable[ListingDoc] = listings.get_docs(zpids).values() if zpids else listings.iter_docs_sorted()
    page: list[ListingDoc] = []
    for doc in docs:
        page.append(doc)
        if len(page) == PAGE:
            yield from _missing_in(page, cache)
            page = []
    yield from _missing_in(page, cache)


def _missing_in(page: list[ListingDoc], cache: VisionCache) -> Iterator[tuple[str, list[str]]]:
    urls = list(dict.fromkeys(url for doc in page for url in doc.image_urls))
    cached = cache.get_many(urls) if urls else {}
    for doc in page:
        yield doc.zpid, list(dict.fromkeys(url for url in doc.image_urls if url not in cached))


def analyse_missing(
    listings: ListingsIndex,
    cache: VisionCache,
    analyse: Analyse | None,
    *,
    acquire: Callable[[], None] = lambda: None,
    zpids: list[str] | None = None,
    limit: int | None = None,
    concurrency: int = 4,
    progress: Callable[[int], None] | None = None,
) -> MissingReport:
    """Analyse what the listings lack (`analyse` None: count it only, and say why in `stopped`),
    each call after `acquire` (the rate limit's token); at most `limit` images in this run."""
    report = MissingReport()
    for zpid, missing in missing_images(listings, cache, zpids):
        report.listings_scanned += 1
        if not missing:
            continue
        report.listings_missing += 1
        report.images_missing += len(missing)
        if analyse is None or report.stopped:
            continue
        room = missing if limit is None else missing[: max(0, limit - report.analysed)]
        if not room:
            report.stopped = f"limit of {limit} images reached: run again to go on"
            continue

        def one(url: str) -> CachedImage | str:
            acquire()
            assert analyse is not None
            return analyse(url)

        outcomes = thread_map(one, room, concurrency)
        for url, outcome in zip(room, outcomes, strict=True):
            if isinstance(outcome, CachedImage):
                report.analysed += 1
            elif outcome == "invalid":
                report.invalid.append(url)
            else:
                report.pending.append(url)
        if progress:
            progress(len(room))
        if any(isinstance(outcome, CachedImage) for outcome in outcomes):
            report.touched.append(zpid)
    metrics.add_metric(name="ListingImagesAnalysed", unit="Count", value=report.analysed)
    logger.info("analyse-missing finished", extra=report.to_json())
    return report


def run(
    migration: Migration,
    zpids: list[str] | None = None,
    limit: int | None = None,
    dry_run: bool = False,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """The step over the configured stores: analyse (unless `dry_run` or no key), then split the
    listings that gained analyses with the migration's `execute`."""
    from listing_vision.realestate.ingest import ListingIngest  # the model clients: only this step needs them

    settings = get_settings()
    ingest = ListingIngest.from_settings()
    analyse = None if dry_run or ingest.vision is None else ingest.analyse_image
    bucket = TokenBucket("listing-image-analyses", settings.image_analyses_per_minute, settings.ingest_concurrency)
    report = analyse_missing(
        migration.listings,
        migration.cache,
        analyse,
        acquire=bucket.acquire,
        zpids=zpids,
        limit=limit,
        concurrency=settings.ingest_concurrency,
        progress=progress,
    )
    if dry_run:
        report.stopped = "dry run: nothing analysed"
    elif analyse is None:
        report.stopped = "no vision provider key (ANTHROPIC_API_KEY or ANTHROPIC_API_KEY_SECRET): nothing analysed"
    result: dict[str, Any] = {"operation": "analyse_missing", **report.to_json()}
    if report.touched:  # a run of execute as the CLI's: it holds the lease (refused while another run goes)
        touched = report.touched
        split = migration.run_in_process(
            "execute", len(touched), 100, lambda step: migration.execute(touched, progress=step)
        )
        result["split"] = {"run_id": split["run_id"], "counts": split["counts"], "failed": split["failed"]}
    done = analyse is not None or dry_run or not report.images_missing  # no key with work left: not done
    result["passed"] = done and not report.pending and not result.get("split", {}).get("failed")
    return result
