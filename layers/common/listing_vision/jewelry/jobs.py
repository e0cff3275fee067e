"""Image-generation jobs in DynamoDB (`jobs` table, key `job_id`, expiring after 30 days)."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from listing_vision import aws
from listing_vision.config import get_settings
from listing_vision.errors import NotFound

TTL_S = 30 * 86_400


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
            "job_id": {"S": job.job_id},
            "status": {"S": job.status},
            "product": {"S": product},
            "website": {"S": website},
            "source_bucket": {"S": bucket},
            "source_key": {"S": key},
            "image_types": {"S": json.dumps(image_types)},
            "dimensions_mm": {"S": json.dumps(dimensions_mm)},
            "created_at": {"N": str(now)},
            "updated_at": {"N": str(now)},
            "expires_at": {"N": str(now + TTL_S)},
        }
        self.dynamodb.put_item(TableName=self.table, Item=item, ConditionExpression="attribute_not_exists(job_id)")
        return job

    def get(self, job_id: str) -> Job:
        item = self.dynamodb.get_item(TableName=self.table, Key={"job_id": {"S": job_id}}, ConsistentRead=True).get(
            "Item"
        )
        if not item:
            raise NotFound(f"No job {job_id!r}.", code="job_not_found")
        results = {int(k.split("_", 1)[1]): json.loads(v["S"]) for k, v in item.items() if k.startswith("result_")}
        return Job(
            job_id=job_id,
            status=item["status"]["S"],
            product=item["product"]["S"],
            website=item["website"]["S"],
            source_bucket=item["source_bucket"]["S"],
            source_key=item["source_key"]["S"],
            image_types=json.loads(item["image_types"]["S"]),
            dimensions_mm=json.loads(item["dimensions_mm"]["S"]),
            results=results,
            zip_key=item.get("zip_key", {}).get("S"),
            timing=json.loads(item.get("timing", {}).get("S", "{}")),
            created_at=int(item["created_at"]["N"]),
            updated_at=int(item["updated_at"]["N"]),
        )

    def set_status(self, job_id: str, status: str) -> None:
        self.dynamodb.update_item(
            TableName=self.table,
            Key={"job_id": {"S": job_id}},
            UpdateExpression="SET #s = :s, updated_at = :now",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":s": {"S": status}, ":now": {"N": str(int(time.time()))}},
        )

    def record(self, job_id: str, image_type: int, result: dict[str, Any]) -> None:
        """One type's outcome (each type is its own attribute, so parallel types never collide)."""
        self.dynamodb.update_item(
            TableName=self.table,
            Key={"job_id": {"S": job_id}},
            UpdateExpression="SET #r = :r, updated_at = :now",
            ExpressionAttributeNames={"#r": f"result_{image_type}"},
            ExpressionAttributeValues={":r": {"S": json.dumps(result)}, ":now": {"N": str(int(time.time()))}},
        )

    def finish(self, job_id: str, zip_key: str | None, timing: dict[str, Any] | None = None) -> None:
        values: dict[str, Any] = {
            ":s": {"S": "done"},
            ":now": {"N": str(int(time.time()))},
            ":t": {"S": json.dumps(timing or {})},
        }
        update = "SET #s = :s, updated_at = :now, timing = :t"
        if zip_key:
            update += ", zip_key = :z"
            values[":z"] = {"S": zip_key}
        self.dynamodb.update_item(
            TableName=self.table,
            Key={"job_id": {"S": job_id}},
            UpdateExpression=update,
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues=values,
        )
