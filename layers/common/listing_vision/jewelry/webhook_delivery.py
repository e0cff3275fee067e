"""Delivering a finish event to the storefront's webhooks, signed, retried, recorded.

The `webhook-delivery` function is the target of an EventBridge rule on the jobs bus
(functions/triggers.py). For each registration of the job's storefront it POSTs one JSON body:

    {"id": <delivery id>, "type": "Generation job finished", "event_id": ..., "time": ..., "detail": {...}}

with headers `X-Webhook-Id` (the delivery id, the same on every attempt: a receiver dedupes on it),
`X-Webhook-Timestamp` (Unix seconds, per attempt) and `X-Webhook-Signature`:
`sha256=` + hex HMAC-SHA256 of `<timestamp>.<body>` under the registration's secret. A receiver
recomputes it over the raw body (`verify` below), compares in constant time and refuses old
timestamps (replays).

An attempt that times out, cannot connect or is answered 5xx is retried after WEBHOOK_BACKOFF_S,
doubled each time, up to WEBHOOK_ATTEMPTS attempts; a 2xx ends it `delivered`; any other answer (4xx,
a redirect, which is never followed) ends it `failed` at once; the answer's body is never read. Each
attempt is logged and appended to the delivery's record (GET /webhooks/deliveries), which ends
`delivered`, `failed` or `refused` (the URL no longer resolves to a public address). The record is
made once per (event, registration): a Lambda retry of the same event continues it and never re-sends
a delivery that ended.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from typing import Any

import urllib3
from botocore.exceptions import ClientError

from listing_vision.config import get_settings
from listing_vision.dynamodb_items import conditional_check_failed, from_item, to_item
from listing_vision.errors import InvalidRequest
from listing_vision.jewelry.job_events import DETAIL_TYPE, SOURCE
from listing_vision.jewelry.webhooks import Registration, WebhookStore, check_url, client_digest
from listing_vision.observability import logger, metrics
from listing_vision.resources import WEBHOOK_DELIVERY_DAYS, WEBHOOKS_BY_OWNER

ID_HEADER = "X-Webhook-Id"
TIMESTAMP_HEADER = "X-Webhook-Timestamp"
SIGNATURE_HEADER = "X-Webhook-Signature"
ENDED = ("delivered", "failed", "refused")
MAX_LIMIT = 100


def sign(secret: str, timestamp: int | str, body: bytes) -> str:
    """The signature header's value: `sha256=` + hex HMAC-SHA256 of `<timestamp>.<body>`."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify(secret: str, timestamp: str, body: bytes, signature: str, now: float, tolerance_s: float = 300) -> bool:
    """What a receiver checks: the signature over the raw body, and a timestamp within `tolerance_s`."""
    try:
        fresh = abs(now - int(timestamp)) <= tolerance_s
    except ValueError:
        return False
    return fresh and hmac.compare_digest(sign(secret, timestamp, body), signature)


def _owner(website: str, client_id: str) -> str:
    return f"deliveries#{website}#{client_digest(client_id)}"


class WebhookDelivery:
    def __init__(self, store: WebhookStore | None = None, pool: urllib3.PoolManager | None = None) -> None:
        self.store = store or WebhookStore()
        self.pool = pool or urllib3.PoolManager(retries=False)
        settings = get_settings()
        self.attempts = settings.webhook_attempts
        self.backoff_s = settings.webhook_backoff_s
        self.timeout_s = settings.webhook_timeout_s

    def deliver_event(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        """Deliver one EventBridge finish event to every webhook of its storefront; their records."""
        if event.get("source") != SOURCE or event.get("detail-type") != DETAIL_TYPE or "id" not in event:
            # the rule passes nothing else: an error, so Lambda's retries and failure queue keep it
            raise ValueError(f"not a job finish event: source {str(event.get('source'))[:80]!r}")
        detail = event.get("detail") or {}
        records, failed = [], []
        for registration in self.store.for_website(str(detail.get("website"))):
            try:
                records.append(self.deliver(registration, event))
            except Exception:  # noqa: BLE001 - the others are still delivered; raised below
                logger.exception("webhook delivery broke", extra={"webhook": registration.key})
                failed.append(registration.key)
        if failed:
            # Lambda retries the event (deliveries that ended are not sent again), then the failure queue
            raise RuntimeError(f"{len(failed)} webhook deliveries broke off: {', '.join(failed)}")
        return records

    def deliver(self, registration: Registration, event: dict[str, Any]) -> dict[str, Any]:
        delivery_id = uuid.uuid5(uuid.NAMESPACE_URL, f"{event.get('id')}/{registration.key}").hex
        secret = self.store.secret(registration)  # before the record: no record without a signed attempt
        record = self._open(delivery_id, registration, event)
        if record["status"] in ENDED:
            return record
        body = json.dumps(
            {
                "id": delivery_id,
                "type": DETAIL_TYPE,
                "event_id": event.get("id"),
                "time": event.get("time"),
                "detail": event.get("detail"),
            },
            sort_keys=True,
            separators=(",", ":"),
        ).encode()
        attempt = len(record["attempts"])
        status = "failed"
        while attempt < self.attempts:
            if attempt:
                time.sleep(self.backoff_s * 2 ** (attempt - 1))
            attempt += 1
            outcome, retry = self._attempt(registration.url, delivery_id, secret, body)
            outcome["attempt"] = attempt
            logger.info(
                "webhook attempt",
                extra={
                    "delivery_id": delivery_id,
                    "job_id": record["job_id"],
                    "website": registration.website,
                    **outcome,
                },
            )
            record = self._append(delivery_id, outcome)
            if outcome.get("error") == "refused":
                status = "refused"
                break
            if not retry:
                status = "delivered" if 200 <= int(outcome.get("status_code", 0)) < 300 else "failed"
                break
        record = self._end(delivery_id, status)
        if status != "delivered":
            metrics.add_metric(name="WebhookDeliveriesFailed", unit="Count", value=1)
        return record

    def _attempt(self, url: str, delivery_id: str, secret: str, body: bytes) -> tuple[dict[str, Any], bool]:
        """One POST: what happened, and whether it is worth another attempt."""
        started = time.monotonic()
        outcome: dict[str, Any] = {"at": int(time.time())}
        try:
            check_url(url)  # the name may resolve elsewhere since registration
        except InvalidRequest as refused:
            outcome.update(error="refused", message=refused.message[:200])
            return outcome, False
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "listing-vision-webhooks/1",
            ID_HEADER: delivery_id,
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign(secret, timestamp, body),
        }
        try:
            # The answer's body is never read: its status is all that counts, and a receiver's body (a
            # declared terabyte, or one never sent) must cost no memory or time here
            answer = self.pool.request(
                "POST",
                url,
                body=body,
                headers=headers,
                timeout=self.timeout_s,
                redirect=False,
                retries=False,
                preload_content=False,
            )
            answer.close()  # the connection goes with it: never reused with an unread body
        except urllib3.exceptions.TimeoutError:
            outcome.update(error="timeout")
            return outcome, True
        except urllib3.exceptions.HTTPError as error:
            outcome.update(error="connection", message=str(error)[:200])
            return outcome, True
        finally:
            outcome["ms"] = int((time.monotonic() - started) * 1000)
        outcome["status_code"] = answer.status
        return outcome, answer.status >= 500

    # --- the delivery's record ------------------------------------------------------------
    def _open(self, delivery_id: str, registration: Registration, event: dict[str, Any]) -> dict[str, Any]:
        """The delivery's record, made `pending` unless an earlier attempt of this event made it."""
        now = int(time.time())
        detail = event.get("detail") or {}
        item = {
            "webhook_key": f"delivery#{delivery_id}",
            "owner": _owner(registration.website, registration.client_id),
            "created_at": now,
            "expires_at": now + WEBHOOK_DELIVERY_DAYS * 86400,
            "delivery_id": delivery_id,
            "website": registration.website,
            "job_id": str(detail.get("job_id")),
            "run_id": str(detail.get("run_id")),
            "job_status": str(detail.get("status")),
            "url": registration.url,
            "status": "pending",
            "attempts": [],
        }
        try:
            self.store.dynamodb.put_item(
                TableName=self.store.table,
                Item=to_item(item),
                ConditionExpression="attribute_not_exists(webhook_key)",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if not conditional_check_failed(error):
                raise
            return from_item(error.response["Item"])
        return item

    def _append(self, delivery_id: str, outcome: dict[str, Any]) -> dict[str, Any]:
        answer = self.store.dynamodb.update_item(
            TableName=self.store.table,
            Key=to_item({"webhook_key": f"delivery#{delivery_id}"}),
            UpdateExpression="SET attempts = list_append(attempts, :attempt)",
            ExpressionAttributeValues=to_item({":attempt": [outcome]}),
            ReturnValues="ALL_NEW",
        )
        return from_item(answer["Attributes"])

    def _end(self, delivery_id: str, status: str) -> dict[str, Any]:
        answer = self.store.dynamodb.update_item(
            TableName=self.store.table,
            Key=to_item({"webhook_key": f"delivery#{delivery_id}"}),
            UpdateExpression="SET #status = :status",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues=to_item({":status": status}),
            ReturnValues="ALL_NEW",
        )
        return from_item(answer["Attributes"])


def list_deliveries(store: WebhookStore, website: str, client_id: str, limit: int) -> list[dict[str, Any]]:
    """The client's latest deliveries to its webhook of `website`, newest first."""
    answer = store.dynamodb.query(
        TableName=store.table,
        IndexName=WEBHOOKS_BY_OWNER.name,
        KeyConditionExpression="#owner = :owner",
        ExpressionAttributeNames={"#owner": "owner"},
        ExpressionAttributeValues=to_item({":owner": _owner(website, client_id)}),
        ScanIndexForward=False,
        Limit=min(limit, MAX_LIMIT),
    )
    shown = ("delivery_id", "job_id", "run_id", "job_status", "url", "status", "attempts", "created_at")
    return [{name: from_item(item).get(name) for name in shown} for item in answer.get("Items", [])]
