"""A generation run that ends announces itself: one EventBridge event on the jobs bus
(`JOB_EVENTS_BUS`), source `listing-vision.generation`, detail-type `Generation job finished`.

Each end of a run is a conditional write (jobs.py: `finish`, `cancel`), and only the write that
wins puts the event, after it: a worker retried by Lambda, a duplicated event, a deadline ending a
run at the same moment as its worker, or a second cancel each find the run ended and put nothing.
So a run is announced at most once; it is not announced if the function dies between its write
and the PutEvents (there is no outbox), which the logs then show as a finish without its event.

Detail: `job_id`, `run_id`, `website`, `status` (done, partial, failed or cancelled), `reason`
(when the run failed as a whole, or `cancelled`), and `counts` of the job's types by outcome at
that moment (`delivered`, `failed`, `pending`: types of a cancelled run not rendered).
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from listing_vision import aws
from listing_vision.config import get_settings
from listing_vision.observability import logger, metrics

SOURCE = "listing-vision.generation"
DETAIL_TYPE = "Generation job finished"


class Job(Protocol):
    """What an event tells of a job (jobs.Job, which imports this module)."""

    job_id: str
    run_id: str
    website: str
    status: str
    reason: str | None
    image_types: list[int]
    results: dict[int, dict[str, Any]]


def detail(job: Job) -> dict[str, Any]:
    """The event's detail for a job as its ending write left it."""
    types = sorted(set(job.image_types) | set(job.results))
    outcomes = [job.results.get(n, {}).get("status") for n in types]
    return {
        "job_id": job.job_id,
        "run_id": job.run_id,
        "website": job.website,
        "status": job.status,
        "reason": job.reason,
        "counts": {
            "delivered": outcomes.count("ok"),
            "failed": outcomes.count("failed"),
            "pending": sum(1 for outcome in outcomes if outcome is None),
        },
    }


class JobEvents:
    """Puts the finish events of jobs on one bus."""

    def __init__(self, bus: str | None = None, client: Any = None):
        self.bus = bus or get_settings().job_events_bus
        self.client = client or aws.client("events")

    def finished(self, job: Job) -> bool:
        """Announce the job's run as ended; False (logged, counted) when EventBridge refused it: the
        job has ended whatever happens to its announcement."""
        entry = {
            "Source": SOURCE,
            "DetailType": DETAIL_TYPE,
            "Detail": json.dumps(detail(job), sort_keys=True),
            "EventBusName": self.bus,
            "Resources": [],
        }
        try:
            answer = self.client.put_events(Entries=[entry])
        except (ClientError, BotoCoreError) as error:
            logger.exception("job finish event not put", extra={"job_id": job.job_id, "error": str(error)[:300]})
            metrics.add_metric(name="JobEventsFailed", unit="Count", value=1)
            return False
        if answer.get("FailedEntryCount"):
            logger.error("job finish event refused", extra={"job_id": job.job_id, "entries": answer.get("Entries")})
            metrics.add_metric(name="JobEventsFailed", unit="Count", value=1)
            return False
        logger.info("job finish event put", extra={"job_id": job.job_id, "status": job.status})
        return True
