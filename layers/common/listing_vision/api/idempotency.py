"""Paid calls made once per `Idempotency-Key`: POST /generate-images, /regenerate-image and
/generate_caption.

A client that sends `Idempotency-Key` and retries (after a timeout, a dropped connection) gets the
answer its first request got, and nothing is started or paid for again. Powertools' idempotency
utility (`idempotent_function`, `DynamoDBPersistenceLayer`) keeps one record per operation, caller
and key in the idempotency table (`IDEMPOTENCY_TABLE`, declared in listing_vision/resources.py,
TTL `expiration`): `INPROGRESS` while the first request runs, then its answer, for
`IDEMPOTENCY_EXPIRY_S`.

- The key is scoped to the caller (the API client's id) and the operation: two clients using the
  same key, or one client using it on two routes, never see each other's answers.
- The record also holds a hash of the request as it means it (the validated JSON body; for an
  upload, its bytes' SHA-256 and its fields), so a retry from another HTTP library (other key
  order, another multipart boundary) is the same request, and the same key with another request
  is refused: 422 `idempotency_key_reused`.
- A retry while the first request still runs: 409 `idempotency_in_progress` (retry later). The
  in-progress record ends with the function's own time limit (the Lambda context's remaining time),
  so a request whose function died does not hold its key for the record's whole life.
- A request that fails leaves no record (Powertools deletes it): its retry runs again.
- Without the header, nothing here runs.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyValidationError,
)
from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import DataRecord

from listing_vision import aws
from listing_vision.api.access import Caller
from listing_vision.config import get_settings
from listing_vision.errors import Conflict, InvalidRequest, Unprocessable

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255
# Visible ASCII, no spaces: what UUIDs, ULIDs and client-made tokens are; nothing a proxy could rewrite.
KEY_PATTERN = rf"^[\x21-\x7e]{{1,{MAX_KEY_LENGTH}}}$"
HEADER_DESCRIPTION = (
    "Makes a retry safe: a request repeated with the same key (and the same body) within "
    "IDEMPOTENCY_EXPIRY_S (24 h by default) answers what the first one answered and starts nothing "
    "new (no new job, no new paid call). The same key with another body is a 422 `idempotency_key_reused`; "
    "while the first is still running, a 409 `idempotency_in_progress`. Keys are per client and per route. "
    f"1 to {MAX_KEY_LENGTH} visible ASCII characters (a UUID, for example), else 400 `invalid_idempotency_key`."
)
HEADER_SCHEMA = {"maxLength": MAX_KEY_LENGTH, "pattern": KEY_PATTERN}
REPLAYED_HEADER = "Idempotent-Replayed"  # `true` on an answer replayed from the first request's record

T = TypeVar("T")


def parse_key(header: str | None) -> str | None:
    """The request's idempotency key, None without one; 400 `invalid_idempotency_key` for a key that
    is empty, longer than 255 characters, or holds anything but visible ASCII. Checked before
    anything is read or written."""
    if header is None:
        return None
    if not re.fullmatch(KEY_PATTERN, header):
        raise InvalidRequest(
            f"{HEADER} must be 1 to {MAX_KEY_LENGTH} visible ASCII characters (a UUID, for example).",
            code="invalid_idempotency_key",
            details={"header": HEADER, "length": len(header)},
        )
    return header


@dataclass(frozen=True)
class Outcome:
    """What an idempotent call answered, and whether it was replayed from an earlier request's record."""

    result: Any
    replayed: bool = False


class PaidCalls:
    """Runs an operation once per (operation, caller, key). One persistence layer per operation:
    Powertools configures a layer once, with its key prefix (the operation) in every record's id."""

    def __init__(self, table: str | None = None, expiry_s: int | None = None, dynamodb: Any = None) -> None:
        settings = get_settings()
        self.table = table or settings.idempotency_table
        self.expiry_s = expiry_s or settings.idempotency_expiry_s
        self.dynamodb = dynamodb or aws.client("dynamodb")
        self._layers: dict[str, DynamoDBPersistenceLayer] = {}

    def _layer(self, operation: str) -> DynamoDBPersistenceLayer:
        if operation not in self._layers:
            self._layers[operation] = DynamoDBPersistenceLayer(table_name=self.table, boto3_client=self.dynamodb)
        return self._layers[operation]

    def once(
        self,
        operation: str,
        key: str | None,
        caller: Caller,
        request: Any,
        work: Callable[[], T],
        *,
        lambda_context: Any = None,
    ) -> Outcome:
        """`work()`'s result, run only when no earlier request of this caller and operation holds `key`;
        else the result recorded for it (`replayed`). `request` is the request as it means it (JSON
        values): its hash must match the recorded one. Without a key, `work()` runs as it is."""
        if key is None:
            return Outcome(work())
        replayed = False

        def mark_replayed(response: Any, idempotent_data: DataRecord) -> Any:
            nonlocal replayed
            replayed = True
            return response

        config = IdempotencyConfig(
            event_key_jmespath="[client, key]",
            payload_validation_jmespath="request",
            raise_on_no_idempotency_key=True,
            expires_after_seconds=self.expiry_s,
            hash_function="sha256",
            lambda_context=lambda_context,
            response_hook=mark_replayed,
        )

        @idempotent_function(
            data_keyword_argument="call",
            persistence_store=self._layer(operation),
            config=config,
            key_prefix=operation,
        )
        def run(call: dict[str, Any]) -> Any:
            return work()

        try:
            result = run(call={"client": caller.client_id, "key": key, "request": request})
        except IdempotencyValidationError as error:
            raise Unprocessable(
                f"This {HEADER} was used for another request: use a new key for a new request.",
                code="idempotency_key_reused",
            ) from error
        except IdempotencyAlreadyInProgressError as error:
            raise Conflict(
                f"A request with this {HEADER} is still being processed: retry shortly.",
                code="idempotency_in_progress",
            ) from error
        return Outcome(result, replayed)

    def bind(
        self, operation: str, key: str | None, caller: Caller, request: Any, lambda_context: Any = None
    ) -> Callable[[Callable[[], T]], Outcome]:
        """`once` with everything but the work given: what a handler passes to the library."""

        def run(work: Callable[[], T]) -> Outcome:
            return self.once(operation, key, caller, request, work, lambda_context=lambda_context)

        return run


def replay_headers(outcome: Outcome) -> dict[str, str]:
    """`Idempotent-Replayed: true` on an answer replayed from an earlier request's record."""
    return {REPLAYED_HEADER: "true"} if outcome.replayed else {}
