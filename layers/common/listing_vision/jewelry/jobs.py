"""Image-generation jobs: the record in DynamoDB (`jobs` table, key `job_id`, expiring after 30 days)
and the event that starts the worker on one."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, Field

from listing_vision import aws
from listing_vision.config import get_settings
from listing_vision.dynamodb_items import expression_values, from_item, to_item
from listing_vision.errors import NotFound

TTL_S = 30 * 86_400
JOB_ID_PATTERN = r"^[0-9a-f]{32}$"


class RunJob(BaseModel):
    """The asynchronous worker's event: render `only` these types of the job (default: all of its types)."""

    operation: Literal["run_job"] = "run_job"
    job_id: str = Field(pattern=JOB_ID_PATTERN)
    only: list[int] | None = Field(None, min_length=1, max_length=5)


@dataclass
class Job:
    job_id: str
    status: str  # queued | running | done
    product: str
    website: str
    source_bucket: str
    source_key: str
    image_types: list[int]
    dimensions_mm: dict[str, float] | None = None
    results: dict[int, dict[str, Any]] = field(default_factory=dict)
    zip_key: str | None = None
    timing: dict[str, Any] = field(default_factory=dict)  # the last run's batch timing
    created_at: int = 0
    updated_at: int = 0


class JobStore:
    def __init__(self, table: str | None = None):
        self.table = table or get_settings().jobs_table
        self.dynamodb = aws.client("dynamodb")

    def create(
        self,
        product: str,
        website: str,
        bucket: str,
        key: str,
        image_types: list[int],
        dimensions_mm: dict[str, float] | None,
    ) -> Job:
        now = int(time.time())
        job = Job(
            uuid.uuid4().hex,
            "queued",
            product,
            website,
            bucket,
            key,
            image_types,
            dimensions_mm,
            created_at=now,
            updated_at=now,
        )
        item = {
            "job_id": job.job_id,
            "status": job.status,
            "product": product,
            "website": website,
            "source_bucket": bucket,
            "source_key": key,
            "image_types": image_types,
            "dimensions_mm": dimensions_mm,
            "created_at": now,
            "updated_at": now,
            "expires_at": now + TTL_S,
        }
        self.dynamodb.put_item(
            TableName=self.table, Item=to_item(item), ConditionExpression="attribute_not_exists(job_id)"
        )
        return job

    def get(self, job_id: str) -> Job:
        item = self.dynamodb.get_item(TableName=self.table, Key=self._key(job_id), ConsistentRead=True).get("Item")
        if not item:
            raise NotFound(f"No job {job_id!r}.", code="job_not_found")
        values = from_item(item)
        results = {int(name.split("_", 1)[1]): value for name, value in values.items() if name.startswith("result_")}
        return Job(
            job_id=job_id,
            status=values["status"],
            product=values["product"],
            website=values["website"],
            source_bucket=values["source_bucket"],
            source_key=values["source_key"],
            image_types=[int(t) for t in values["image_types"]],
            dimensions_mm=values.get("dimensions_mm"),
            results=results,
            zip_key=values.get("zip_key"),
            timing=values.get("timing", {}),
            created_at=values["created_at"],
            updated_at=values["updated_at"],
        )

    def set_status(self, job_id: str, status: str) -> None:
        self.dynamodb.update_item(
            TableName=self.table,
            Key=self._key(job_id),
            UpdateExpression="SET #s = :s, updated_at = :now",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues=expression_values(s=status, now=int(time.time())),
        )

    def record(self, job_id: str, image_type: int, result: dict[str, Any]) -> None:
        """One type's outcome (each type is its own attribute, so parallel types never collide)."""
        self.dynamodb.update_item(
            TableName=self.table,
            Key=self._key(job_id),
            UpdateExpression="SET #r = :r, updated_at = :now",
            ExpressionAttributeNames={"#r": f"result_{image_type}"},
            ExpressionAttributeValues=expression_values(r=result, now=int(time.time())),
        )

    def finish(self, job_id: str, zip_key: str | None, timing: dict[str, Any] | None = None) -> None:
        values: dict[str, Any] = {"s": "done", "now": int(time.time()), "t": timing or {}}
        update = "SET #s = :s, updated_at = :now, timing = :t"
        if zip_key:
            update += ", zip_key = :z"
            values["z"] = zip_key
        self.dynamodb.update_item(
            TableName=self.table,
            Key=self._key(job_id),
            UpdateExpression=update,
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues=expression_values(**values),
        )

    @staticmethod
    def _key(job_id: str) -> dict[str, Any]:
        return to_item({"job_id": job_id})
