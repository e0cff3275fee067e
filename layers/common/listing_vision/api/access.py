"""Who is calling the API and what they may touch, as the authorizer described them.

The authorizer (api/authorizer.py) finds the client holding the request's key and passes its id,
storefronts and whether it may search every catalogue to the function, in the request context.
API Gateway's authorizer cannot read the body, where `website` usually is, so each operation
checks the caller before it writes or reads anything: another storefront's upload, search or
presigned upload is a 403 `storefront_forbidden`, and another storefront's job or upload is
answered as if it did not exist (404). A request that names no storefront acts on the caller's own
when it holds exactly one, else on the default (the first configured). With API_AUTH=none (the local
default, loopback only) every request acts for every configured storefront.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from listing_vision.config import Storefront, get_settings
from listing_vision.errors import Forbidden


@dataclass(frozen=True)
class Caller:
    client_id: str
    storefronts: frozenset[str]
    search_all: bool = False

    def owns(self, website: str) -> bool:
        return website in self.storefronts

    def storefront(self, website: Storefront | None) -> Storefront:
        """The storefront a request acts on: the one it names, else this caller's only one, else the default."""
        if website is not None:
            return website
        if len(self.storefronts) == 1:
            (only,) = self.storefronts
            return only  # caller_from keeps configured storefronts only
        return get_settings().default_storefront

    def require(self, website: str, scope: str = "storefront") -> None:
        """Refuse (403) a storefront this caller does not hold, or a search across all it may not make."""
        if not self.owns(website):
            raise Forbidden(
                f"This client may not use the {website} storefront.",
                code="storefront_forbidden",
                details={"website": website},
            )
        if scope == "all" and not self.search_all:
            raise Forbidden("This client may search its own storefronts only.", code="scope_forbidden")


def caller_from(request_context: Mapping[str, Any]) -> Caller:
    """The caller of an API Gateway proxy request, from the authorizer's context."""
    configured = frozenset(get_settings().storefront_names)
    if get_settings().api_auth == "none":
        return Caller("anonymous", configured, search_all=True)
    context = request_context.get("authorizer") or {}
    if not context.get("client_id") or not context.get("storefronts"):
        raise Forbidden("The request carries no client credentials.", code="forbidden")
    search_all = context.get("search_all")
    return Caller(
        client_id=str(context["client_id"]),
        storefronts=frozenset(str(context["storefronts"]).split(",")) & configured,
        search_all=search_all is True or str(search_all).lower() == "true",
    )
