"""Turns at the shared rate limit (rate_limit.py), round-robin across clients (start-time fair queueing).

Every waiting edit holds a ticket in one DynamoDB item next to the bucket (`<bucket>#turns` in the
rate-limit table). A ticket's tag is its client's previous tag, or the tag last served when that is
higher, plus one: a client that queued twenty edits holds tags v+1 … v+20, and a client arriving
with one edit gets v+1, so it is served after at most one more edit of each other client, not after
all twenty. The turns only matter while places are short: a ticket with k live tickets ahead starts
as soon as the limit's window (rate_limit.py, whose rate and burst still bound every call) holds a
free place for it and one for each of those k, in the same conditional update that takes it. So a
client alone, or clients whose edits fit in the window, never wait, and none takes a place that a
ticket ahead of it is owed; when the window is full, the ticket with the lowest (tag, arrival) is
served as each place frees, and a later one only when places have freed for everyone ahead of it.

A ticket is refreshed each time its waiter looks at the queue; one not refreshed for STALE_S (its
worker died) is skipped by the others and removed. Registration is an optimistic write (the item's
`turn_version`); looking and leaving are single updates. A waiter racing with a newer, lower tag can
only reorder a turn or two: the limit, not this queue, keeps the rate.
"""

from __future__ import annotations

import random
import uuid
from typing import Any

from botocore.exceptions import ClientError

from listing_vision import aws
from listing_vision.dynamodb_items import conditional_check_failed, expression_values, from_item, to_item
from listing_vision.errors import RateLimited
from listing_vision.providers.rate_limit import TokenBucket

STALE_S = 30.0  # a ticket unrefreshed this long belongs to a dead waiter
MAX_POLL_S = 2.0  # a waiter behind others looks again at least this often (well under STALE_S)


class FairTurns:
    def __init__(self, bucket: TokenBucket):
        self.bucket = bucket
        self.table = bucket.table
        self.key = to_item({"bucket_id": f"{bucket.name}#turns"})
        self.dynamodb = aws.client("dynamodb")

    def acquire(self, client: str, ticket: str | None = None, timeout_s: float = 600.0) -> None:
        """Wait for this client's turn, then take a token; RateLimited past the deadline. `ticket`
        names the wait (the run and type of an edit): a retry of a worker that died waiting takes
        its dead attempt's place instead of queueing behind it."""
        clock, bucket = self.bucket.clock, self.bucket
        deadline = clock() + timeout_s
        ticket = ticket or uuid.uuid4().hex
        tag = self._register(ticket, client, clock())
        served = False
        try:
            while True:
                now = clock()
                ahead = self._look(ticket, now)
                if ahead is None:  # taken for dead (it stalled past STALE_S): queue again
                    tag = self._register(ticket, client, now)
                    continue
                wait = bucket._take(now, reserve=ahead)  # a start, leaving a place for each ticket ahead
                if wait is None:
                    served = True
                    return
                if now + min(wait, MAX_POLL_S) > deadline:
                    raise RateLimited(
                        f"The {bucket.name} rate limit leaves no turn within {timeout_s:.0f} s.", code="rate_limited"
                    )
                pause = min(max(wait, 0.01), MAX_POLL_S) + random.uniform(0, 0.02)
                bucket.waited_s += pause
                bucket.sleep(pause)
        finally:
            self._leave(ticket, tag if served else None)

    def _register(self, ticket: str, client: str, now: float) -> int:
        """Queue a ticket for the client; its tag."""
        while True:
            item = self._read()
            if ticket in item.get("tickets", {}):  # a dead attempt's: its place is ours
                return int(item["tickets"][ticket]["t"])
            version = int(item.get("turn_version", 0))
            tag = max(int(item.get("client_tags", {}).get(client, 0)), int(item.get("served_tag", 0))) + 1
            waiting = {"c": client, "t": tag, "a": round(now, 6), "s": round(now, 6)}
            update = "SET tickets.#t = :w, #last.#c = :tag, turn_version = :next"
            if "tickets" not in item:  # the first ticket ever: create the maps
                update = "SET tickets = :ws, #last = :ls, turn_version = :next"
            try:
                self.dynamodb.update_item(
                    TableName=self.table,
                    Key=self.key,
                    UpdateExpression=update,
                    ConditionExpression="attribute_not_exists(turn_version) OR turn_version = :version",
                    ExpressionAttributeNames={"#t": ticket, "#c": client, "#last": "client_tags"}
                    if "tickets" in item
                    else {"#last": "client_tags"},
                    ExpressionAttributeValues=expression_values(
                        next=version + 1,
                        version=version,
                        **(
                            {"w": waiting, "tag": tag}
                            if "tickets" in item
                            else {"ws": {ticket: waiting}, "ls": {client: tag}}
                        ),
                    ),
                )
            except ClientError as error:
                if conditional_check_failed(error):
                    continue  # another waiter registered meanwhile: read again
                raise
            return tag

    def _look(self, ticket: str, now: float) -> int | None:
        """Refresh this ticket and count the live tickets ahead of it (0: its turn); None when the
        ticket is gone (another waiter took it for dead)."""
        try:
            answer = self.dynamodb.update_item(
                TableName=self.table,
                Key=self.key,
                UpdateExpression="SET tickets.#t.s = :now",
                ConditionExpression="attribute_exists(tickets.#t)",
                ExpressionAttributeNames={"#t": ticket},
                ExpressionAttributeValues=expression_values(now=round(now, 6)),
                ReturnValues="ALL_NEW",
            )
        except ClientError as error:
            if conditional_check_failed(error):
                return None
            raise
        waiting: dict[str, dict[str, Any]] = from_item(answer["Attributes"]).get("tickets", {})
        mine = waiting[ticket]
        order = (int(mine["t"]), float(mine["a"]), ticket)
        ahead = 0
        for other, entry in waiting.items():
            if other == ticket:
                continue
            if now - float(entry["s"]) > STALE_S:
                self._drop_stale(other, float(entry["s"]))
            elif (int(entry["t"]), float(entry["a"]), other) < order:
                ahead += 1
        return ahead

    def _drop_stale(self, ticket: str, seen: float) -> None:
        try:
            self.dynamodb.update_item(
                TableName=self.table,
                Key=self.key,
                UpdateExpression="REMOVE tickets.#t",
                ConditionExpression="tickets.#t.s = :seen",
                ExpressionAttributeNames={"#t": ticket},
                ExpressionAttributeValues=expression_values(seen=round(seen, 6)),
            )
        except ClientError as error:
            if not conditional_check_failed(error):
                raise

    def _leave(self, ticket: str, served_tag: int | None) -> None:
        """Remove the ticket; when it was served, its tag is the queue's virtual time from now on."""
        update, values = "REMOVE tickets.#t", {}
        if served_tag is not None:
            update, values = "SET served_tag = :tag REMOVE tickets.#t", {"tag": served_tag}
        self.dynamodb.update_item(
            TableName=self.table,
            Key=self.key,
            UpdateExpression=update,
            ExpressionAttributeNames={"#t": ticket},
            **({"ExpressionAttributeValues": expression_values(**values)} if values else {}),
        )

    def _read(self) -> dict[str, Any]:
        item = self.dynamodb.get_item(TableName=self.table, Key=self.key, ConsistentRead=True).get("Item")
        return from_item(item) if item else {}
