"""The API reference page (docs/api-reference.md), generated: every operation of the OpenAPI document
(functions/openapi.py), its parameters, body and answers, with a request and a response example
recorded from a local stack (local/api_examples.json; nothing typed by hand).

    python -m local.api_reference --record         # call every route on a fresh local stack, keep the exchanges
    python -m local.api_reference --write-readme   # render the page from the document and the recording
    python -m local.api_reference --check-readme   # exit 1 when the page is stale

A route with no recorded exchange is listed with "no recorded example" (and the test of the page
fails until `--record` covers it: add its call to _calls()).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from listing_vision.jewelry.image_ids import SHA256_HEX

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "api-reference.md"
RECORDING = Path(__file__).resolve().parent / "api_examples.json"
START = "<!-- api-reference:start (generated: python -m local.api_reference) -->"
END = "<!-- api-reference:end -->"
JEWELRY = ROOT / "tests" / "data" / "jewelry"
DOCUMENTED = {"api": "http://127.0.0.1:8000", "moto": "http://127.0.0.1:8001", "cdn": "http://127.0.0.1:8003"}
LONGEST_STRING = 96  # longer recorded strings (signatures, policies) are cut, with "…"
DEMO_LISTINGS, DEMO_ZPID = 20, "10000003"  # the recording stack's demo listings, and the one shown
KEPT_HEADERS = ("location", "preference-applied", "idempotent-replayed", "content-type")


# --- recording ------------------------------------------------------------------------------------


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _calls() -> list[dict[str, Any]]:
    """Every route called once (or more), in an order where each call has what it needs. `{name}` in a
    path, query value or JSON string is a value kept from an earlier answer (`keep`)."""
    ring, pendant = JEWELRY / "solitaire-ring@gold.jpg", JEWELRY / "heart-pendant@gold.jpg"
    generate: dict[str, Any] = {"s3_urls": "{s3_url}", "product_type": "ring", "image_types": [1, 3]}
    generate["dimensions_mm"] = {"width": 22, "height": 25}
    return [
        {
            "method": "POST",
            "path": "/image_similarity_search",
            "form": {"website": "alya", "check_duplicate": "yes"},
            "file": ring,
            "keep": {"s3_url": "s3_url"},
        },
        {
            "method": "POST",
            "path": "/uploads",
            "json": {"website": "alya", "filename": "hoops.jpg", "content_type": "image/jpeg"},
            "keep": {"upload_id": "upload_id"},
            "then_post_file": JEWELRY / "oval-hoops@gold.jpg",
        },
        {"method": "GET", "path": "/uploads/{upload_id}", "query": {"website": "alya"}, "until_not": "pending"},
        {"method": "GET", "path": "/images", "query": {"website": "alya", "limit": "2"}},
        {"method": "GET", "path": f"/images/{_sha(ring)}", "query": {"website": "alya"}},
        {
            "method": "POST",
            "path": "/generate_caption",
            "form": {"type": "necklace", "website": "alya"},
            "file": pendant,
            "headers": {"Idempotency-Key": "{key}"},
        },
        {"method": "GET", "path": f"/images/{_sha(pendant)}/caption", "query": {"website": "alya"}},
        {
            "method": "POST",
            "path": f"/images/{_sha(pendant)}/caption",
            "query": {"website": "alya"},
            "json": {"type": "necklace"},
            "headers": {"Idempotency-Key": "{key}"},
        },
        {"method": "GET", "path": f"/images/{_sha(pendant)}/captions", "query": {"website": "alya"}},
        {"method": "POST", "path": "/generate-images", "json": generate, "keep": {"job_id": "job_id"}},
        {"method": "GET", "path": "/jobs/{job_id}"},
        {"method": "GET", "path": "/jobs", "query": {"website": "alya", "limit": "2"}},
        {"method": "GET", "path": "/jobs/{job_id}/zip"},
        {"method": "GET", "path": "/jobs/{job_id}/images/1"},
        {"method": "POST", "path": "/regenerate-image", "json": {"job_id": "{job_id}", "image_type": 1}},
        {
            "method": "POST",
            "path": "/generate-images",
            "json": generate,
            "headers": {"Prefer": "respond-async"},
            "keep": {"async_job_id": "job_id"},
        },
        {"method": "DELETE", "path": "/jobs/{async_job_id}", "query": {"website": "alya"}},
        {
            "method": "PUT",
            "path": "/webhooks",
            "query": {"website": "alya"},
            "json": {"url": "http://127.0.0.1:9/hook"},
        },
        {"method": "GET", "path": "/webhooks", "query": {"website": "alya"}},
        {"method": "GET", "path": "/webhooks/deliveries", "query": {"website": "alya", "limit": "5"}},
        {"method": "DELETE", "path": "/webhooks", "query": {"website": "alya"}},
        {"method": "GET", "path": "/listings/search", "query": {"q": "hot tub", "exterior": "brick", "limit": "1"}},
        {
            "method": "PUT",
            "path": "/verdicts",
            "json": {
                "website": "alya",
                "image_id": _sha(JEWELRY / "solitaire-ring@silver.jpg"),
                "matched_image_id": _sha(ring),
                "verdict": "not_duplicate",
            },
        },
        {"method": "GET", "path": "/verdicts", "query": {"website": "alya", "image_id": _sha(ring)}},
        {"method": "GET", "path": "/listings/migration"},
        {"method": "GET", "path": "/listings/{zpid}"},
        {"method": "DELETE", "path": f"/images/{_sha(JEWELRY / 'oval-hoops@gold.jpg')}", "query": {"website": "alya"}},
    ]


def _fill(value: Any, kept: dict[str, str]) -> Any:
    if isinstance(value, str):
        return re.sub(r"\{(\w+)\}", lambda m: kept.get(m[1], m[0]), value)
    if isinstance(value, dict):
        return {k: _fill(v, kept) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, kept) for v in value]
    return value


def _short(value: Any) -> Any:
    if isinstance(value, str) and len(value) > LONGEST_STRING:
        return value[: LONGEST_STRING - 1] + "…"
    if isinstance(value, dict):
        return {k: _short(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_short(v) for v in value]
    return value


def record() -> list[dict[str, Any]]:
    """Run _calls() on a fresh local stack (cdn links as `python -m local` makes them, a few demo listings)
    and return the exchanges, with the stack's addresses as documented."""
    import requests

    from local.stack import LocalStack

    with tempfile.TemporaryDirectory() as state:
        stack = LocalStack(
            state_dir=Path(state), port=0, keep_snapshot=False, image_links="cdn", demo_listings=DEMO_LISTINGS
        )
        stack.start()
        try:
            exchanges = _run_calls(requests.Session(), stack.url)
            urls = {"api": stack.url, "moto": stack.moto_url, "cdn": stack.cdn.url if stack.cdn else "-"}
        finally:
            stack.stop()
    text = json.dumps(exchanges)
    for name, url in urls.items():
        text = text.replace(url, DOCUMENTED[name])
    return list(_short(json.loads(text)))


def _run_calls(session: Any, base: str) -> list[dict[str, Any]]:
    kept: dict[str, str] = {"key": str(uuid.UUID(int=1)), "zpid": DEMO_ZPID}
    exchanges: list[dict[str, Any]] = []
    for call in _calls():
        path, query = _fill(call["path"], kept), _fill(call.get("query", {}), kept)
        headers = _fill(call.get("headers", {}), kept)
        body = _fill(call.get("json"), kept)
        files = {"file": (call["file"].name, call["file"].read_bytes(), "image/jpeg")} if "file" in call else None
        for _ in range(240):  # `until_not`: asked again while the answer's status is that (the trigger still running)
            response = session.request(
                call["method"],
                base + path,
                params=query,
                json=body,
                data=call.get("form"),
                files=files,
                headers=headers,
                allow_redirects=False,
                timeout=120,
            )
            waiting = response.status_code == 404 or '"status":"pending"' in response.text.replace(" ", "")
            if "until_not" not in call or not waiting:
                break
            time.sleep(0.5)
        is_json = response.content and "json" in response.headers.get("content-type", "")
        answer: Any = response.json() if is_json else None
        if "then_post_file" in call:
            grant = answer
            posted = session.post(
                grant["url"],
                data=grant["fields"],
                files={"file": ("hoops.jpg", call["then_post_file"].read_bytes(), "image/jpeg")},
                timeout=60,
            )
            posted.raise_for_status()
        for name, field in call.get("keep", {}).items():
            kept[name] = answer[field]
        request: dict[str, Any] = {"method": call["method"], "path": path, "query": query, "headers": headers}
        if body is not None:
            request["json"] = body
        if "form" in call:
            request["form"] = {**call["form"], "file": f"@{call['file'].relative_to(ROOT)}"}
        exchanges.append(
            {
                "operation": f"{call['method']} {call['path'] if '{' in call['path'] else _template(path)}",
                "request": request,
                "response": {
                    "status": response.status_code,
                    "headers": {k: v for k, v in response.headers.items() if k.lower() in KEPT_HEADERS},
                    "body": answer,
                },
            }
        )
    return exchanges


def _template(path: str) -> str:
    """A called path as the document names it (`/images/<sha256>/caption` → `/images/{image_id}/caption`)."""
    path = re.sub(f"/images/{SHA256_HEX}", "/images/{image_id}", path)
    return re.sub(r"/jobs/[0-9a-f]{32}", "/jobs/{job_id}", path)


def operation_of(exchange: dict[str, Any]) -> str:
    method, path = exchange["operation"].split(" ", 1)
    path = path.replace("{async_job_id}", "{job_id}").replace("/images/1", "/images/{image_type}")
    return f"{method} {_template(path)}"


# --- rendering --------------------------------------------------------------------------------------


def _type(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        return schema["$ref"].rsplit("/", 1)[-1]
    if "enum" in schema:
        return " \\| ".join(f"`{v}`" for v in schema["enum"])
    if "anyOf" in schema:
        return " or ".join(_type(s) for s in schema["anyOf"] if s.get("type") != "null")
    if schema.get("type") == "array":
        return f"list of {_type(schema.get('items', {}))}"
    return str(schema.get("type", "any"))


def _curl(request: dict[str, Any]) -> str:
    query = "&".join(f"{k}={str(v).replace(' ', '+')}" for k, v in request.get("query", {}).items())
    url = DOCUMENTED["api"] + request["path"] + (f"?{query}" if query else "")
    parts = ["curl -s"] + ([f"-X {request['method']}"] if request["method"] not in ("GET", "POST") else [])
    parts += [f"-H '{k}: {v}'" for k, v in request.get("headers", {}).items()]
    if "json" in request:
        parts += ["-H 'Content-Type: application/json'", f"-d '{json.dumps(request['json'])}'"]
    for name, value in request.get("form", {}).items():
        parts.append(f"-F {name}={value}")
    return " ".join(parts) + f" \\\n     '{url}'"


def _operation_section(method: str, path: str, op: dict[str, Any], exchanges: list[dict[str, Any]]) -> list[str]:
    lines = [f"### `{method.upper()} {path}`", ""]
    summary = op.get("summary") or ""
    description = (op.get("description") or "").strip()
    if summary:
        lines += [summary, ""]
    if description and description != summary:
        lines += [description, ""]
    params = op.get("parameters", [])
    if params:
        lines += ["| parameter | in | required | type |", "|---|---|---|---|"]
        for p in params:
            required = "yes" if p.get("required") else "no"
            lines.append(f"| `{p['name']}` | {p['in']} | {required} | {_type(p.get('schema', {}))} |")
        lines.append("")
    for media, content in op.get("requestBody", {}).get("content", {}).items():
        lines += [f"Body: `{media}`, {_type(content.get('schema', {}))}.", ""]
    answers = []
    for status, response in op.get("responses", {}).items():
        text = response.get("description", "")
        answers.append(f"`{status}` {text}".strip())
    if answers:
        lines += ["Answers: " + "; ".join(answers) + ".", ""]
    if not exchanges:
        lines += ["No recorded example (add its call to `_calls()` in local/api_reference.py, `--record`).", ""]
    for exchange in exchanges:
        response = exchange["response"]
        lines += ["Request:", "", "```bash", _curl(exchange["request"]), "```", ""]
        headers = "".join(f"\n{k}: {v}" for k, v in response["headers"].items() if k.lower() != "content-type")
        body = json.dumps(response["body"], indent=2, ensure_ascii=False) if response["body"] is not None else ""
        lines += [f"Response `{response['status']}`:", "", "```text", f"HTTP {response['status']}{headers}"]
        lines += (["", body] if body else []) + ["```", ""]
    return lines


def render(document: dict[str, Any], exchanges: list[dict[str, Any]]) -> str:
    by_operation: dict[str, list[dict[str, Any]]] = {}
    for exchange in exchanges:
        by_operation.setdefault(operation_of(exchange), []).append(exchange)
    lines = [START, ""]
    for path, operations in document["paths"].items():
        for method, op in operations.items():
            lines += _operation_section(method, path, op, by_operation.get(f"{method.upper()} {path}", []))
    lines.append(END)
    return "\n".join(lines)


def page_with_reference(text: str, document: dict[str, Any], exchanges: list[dict[str, Any]]) -> str:
    pattern = re.compile(re.escape(START) + r".*?" + re.escape(END), re.S)
    if not pattern.search(text):
        raise SystemExit(f"{PAGE.name} has no {START} … {END} markers")
    fresh = render(document, exchanges)
    return pattern.sub(lambda _: fresh, text)


def recorded() -> list[dict[str, Any]]:
    return list(json.loads(RECORDING.read_text(encoding="utf-8"))) if RECORDING.exists() else []


def main(argv: list[str] | None = None) -> int:
    from functions.openapi import document

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--record", action="store_true", help="call every route on a fresh local stack first")
    parser.add_argument("--write-readme", action="store_true", help="write docs/api-reference.md")
    parser.add_argument("--check-readme", action="store_true", help="exit 1 when docs/api-reference.md is stale")
    args = parser.parse_args(argv)
    if args.record:
        RECORDING.write_text(json.dumps(record(), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    text = PAGE.read_text(encoding="utf-8")
    fresh = page_with_reference(text, document(), recorded())
    if args.check_readme:
        return 0 if fresh == text else 1
    if args.write_readme or args.record:
        PAGE.write_text(fresh, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
