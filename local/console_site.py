"""The review console's files (console/), answered by the local gateway under /console/.

Static files only: the console has no server of its own and calls the same API routes as any client.
Every file goes out with the strict Content-Security-Policy CloudFront sends on AWS, from the same
declaration (listing_vision.api.console_policy): here images come from the photos' presigned S3 URLs
(`image_origins`) and the API is this origin."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from listing_vision.api.console_policy import REFERRER_POLICY, content_security_policy
from local.gateway import Page

CONSOLE_DIR = Path(__file__).resolve().parent.parent / "console"
PREFIX = "/console/"
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}


def security_headers(image_origins: tuple[str, ...], connect_origins: tuple[str, ...] = ()) -> dict[str, str]:
    return {
        "Content-Security-Policy": content_security_policy(image_origins, connect_origins),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": REFERRER_POLICY,
        "Cache-Control": "no-cache",
    }


def _serve(path: Path, headers: dict[str, str]) -> tuple[int, Page]:
    return 200, Page(CONTENT_TYPES[path.suffix], path.read_bytes(), headers)


def _redirect() -> tuple[int, Page]:
    return 308, Page("text/plain; charset=utf-8", b"", {"Location": PREFIX})


def _config(config: dict[str, Any], headers: dict[str, str]) -> tuple[int, Page]:
    return 200, Page("application/json", json.dumps(config).encode(), headers)


def console_routes(
    image_origins: tuple[str, ...], config: dict[str, Any] | None = None, connect_origins: tuple[str, ...] = ()
) -> dict[str, Callable[[], tuple[int, Page]]]:
    """GET routes for the gateway's `extra_routes`: /console redirects to /console/ (so the page's
    relative links resolve), /console/ is index.html, and each file of console/ is at its name
    (read on each request: an edited file shows on reload). config.json is what the deploy writes on
    AWS (infra/constructs/console.py: the API's URL, the sign-in); here `{}` (the API is this origin,
    no sign-in) unless a test names a sign-in, whose origin it adds to `connect_origins`."""
    headers = security_headers(image_origins, connect_origins)
    routes: dict[str, Callable[[], tuple[int, Page]]] = {PREFIX.rstrip("/"): _redirect}
    for path in sorted(CONSOLE_DIR.iterdir()):
        if path.suffix in CONTENT_TYPES:
            routes[PREFIX + path.name] = partial(_serve, path, headers)
    routes[PREFIX] = routes[PREFIX + "index.html"]
    routes[PREFIX + "config.json"] = partial(_config, config or {}, headers)
    return routes
