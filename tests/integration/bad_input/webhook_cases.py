"""The bad-input corpus, part six: webhooks. PUT /webhooks with URLs that are not http(s), carry
credentials or a fragment, do not resolve, or resolve to addresses that are not public (private,
link-local, the instance metadata service, unspecified, loopback: the stack allows loopback only
because its receivers are local, so loopback is shown refused in test_webhooks.py), bodies of the
wrong shape; GET/DELETE /webhooks and GET /webhooks/deliveries with unknown or repeated parameters."""

from __future__ import annotations

from typing import Any

from tests.integration.bad_input.image_and_form_cases import Case

ROUTE = "/webhooks"


def webhook_cases() -> list[Case]:
    urls: list[tuple[str, Any, str]] = [
        ("ftp-scheme", "ftp://example.com/hook", "invalid_webhook_url"),
        ("file-scheme", "file:///etc/passwd", "invalid_webhook_url"),
        ("no-scheme", "example.com/hook", "invalid_webhook_url"),
        ("no-host", "https:///hook", "invalid_webhook_url"),
        ("credentials", "https://user:pass@example.com/hook", "invalid_webhook_url"),
        ("fragment", "https://example.com/hook#x", "invalid_webhook_url"),
        ("space", "https://example.com/ho ok", "invalid_webhook_url"),
        ("non-ascii-host", "https://exämple.com/hook", "invalid_webhook_url"),
        ("bad-port", "https://example.com:99999/hook", "invalid_webhook_url"),
        ("port-zero", "http://8.8.8.8:0/hook", "invalid_webhook_url"),  # a public address, no port to reach
        ("unresolvable", "https://no-such-host.invalid/hook", "invalid_webhook_url"),
        ("private-10", "http://10.0.0.5/hook", "webhook_url_forbidden"),
        ("private-192", "https://192.168.1.1/hook", "webhook_url_forbidden"),
        ("metadata-service", "http://169.254.169.254/latest/meta-data/", "webhook_url_forbidden"),
        ("unspecified", "http://0.0.0.0:8080/hook", "webhook_url_forbidden"),
        ("ipv6-unique-local", "http://[fd00::1]/hook", "webhook_url_forbidden"),
        ("ipv4-mapped-private", "http://[::ffff:10.0.0.1]/hook", "webhook_url_forbidden"),
        ("ipv6-nat64-private", "http://[64:ff9b::a00:1]/hook", "webhook_url_forbidden"),
        ("ipv6-6to4-private", "http://[2002:a00:1::1]/hook", "webhook_url_forbidden"),
        ("ipv6-link-local", "http://[fe80::1]/hook", "webhook_url_forbidden"),
        # IPv6 outside global unicast (2000::/3) that Python's is_global calls global: refused too
        ("ipv4-compatible-metadata", "http://[::a9fe:a9fe]/latest/meta-data/", "webhook_url_forbidden"),
        ("ipv4-translated-private", "http://[::ffff:0:a00:1]/hook", "webhook_url_forbidden"),
        ("ipv6-local-nat64-metadata", "http://[64:ff9b:1::a9fe:a9fe]/hook", "webhook_url_forbidden"),
        ("ipv6-site-local", "http://[fec0::1]/hook", "webhook_url_forbidden"),
        ("carrier-nat", "http://100.64.0.1/hook", "webhook_url_forbidden"),
        ("decimal-private", "http://167772161/hook", "webhook_url_forbidden"),
        ("url-too-long", "https://example.com/" + "a" * 2048, "invalid_request"),
        ("url-empty", "", "invalid_request"),
        ("url-number", 42, "invalid_request"),
    ]
    cases = [
        Case(
            f"webhooks-put:{name}",
            "PUT",
            ROUTE,
            400,
            code,
            ROUTE,
            {"params": {"website": "alya"}, "json": {"url": url}},
        )
        for name, url, code in urls
    ]
    bodies: list[tuple[str, dict[str, Any], int, str]] = [
        ("no-url", {"json": {}}, 400, "invalid_request"),
        ("extra-field", {"json": {"url": "https://example.com/hook", "secret": "mine"}}, 400, "invalid_request"),
        (
            "not-json",
            {"data": b"url=https://example.com", "headers": {"Content-Type": "application/json"}},
            400,
            "malformed_json",
        ),
        (
            "unknown-website",
            {"params": {"website": "amazon"}, "json": {"url": "https://example.com/hook"}},
            400,
            "invalid_request",
        ),
        (
            "unknown-parameter",
            {"params": {"site": "alya"}, "json": {"url": "https://example.com/hook"}},
            400,
            "unknown_parameter",
        ),
    ]
    cases += [
        Case(f"webhooks-put:{name}", "PUT", ROUTE, status, code, ROUTE, kwargs) for name, kwargs, status, code in bodies
    ]
    queries: list[tuple[str, str, str, Any, str]] = [
        ("get-unknown-parameter", "GET", ROUTE, {"website": "alya", "url": "x"}, "unknown_parameter"),
        ("get-unknown-website", "GET", ROUTE, {"website": "Alya"}, "invalid_request"),
        ("delete-unknown-parameter", "DELETE", ROUTE, {"Website": "alya"}, "unknown_parameter"),
        ("delete-repeated-website", "DELETE", ROUTE, "website=alya&website=blysk", "invalid_request"),
        ("deliveries-limit-zero", "GET", f"{ROUTE}/deliveries", {"limit": "0"}, "invalid_request"),
        ("deliveries-limit-101", "GET", f"{ROUTE}/deliveries", {"limit": "101"}, "invalid_request"),
        ("deliveries-unknown-parameter", "GET", f"{ROUTE}/deliveries", {"cursor": "x"}, "unknown_parameter"),
    ]
    cases += [
        Case(f"webhooks:{name}", method, path, 400, code, path, {"params": params})
        for name, method, path, params, code in queries
    ]
    return cases
