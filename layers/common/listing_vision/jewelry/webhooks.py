"""Webhooks: where a client wants its storefront's finished generation runs announced.

A registration is one per (storefront, client): PUT /webhooks?website= with `{"url": ...}` makes or
replaces it and answers its signing secret, once; GET shows it without the secret; DELETE removes it.
Each finish event on the jobs bus (job_events.py) is then POSTed, signed, to every registration of the
job's storefront (webhook_delivery.py).

The secret is an SSM SecureString parameter (`<webhook_secrets_prefix>/<website>/<client digest>/<nonce>`,
one per PUT: the item names it, and a PUT or DELETE deletes only the parameter of the item it replaced
or removed, so a DELETE landing between a PUT's two writes cannot leave a registration without its secret),
not a hash: the signature is an HMAC, which the sender can only compute holding the secret itself.
SecureString keeps it encrypted at rest (KMS, the account's aws/ssm key) and readable only by the
roles granted that path, at no cost per parameter (a Secrets Manager secret costs $0.40 a month
each). The table keeps the URL and the parameter's name and version, never the secret: the item names
the version written with it, so two PUTs at once leave the URL of one with that one's secret (the
latest version may be the other's).

A URL is refused unless it is an absolute http(s) URL whose host resolves only to public addresses:
private, loopback, link-local, multicast, reserved and unspecified ones are refused (no request to
the instance metadata service or the VPC). Loopback is allowed only with WEBHOOK_ALLOW_LOOPBACK
(the local stack's test receivers). The check is made at registration and again before every
delivery attempt (a name may resolve elsewhere later), and the attempt connects to an address that
check allowed, never resolving the name again (webhook_transport.py); redirects are never followed.
"""

from __future__ import annotations

import hashlib
import ipaddress
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from botocore.exceptions import ClientError

from listing_vision import aws
from listing_vision.config import get_settings
from listing_vision.dynamodb_items import from_item, to_item
from listing_vision.errors import InvalidRequest, NotFound
from listing_vision.resources import WEBHOOKS_BY_OWNER

MAX_URL_CHARS = 2048
SECRET_PREFIX = "whsec_"


def client_digest(client_id: str) -> str:
    """A client's id as it appears in keys and parameter names (any id, SSM's characters only)."""
    return hashlib.sha256(client_id.encode()).hexdigest()[:24]


def _invalid(reason: str) -> InvalidRequest:
    return InvalidRequest(
        f"The webhook URL is refused: {reason}.", code="invalid_webhook_url", details={"reason": reason}
    )


Resolver = Callable[[str, int], list[str]]


def system_resolver(host: str, port: int) -> list[str]:
    """The addresses the system's resolver answers for `host` (what `check_url` uses unless given another)."""
    return sorted({str(info[4][0]) for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)})


def check_url(url: str, allow_loopback: bool | None = None, resolve: Resolver = system_resolver) -> list[str]:
    """The addresses `url`'s host resolves to, all allowed; else `invalid_webhook_url` or
    `webhook_url_forbidden` (400). A delivery connects to one of these, never resolving the name again."""
    allow = get_settings().webhook_allow_loopback if allow_loopback is None else allow_loopback
    if len(url) > MAX_URL_CHARS or not url.isascii() or any(ord(c) < 33 or ord(c) == 127 for c in url):
        raise _invalid("not a URL of at most 2048 visible ASCII characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise _invalid("not a URL") from None
    if port == 0:
        raise _invalid("port 0")
    if parts.scheme not in ("http", "https"):
        raise _invalid("only http and https URLs are delivered to")
    if not parts.hostname:
        raise _invalid("no host")
    if parts.username is not None or parts.password is not None:
        raise _invalid("credentials in the URL")
    if parts.fragment or url.endswith("#"):
        raise _invalid("a fragment")
    try:
        addresses = sorted(set(resolve(parts.hostname, port or (443 if parts.scheme == "https" else 80))))
    except (OSError, UnicodeError):
        raise _invalid("the host does not resolve") from None
    if not addresses:
        raise _invalid("the host does not resolve")
    for address in addresses:
        if not all(_public(ip, allow) for ip in _meanings(ipaddress.ip_address(address.split("%")[0]))):
            raise InvalidRequest(
                "The webhook URL's host resolves to an address that is not public (private, loopback, link-local "
                "or reserved): webhooks are delivered to public addresses only.",
                code="webhook_url_forbidden",
                details={"host": parts.hostname[:100]},
            )
    return addresses


_NAT64 = ipaddress.ip_network("64:ff9b::/96")
# The only IPv6 space a public receiver has: Python 3.11's is_global also passes IPv4-compatible
# (::a9fe:a9fe), IPv4-translated (::ffff:0:a00:1), local-use NAT64 (64:ff9b:1::/48) and site-local ones
_GLOBAL_UNICAST = ipaddress.ip_network("2000::/3")


def _meanings(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """The address and every IPv4 address an IPv6 one carries (mapped, 6to4, Teredo, NAT64): each must be public."""
    found: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = [ip]
    if isinstance(ip, ipaddress.IPv6Address):
        found += [v4 for v4 in (ip.ipv4_mapped, ip.sixtofour, *(ip.teredo or ())) if v4 is not None]
        if ip in _NAT64:
            found.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return found


def _public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, allow_loopback: bool) -> bool:
    if ip.is_loopback and allow_loopback:
        return True
    if isinstance(ip, ipaddress.IPv6Address) and ip not in _GLOBAL_UNICAST and ip not in _NAT64:
        return False
    return ip.is_global and not ip.is_multicast


@dataclass(frozen=True)
class Registration:
    website: str
    client_id: str
    url: str
    created_at: int
    secret_parameter: str
    secret_version: int | None = None  # None: an item written before versions were kept (the latest)

    @property
    def key(self) -> str:
        return f"hook#{self.website}#{client_digest(self.client_id)}"

    def public(self) -> dict[str, Any]:
        return {"website": self.website, "url": self.url, "created_at": self.created_at}


def _registration(item: dict[str, Any]) -> Registration:
    values = from_item(item)
    version = values.get("secret_version")
    return Registration(
        values["website"],
        values["client_id"],
        values["url"],
        int(values["created_at"]),
        values["secret_parameter"],
        None if version is None else int(version),
    )


class WebhookStore:
    """Registrations in the webhooks table, their secrets in SSM."""

    def __init__(
        self, table: str | None = None, prefix: str | None = None, resolve: Resolver = system_resolver
    ) -> None:
        settings = get_settings()
        self.resolve = resolve  # how URLs' hosts are resolved, at registration and before each delivery
        self.table = table or settings.webhooks_table
        self.prefix = prefix or settings.webhook_secrets_prefix
        self.dynamodb = aws.client("dynamodb")
        self.ssm = aws.client("ssm")

    @staticmethod
    def _key(website: str, client_id: str) -> dict[str, Any]:
        return to_item({"webhook_key": f"hook#{website}#{client_digest(client_id)}"})

    def register(self, website: str, client_id: str, url: str) -> dict[str, Any]:
        """Make or replace the client's webhook of `website`: its new secret is answered here only."""
        check_url(url, resolve=self.resolve)
        # A parameter of this PUT's own, named by the item: a DELETE or another PUT at the same time can
        # only remove the secret of the item it removed or replaced, never the one this PUT's item names
        parameter = f"{self.prefix}/{website}/{client_digest(client_id)}/{secrets.token_hex(8)}"
        secret = SECRET_PREFIX + secrets.token_urlsafe(32)
        # The secret first: a registration is never readable without its secret (a failed put of the
        # item leaves a parameter no item names)
        written = self.ssm.put_parameter(Name=parameter, Value=secret, Type="SecureString", Overwrite=False)
        registration = Registration(website, client_id, url, int(time.time()), parameter, int(written["Version"]))
        item = {
            "webhook_key": registration.key,
            "owner": f"hooks#{website}",
            "created_at": registration.created_at,
            "website": website,
            "client_id": client_id,
            "url": url,
            "secret_parameter": parameter,
            "secret_version": registration.secret_version,
        }
        replaced = self.dynamodb.put_item(TableName=self.table, Item=to_item(item), ReturnValues="ALL_OLD")
        self._forget_secret(replaced.get("Attributes"))
        return {**registration.public(), "secret": secret}

    def _forget_secret(self, item: dict[str, Any] | None) -> None:
        """Delete the secret of a registration item just removed or replaced (None: there was none)."""
        if not item:
            return
        try:
            self.ssm.delete_parameter(Name=_registration(item).secret_parameter)
        except ClientError as error:
            if error.response["Error"]["Code"] != "ParameterNotFound":
                raise

    def get(self, website: str, client_id: str) -> Registration:
        item = self.dynamodb.get_item(TableName=self.table, Key=self._key(website, client_id)).get("Item")
        if not item:
            raise NotFound(
                f"This client has no webhook for the {website} storefront.",
                code="webhook_not_found",
                details={"website": website},
            )
        return _registration(item)

    def delete(self, website: str, client_id: str) -> None:
        """Remove the client's webhook of `website` and its secret (nothing to remove is not an error):
        the secret the removed item named, so a PUT under way keeps its own."""
        removed = self.dynamodb.delete_item(
            TableName=self.table, Key=self._key(website, client_id), ReturnValues="ALL_OLD"
        )
        self._forget_secret(removed.get("Attributes"))

    def for_website(self, website: str) -> list[Registration]:
        """Every registration of a storefront (one per client)."""
        found: list[Registration] = []
        query: dict[str, Any] = {
            "TableName": self.table,
            "IndexName": WEBHOOKS_BY_OWNER.name,
            "KeyConditionExpression": "#owner = :owner",
            "ExpressionAttributeNames": {"#owner": "owner"},
            "ExpressionAttributeValues": to_item({":owner": f"hooks#{website}"}),
        }
        while True:
            page = self.dynamodb.query(**query)
            found += [_registration(item) for item in page.get("Items", [])]
            if "LastEvaluatedKey" not in page:
                return found
            query["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def secret(self, registration: Registration) -> str:
        name = registration.secret_parameter
        if registration.secret_version is not None:
            name = f"{name}:{registration.secret_version}"
        answer = self.ssm.get_parameter(Name=name, WithDecryption=True)
        return str(answer["Parameter"]["Value"])
