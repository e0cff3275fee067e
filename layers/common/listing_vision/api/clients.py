"""API clients: who may call the API, with which storefronts. Keys are stored only as hashes.

A client is a service of one storefront (or, rarely, both) holding one key. The table keeps the
key's SHA-256 (keys are 256 random bits, so an unsalted hash cannot be reversed), the client's id,
its storefronts, whether it may search every catalogue (`scope=all`), and whether it is disabled.
The key itself is shown once, when the client is created.

    python -m listing_vision.api.clients create --client shop-alya --storefront alya [--search-all] \
        --usage-plan listing-vision-<stage>-standard
    python -m listing_vision.api.clients list
    python -m listing_vision.api.clients rotate --client shop-alya --usage-plan listing-vision-<stage>-standard
    python -m listing_vision.api.clients revoke --client shop-alya --key-id 3f2a9c0d1e4b
    python -m listing_vision.api.clients disable --client shop-alya

Rotating a key without downtime: `rotate` gives the client a second key (same storefronts, same
plan) and lists the ids of the keys it still holds; both work until the client has moved to the new
one, then `revoke` refuses the old one by its id (the first 12 hex digits of its hash, never the key
itself) in the table and in API Gateway. `disable` refuses every key of the client.

On AWS every method requires the key in a usage plan (throttling and quotas per client), so
`create` needs `--usage-plan NAME`: it finds the plan first (an unknown plan creates nothing),
then registers the key with API Gateway in it. Only where no usage plan meters keys (the local
stack) does `--no-usage-plan` make a client without one; a key made so on AWS can call nothing.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import secrets
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any

from botocore.exceptions import ClientError

from listing_vision import aws
from listing_vision.config import Storefront, get_settings
from listing_vision.dynamodb_items import expression_values, from_item, to_item
from listing_vision.errors import Conflict, InvalidRequest, NotFound

KEY_PREFIX = "lvk_"
# People signed in to the user pool call as `user:<username>` (api/user_tokens.py): no client is named so,
# or it would share a person's jobs, webhook, idempotency keys and edit quota
PERSON_PREFIX = "user:"


@dataclass(frozen=True)
class ApiClient:
    client_id: str
    storefronts: tuple[Storefront, ...]
    search_all: bool = False
    disabled: bool = False
    keys: tuple[str, ...] = ()  # the ids of its enabled keys (in `list`)


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


KEY_ID_LENGTH = 12


def key_id(digest: str) -> str:
    """How a key is named once issued: a prefix of its hash (the key itself is never shown again)."""
    return digest[:KEY_ID_LENGTH]


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


class ApiClients:
    def __init__(self, table: str | None = None):
        self.table = table or get_settings().api_clients_table
        self.dynamodb = aws.client("dynamodb")

    def find(self, key: str) -> ApiClient | None:
        """The client holding this key, if it exists and is enabled."""
        if not key or len(key) > 200:
            return None
        item = self.dynamodb.get_item(TableName=self.table, Key=to_item({"key_hash": key_hash(key)})).get("Item")
        if not item:
            return None
        client = _client(from_item(item))
        return None if client.disabled else client

    def create(
        self, client_id: str, storefronts: tuple[Storefront, ...], search_all: bool = False
    ) -> tuple[str, ApiClient]:
        """A new client and its key (shown only here)."""
        if client_id.startswith(PERSON_PREFIX):
            raise InvalidRequest(
                f"A client id may not start with {PERSON_PREFIX!r}: people's tokens call as {PERSON_PREFIX}<username>."
            )
        if any(c.client_id == client_id for c in self.list()):
            raise Conflict(f"A client {client_id!r} exists already.", code="client_exists")
        client = ApiClient(client_id, tuple(storefronts), search_all)
        return self._issue(client), client

    def rotate(self, client_id: str) -> tuple[str, ApiClient]:
        """Another key for an enabled client, with its storefronts; its other keys keep working."""
        items = self._items(client_id)
        enabled = [item for item in items if not item.get("disabled")]
        if not enabled:
            raise NotFound(f"No enabled client {client_id!r}.", code="client_not_found")
        client = _client(enabled[0])
        key = self._issue(client)
        return key, ApiClient(**{**asdict(client), "keys": (*_key_ids(enabled), key_id(key_hash(key)))})

    def revoke(self, client_id: str, key: str) -> dict[str, Any]:
        """Refuse one of the client's keys from now on (by its id); returns its record."""
        matches = [item for item in self._items(client_id) if key_id(item["key_hash"]) == key]
        if len(key) != KEY_ID_LENGTH or not matches:
            raise NotFound(f"Client {client_id!r} has no key {key!r}.", code="key_not_found")
        self._disable(matches[0]["key_hash"])
        return matches[0]

    def remember_gateway_key(self, key: str, api_key_id: str) -> None:
        """The API Gateway key made for this key, so revoking one disables the other."""
        self.dynamodb.update_item(
            TableName=self.table,
            Key=to_item({"key_hash": key_hash(key)}),
            UpdateExpression="SET api_key_id = :id",
            ExpressionAttributeValues=expression_values(id=api_key_id),
        )

    def _issue(self, client: ApiClient) -> str:
        key = new_key()
        item = {
            "key_hash": key_hash(key),
            "client_id": client.client_id,
            "storefronts": list(client.storefronts),
            "search_all": client.search_all,
            "disabled": False,
            "created_at": int(time.time()),
        }
        self.dynamodb.put_item(
            TableName=self.table, Item=to_item(item), ConditionExpression="attribute_not_exists(key_hash)"
        )
        return key

    def _items(self, client_id: str) -> list[dict[str, Any]]:
        pages = self.dynamodb.get_paginator("scan").paginate(
            TableName=self.table,
            FilterExpression="client_id = :id",
            ExpressionAttributeValues=expression_values(id=client_id),
        )
        return sorted((from_item(item) for page in pages for item in page.get("Items", [])), key=_created)

    def _disable(self, digest: str) -> None:
        self.dynamodb.update_item(
            TableName=self.table,
            Key=to_item({"key_hash": digest}),
            UpdateExpression="SET disabled = :yes",
            ExpressionAttributeValues=expression_values(yes=True),
        )

    def list(self) -> list[ApiClient]:
        """Every client once, however many keys it holds (disabled when none is enabled)."""
        pages = self.dynamodb.get_paginator("scan").paginate(TableName=self.table)
        by_client: dict[str, list[dict[str, Any]]] = {}
        for item in sorted((from_item(item) for page in pages for item in page.get("Items", [])), key=_created):
            by_client.setdefault(item["client_id"], []).append(item)
        clients = []
        for items in by_client.values():
            enabled = [item for item in items if not item.get("disabled")]
            first = _client((enabled or items)[0])
            clients.append(ApiClient(**{**asdict(first), "disabled": not enabled, "keys": _key_ids(enabled)}))
        return sorted(clients, key=lambda c: c.client_id)

    def disable(self, client_id: str) -> None:
        items = self._items(client_id)
        if not items:
            raise NotFound(f"No client {client_id!r}.", code="client_not_found")
        for item in items:
            self._disable(item["key_hash"])


def _created(item: dict[str, Any]) -> tuple[int, str]:
    return int(item.get("created_at", 0)), item["key_hash"]


def _key_ids(items: list[dict[str, Any]]) -> tuple[str, ...]:
    return tuple(key_id(item["key_hash"]) for item in items)


def _client(values: dict[str, Any]) -> ApiClient:
    return ApiClient(
        client_id=values["client_id"],
        storefronts=tuple(values.get("storefronts", [])),
        search_all=bool(values.get("search_all", False)),
        disabled=bool(values.get("disabled", False)),
    )


def usage_plan_id(usage_plan: str) -> str:
    """The id of the API Gateway usage plan of this name, or NotFound naming the plans there are."""
    plans = aws.client("apigateway").get_usage_plans(limit=500)["items"]
    found = [plan["id"] for plan in plans if plan["name"] == usage_plan]
    if not found:
        known = ", ".join(sorted(plan["name"] for plan in plans)) or "none"
        raise NotFound(f"No usage plan named {usage_plan!r} (there are: {known}).", code="usage_plan_not_found")
    return str(found[0])


def disable_in_api_gateway(api_key_id: str) -> None:
    aws.client("apigateway").update_api_key(
        apiKey=api_key_id, patchOperations=[{"op": "replace", "path": "/enabled", "value": "false"}]
    )


def register_with_api_gateway(key: str, client_id: str, plan_id: str) -> str:
    """Create the key in API Gateway (the authorizer returns it as the usage identifier) and attach
    it to this usage plan; returns the API key's id."""
    gateway = aws.client("apigateway")
    api_key = gateway.create_api_key(name=client_id, value=key, enabled=True)
    gateway.create_usage_plan_key(usagePlanId=plan_id, keyId=api_key["id"], keyType="API_KEY")
    return str(api_key["id"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m listing_vision.api.clients", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create", help="a new client; prints its key once")
    create.add_argument("--client", required=True)
    create.add_argument("--storefront", action="append", choices=get_settings().storefront_names, required=True)
    create.add_argument("--search-all", action="store_true", help="may search every storefront (scope=all)")
    rotate = commands.add_parser("rotate", help="another key for a client (the old ones keep working); prints it once")
    rotate.add_argument("--client", required=True)
    for command in (create, rotate):
        metering = command.add_mutually_exclusive_group(required=True)
        metering.add_argument(
            "--usage-plan",
            help="register the key with API Gateway in this plan (listing-vision-<stage>-standard or -bulk)",
        )
        metering.add_argument(
            "--no-usage-plan",
            action="store_true",
            help="the local stack only: on AWS a key in no usage plan can call nothing",
        )
    revoke = commands.add_parser("revoke", help="refuse one key of a client from now on, by its id")
    revoke.add_argument("--client", required=True)
    revoke.add_argument("--key-id", required=True, help="as `rotate` and `list` print it")
    commands.add_parser("list", help="every client, with the ids of its enabled keys (never the keys)")
    disable = commands.add_parser("disable", help="refuse every key of a client from now on")
    disable.add_argument("--client", required=True)
    args = parser.parse_args(argv)
    clients = ApiClients()
    try:
        answer: Any
        if args.command in ("create", "rotate"):
            plan = usage_plan_id(args.usage_plan) if args.usage_plan else None  # before anything is created
            if args.command == "create":
                key, client = clients.create(args.client, tuple(args.storefront), args.search_all)
            else:
                key, client = clients.rotate(args.client)
            answer = {"key": key, "key_id": key_id(key_hash(key)), **asdict(client)}
            if plan:
                answer["api_key_id"] = register_with_api_gateway(key, args.client, plan)
                clients.remember_gateway_key(key, answer["api_key_id"])
        elif args.command == "revoke":
            revoked = clients.revoke(args.client, args.key_id)
            if revoked.get("api_key_id"):
                disable_in_api_gateway(revoked["api_key_id"])
            answer = {"revoked": args.key_id, "client_id": args.client}
        elif args.command == "list":
            answer = [asdict(c) for c in clients.list()]
        else:
            clients.disable(args.client)
            answer = {"disabled": args.client}
        print(json.dumps(answer, indent=2))
    except (Conflict, InvalidRequest, NotFound, ClientError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
