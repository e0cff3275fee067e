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
attempt is connected to an address its URL's check allowed and bounded as a whole by WEBHOOK_TIMEOUT_S
(webhook_transport.py). Each attempt is logged and appended to the delivery's record
(GET /webhooks/deliveries), which ends `delivered`, `failed` or `refused` (the URL no longer resolves
to a public address). The record is made once per (event, registration): a Lambda retry of the same
event continues it and never re-sends a delivery that ended.

A storefront's registrations are delivered at once (one thread each), so one slow receiver does not
delay the others; and an attempt is only started when it (and its wait) ends before the invocation's
time is up, less a margin for the records: a delivery that runs out of time stays `pending` with its
attempts, and the invocation fails, so Lambda's retry of the event continues it.
"""

from __future__ import annotations

import contextvars
import hashlib
import hmac
import http.client
import json
import ssl
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from botocore.exceptions import ClientError

from listing_vision.config import get_settings
from listing_vision.dynamodb_items import conditional_check_failed, from_item, to_item
from listing_vision.errors import InvalidRequest
from listing_vision.jewelry.job_events import DETAIL_TYPE, SOURCE
from listing_vision.jewelry.webhook_transport import AttemptTimedOut, post
from listing_vision.jewelry.webhooks import Registration, WebhookStore, check_url, client_digest
from listing_vision.observability import logger, metrics
from listing_vision.resources import WEBHOOK_DELIVERY_DAYS, WEBHOOKS_BY_OWNER

ID_HEADER = "X-Webhook-Id"
TIMESTAMP_HEADER = "X-Webhook-Timestamp"
SIGNATURE_HEADER = "X-Webhook-Signature"
ENDED = ("delivered", "failed", "refused")
MAX_LIMIT = 100
RECORD_MARGIN_S = 5.0  # kept of the invocation's time for writing the records after the last attempt
MAX_PARALLEL = 16  # registrations of one storefront delivered at once (one per client: few)


class OutOfTime(Exception):
    """No time left in the invocation for the delivery's next attempt: it stays pending, for Lambda's retry."""


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
    def __init__(
        self,
        store: WebhookStore | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.store = store or WebhookStore()  # its resolver is the check's: the connection goes to what it answered
        self.tls = tls  # None: the system's trusted CAs
        settings = get_settings()
        self.attempts = settings.webhook_attempts
        self.backoff_s = settings.webhook_backoff_s
        self.timeout_s = settings.webhook_timeout_s

    def deliver_event(self, event: dict[str, Any], remaining_s: float | None = None) -> list[dict[str, Any]]:
        """Deliver one EventBridge finish event to every webhook of its storefront, all at once; their
        records. `remaining_s`: the invocation's time left (no attempt is started that would outlast it)."""
        if event.get("source") != SOURCE or event.get("detail-type") != DETAIL_TYPE or "id" not in event:
            # the rule passes nothing else: an error, so Lambda's retries and failure queue keep it
            raise ValueError(f"not a job finish event: source {str(event.get('source'))[:80]!r}")
        deadline = None if remaining_s is None else time.monotonic() + remaining_s - RECORD_MARGIN_S
        detail = event.get("detail") or {}
        registrations = self.store.for_website(str(detail.get("website")))
        records, failed, late = [], [], []
        if not registrations:
            return []
        with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL, len(registrations))) as pool:
            # each in a copy of this invocation's context (its function, its logger's keys), as if inline
            futures = [
                (r, pool.submit(contextvars.copy_context().run, self.deliver, r, event, deadline))
                for r in registrations
            ]
            for registration, future in futures:
                try:
                    record = future.result()
                except OutOfTime:
                    late.append(registration.key)
                    continue
                except Exception:  # noqa: BLE001 - the others are still delivered; raised below
                    logger.exception("webhook delivery broke", extra={"webhook": registration.key})
                    failed.append(registration.key)
                    continue
                records.append(record)
                if record["status"] != "delivered":
                    metrics.add_metric(name="WebhookDeliveriesFailed", unit="Count", value=1)
        if late:
            logger.warning("webhook deliveries ran out of time", extra={"webhooks": late})
        if failed or late:
            # Lambda retries the event (deliveries that ended are not sent again), then the failure queue
            raise RuntimeError(
                f"{len(failed)} webhook deliveries broke off: {', '.join(failed)}; "
                f"{len(late)} ran out of time: {', '.join(late)}"
            )
        return records

    def deliver(
        self, registration: Registration, event: dict[str, Any], deadline: float | None = None
    ) -> dict[str, Any]:
        """One registration's delivery, continued where an earlier invocation left it; its record.
        Raises `OutOfTime` (the record left pending) when the next attempt would end after `deadline`."""
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
            wait_s = self.backoff_s * 2 ** (attempt - 1) if attempt else 0.0
            if deadline is not None and time.monotonic() + wait_s + self.timeout_s > deadline:
                raise OutOfTime(delivery_id)
            time.sleep(wait_s)
            attempt += 1
            outcome, retry = self._attempt(registration.url, delivery_id, secret, body)
            outcome["attempt"] = attempt
            logger.info(
                "webhook attempt",
                extra={
                    "delivery_id": delivery_id,
                    "job_id": record["job_id"],
                    "website": registration.website,
                    # `message` is the log record's own: an error's text is logged as `error_message`
                    **{("error_message" if name == "message" else name): value for name, value in outcome.items()},
                },
            )
            record = self._append(delivery_id, outcome)
            if outcome.get("error") == "refused":
                status = "refused"
                break
            if not retry:
                status = "delivered" if 200 <= int(outcome.get("status_code", 0)) < 300 else "failed"
                break
        return self._end(delivery_id, status)

    def _attempt(self, url: str, delivery_id: str, secret: str, body: bytes) -> tuple[dict[str, Any], bool]:
        """One POST: what happened, and whether it is worth another attempt."""
        started = time.monotonic()
        outcome: dict[str, Any] = {"at": int(time.time())}
        try:
            addresses = check_url(url, resolve=self.store.resolve)  # the name may resolve elsewhere since registration
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
            # to a checked address, the whole attempt within the timeout; the answer's body is never read
            # (its status is all that counts, and a receiver's body must cost no memory or time here)
            status = post(url, addresses, body, headers, self.timeout_s, self.tls)
        except (AttemptTimedOut, TimeoutError):
            outcome.update(error="timeout")
            return outcome, True
        except (OSError, http.client.HTTPException) as error:
            outcome.update(error="connection", message=str(error)[:200])
            return outcome, True
        finally:
            outcome["ms"] = int((time.monotonic() - started) * 1000)
        outcome["status_code"] = status
        return outcome, status >= 500

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
