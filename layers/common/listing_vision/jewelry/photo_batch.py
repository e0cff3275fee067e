"""Many photos in one POST /generate-images: `s3_urls` as a list of up to MAX_PHOTOS sources.

Each photo is its own job (its own `job_id`, worker, results, regeneration and cancel), so one
failing photo never fails the others. The request as a whole is refused (400, nothing written)
when the list is too long or names a photo twice (the same object in any URL form), or when what
every photo shares is wrong (`product_type`, `image_types`, `dimensions_mm`). A photo that cannot
be used (`source_not_allowed`, `storefront_forbidden`, `source_not_found`, `worker_not_started`)
gets an entry carrying its error, and the others their jobs. A photo whose piece cannot be cut out
is a job that ends `failed` (its types' reason `no_piece_found`), as with one photo.

The answer is `{"photos": [...]}`, one entry per source in the request's order, each with its
`s3_url` and either its `error` or its job in the single-photo shape: the finished job's view
(`original_image_url`, `gen_images`, `zip_url`, ...) once it has ended, else the submission
(`job_id`, `status`, `status_url`). 200 when no job is still in progress after the wait (the
same wait as one photo: `Prefer`, GENERATION_SYNC_WAIT_S), else 202 (no `Location`: each entry
has its `status_url`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from listing_vision.api.access import Caller
from listing_vision.api.idempotency import Outcome, replay_headers
from listing_vision.errors import InvalidRequest, VisionError
from listing_vision.jewelry.generation import Answer, Generation, Preference, check_order, resolve_source

MAX_PHOTOS = 10


def check_list(s3_urls: list[str]) -> None:
    """400 for a list that cannot be a batch: empty, over MAX_PHOTOS, or the same URL twice."""
    if not s3_urls:
        raise InvalidRequest("s3_urls names no photo.", code="invalid_request", details={"fields": ["s3_urls"]})
    if len(s3_urls) > MAX_PHOTOS:
        raise InvalidRequest(
            f"s3_urls names {len(s3_urls)} photos; at most {MAX_PHOTOS} per request.",
            code="too_many_photos",
            details={"limit": MAX_PHOTOS, "count": len(s3_urls)},
        )
    seen: dict[str, int] = {}
    for index, url in enumerate(s3_urls):
        if url.strip() in seen:
            raise duplicate(seen[url.strip()], index)
        seen[url.strip()] = index


def duplicate(first: int, again: int) -> InvalidRequest:
    """The refusal of a list naming one photo twice, by the positions (a URL may be a signed one: not echoed)."""
    return InvalidRequest(
        f"s3_urls names the same photo at positions {first} and {again}.",
        code="duplicate_photos",
        details={"positions": [first, again]},
    )


class PhotoBatch:
    """One request's photos: what they share (product, types, dimensions) and who asks."""

    def __init__(
        self,
        generation: Generation,
        product_type: str,
        image_types: list[int] | None,
        dimensions_mm: dict[str, float] | None,
        caller: Caller,
    ):
        self.generation = generation
        self.product_type, self.image_types, self.dimensions_mm = product_type, image_types, dimensions_mm
        self.caller = caller

    def submit(self, s3_urls: list[str]) -> dict[str, Any]:
        """Check everything first (a refusal writes nothing), then start a job per usable photo."""
        check_list(s3_urls)
        product, types = check_order(self.product_type, self.image_types, self.dimensions_mm)
        objects: dict[tuple[str, str], int] = {}
        for index, url in enumerate(s3_urls):  # the same object named in two forms (s3://, https://) too
            try:
                named = resolve_source(url)
            except VisionError:
                continue  # that photo's own error, below
            if named in objects:
                raise duplicate(objects[named], index)
            objects[named] = index
        checked: list[tuple[str, tuple[str, str, str] | VisionError]] = []
        for url in s3_urls:
            try:
                checked.append((url, self.generation.check_source(url, self.caller)))
            except VisionError as error:
                checked.append((url, error))
        photos = []
        for url, outcome in checked:
            if not isinstance(outcome, VisionError):
                try:
                    photos.append(
                        {
                            "s3_url": url,
                            **self.generation.start(outcome, product, types, self.dimensions_mm, self.caller),
                        }
                    )
                    continue
                except VisionError as error:  # worker_not_started: that job is ended failed, the others go on
                    outcome = error
            photos.append(
                {"s3_url": url, "status": "failed", "error": {"code": outcome.code, "message": outcome.message}}
            )
        return {"photos": photos}

    def submit_and_wait(
        self,
        s3_urls: list[str],
        preference: Preference,
        limit_s: float,
        once: Callable[[Callable[[], dict[str, Any]]], Outcome] | None,
    ) -> Answer:
        outcome = once(lambda: self.submit(s3_urls)) if once is not None else Outcome(self.submit(s3_urls))
        photos = self.wait(outcome.result["photos"], preference.wait_for(limit_s))
        running = any(p["status"] in ("queued", "running") for p in photos)
        headers = replay_headers(outcome)
        if running and preference.respond_async:
            headers["Preference-Applied"] = "respond-async"
        return Answer(202 if running else 200, {"photos": photos}, headers)

    def wait(self, photos: list[dict[str, Any]], wait_s: float) -> list[dict[str, Any]]:
        """Each photo's entry after waiting up to `wait_s` for its job: the job's view once it has
        ended, else its submission with its current status."""
        jobs = self.generation.wait([p["job_id"] for p in photos if "job_id" in p], wait_s)
        entries = []
        for photo in photos:
            job = jobs.get(photo.get("job_id", ""))
            if job is None:  # a photo refused at submission: its error entry as it is
                entries.append(photo)
            elif job.in_progress:
                entries.append({**photo, "status": job.status})
            else:
                entries.append({"s3_url": photo["s3_url"], **self.generation.job_view(job)})
        return entries


def submit_and_wait(
    generation: Generation,
    s3_urls: str | list[str],
    product_type: str,
    image_types: list[int] | None,
    dimensions_mm: dict[str, float] | None,
    *,
    caller: Caller,
    prefer: str | None = None,
    remaining_s: float | None = None,
    once: Callable[[Callable[[], dict[str, Any]]], Outcome] | None = None,
) -> Answer:
    """POST /generate-images: one photo (the seed's string) is answered as Generation answers it;
    a list is a job per photo, answered together."""
    if isinstance(s3_urls, str):
        return generation.submit_and_wait(
            s3_urls,
            product_type,
            image_types,
            dimensions_mm,
            caller=caller,
            prefer=prefer,
            remaining_s=remaining_s,
            once=once,
        )
    batch = PhotoBatch(generation, product_type, image_types, dimensions_mm, caller)
    return batch.submit_and_wait(s3_urls, Preference.parse(prefer), generation.wait_limit_s(remaining_s), once)
