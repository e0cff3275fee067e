"""API clients: who may call the API, with which storefronts. Keys are stored only as hashes.

A client is a service of one storefront (or, rarely, both) holding one key. The table keeps the
key's SHA-256 (keys are 256 random bits, so an unsalted hash cannot be reversed), the client's id,
its storefronts, whether it may search every catalogue (`scope=all`), and whether it is disabled.
The key itself is shown once, when the client is created.

    python -m listing_vision.api.clients create --client shop-alya --storefront alya [--search-all] \
        --usage-plan listing-vision-<stage>-standard
    python -m listing_vision.api.clients list
    python -m listing_vision.api.clients disable --client shop-alya

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
from listing_vision.errors import Conflict, NotFound

KEY_PREFIX = "lvk_"


@dataclass(frozen=True)
class ApiClient:
    client_id: str
    storefronts: tuple[Storefront, ...]
    search_all: bool = False
    disabled: bool = False


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


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
        if any(c.client_id == client_id for c in self.list()):
            raise Conflict(f"A client {client_id!r} exists already.", code="client_exists")
        key = new_key()
        client = ApiClient(client_id, tuple(storefronts), search_all)
        item = {
            "key_hash": key_hash(key),
            "client_id": client_id,
            "storefronts": list(storefronts),
            "search_all": search_all,
            "disabled": False,
            "created_at": int(time.time()),
        }
        self.dynamodb.put_item(
            TableName=self.table, Item=to_item(item), ConditionExpression="attribute_not_exists(key_hash)"
        )
        return key, client

    def list(self) -> list[ApiClient]:
        pages = self.dynamodb.get_paginator("scan").paginate(TableName=self.table)
        return sorted(
            (_client(from_item(item)) for page in pages for item in page.get("Items", [])), key=lambda c: c.client_id
        )

    def disable(self, client_id: str) -> None:
        pages = self.dynamodb.get_paginator("scan").paginate(
            TableName=self.table,
            FilterExpression="client_id = :id",
            ExpressionAttributeValues=expression_values(id=client_id),
        )
        hashes = [from_item(item)["key_hash"] for page in pages for item in page.get("Items", [])]
        if not hashes:
            raise NotFound(f"No client {client_id!r}.", code="client_not_found")
        for digest in hashes:
            self.dynamodb.update_item(
                TableName=self.table,
                Key=to_item({"key_hash": digest}),
                UpdateExpression="SET disabled = :yes",
                ExpressionAttributeValues=expression_values(yes=True),
            )


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
    create.add_argument("--storefront", action="append", choices=["alya", "blysk"], required=True)
    create.add_argument("--search-all", action="store_true", help="may search every storefront (scope=all)")
    metering = create.add_mutually_exclusive_group(required=True)
    metering.add_argument(
        "--usage-plan", help="register the key with API Gateway in this plan (listing-vision-<stage>-standard or -bulk)"
    )
    metering.add_argument(
        "--no-usage-plan",
        action="store_true",
        help="the local stack only: on AWS a key in no usage plan can call nothing",
    )
    commands.add_parser("list", help="every client (no keys)")
    disable = commands.add_parser("disable", help="refuse a client's key from now on")
    disable.add_argument("--client", required=True)
    args = parser.parse_args(argv)
    clients = ApiClients()
    try:
        if args.command == "create":
            plan = usage_plan_id(args.usage_plan) if args.usage_plan else None  # before anything is created
            key, client = clients.create(args.client, tuple(args.storefront), args.search_all)
            answer: dict[str, Any] = {"key": key, **asdict(client)}
            if plan:
                answer["api_key_id"] = register_with_api_gateway(key, args.client, plan)
            print(json.dumps(answer, indent=2))
        elif args.command == "list":
            print(json.dumps([asdict(c) for c in clients.list()], indent=2))
        else:
            clients.disable(args.client)
            print(json.dumps({"disabled": args.client}))
    except (Conflict, NotFound, ClientError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
