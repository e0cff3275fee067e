"""The API's OpenAPI document, generated from the handlers (Powertools' schema of each function's
resolver) and the route declarations (functions/routes.py: the error codes each route answers,
listing_vision/api/error_codes.py: their statuses). The local gateway serves it at /openapi.json
(and a Swagger UI at /swagger), API Gateway answers it at /openapi.json on AWS
(infra/constructs/api.py); `make openapi` writes build/openapi.json; the table of
error codes per route in docs/error-codes.md is generated from the same declarations.

    python -m functions.openapi --out build/openapi.json
    python -m functions.openapi --write-readme       # refresh the table in docs/error-codes.md
    python -m functions.openapi --check-readme       # fail when it is stale
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

from functions.routes import ROUTES
from listing_vision.api.error_codes import CODES, by_status

TITLE = "listing-vision"
VERSION = "1.0.0"
PAGE = Path(__file__).resolve().parent.parent / "docs" / "error-codes.md"  # the table of codes per route
START, END = "<!-- route-errors:start (generated: python -m functions.openapi) -->", "<!-- route-errors:end -->"

ERROR_BODY: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "details": {"type": "object"},
                "request_id": {"type": "string"},
            },
        }
    },
}


# Where the API chains: a value of one answer is a parameter of the next call (OpenAPI links, which
# schemathesis' stateful test follows). (path, method, status) of the answer -> name -> link, its
# target named as (path, method) and turned into that operation's operationId.
LINKS: dict[tuple[str, str, str], dict[str, dict[str, Any]]] = {
    ("/uploads", "post", "200"): {
        "UploadStatus": {
            "target": ("/uploads/{upload_id}", "get"),
            "parameters": {"path.upload_id": "$response.body#/upload_id", "query.website": "$request.body#/website"},
            "description": "What became of the upload just granted (unknown until its photo is posted).",
        }
    },
    ("/generate-images", "post", "200"): {
        "JobStatus": {
            "target": ("/jobs/{job_id}", "get"),
            "parameters": {"path.job_id": "$response.body#/job_id"},
            "description": "The job just finished.",
        },
        "Regenerate": {
            "target": ("/regenerate-image", "post"),
            "requestBody": {"job_id": "$response.body#/job_id", "image_type": 1},
            "description": "Generate one of the job's images again.",
        },
    },
    ("/generate-images", "post", "202"): {
        "JobStatus": {
            "target": ("/jobs/{job_id}", "get"),
            "parameters": {"path.job_id": "$response.body#/job_id"},
            "description": "The job just started.",
        },
        "Regenerate": {
            "target": ("/regenerate-image", "post"),
            "requestBody": {"job_id": "$response.body#/job_id", "image_type": 1},
            "description": "Generate one of the job's images again.",
        },
    },
    ("/regenerate-image", "post", "202"): {
        "JobStatus": {
            "target": ("/jobs/{job_id}", "get"),
            "parameters": {"path.job_id": "$response.body#/job_id"},
            "description": "The job regenerating the image.",
        }
    },
}


def _apps() -> list[Any]:
    from functions.caption.handler import app as caption
    from functions.dedupe.handler import app as dedupe
    from functions.generate.handler import app as generate
    from functions.regenerate.search import app as listing_search

    return [dedupe, caption, generate, listing_search]


LOCATION = {
    "description": "A presigned GET URL of the object, good for PRESIGN_EXPIRY_S seconds.",
    "schema": {"type": "string", "format": "uri"},
}


def document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of every route, with each route's error responses."""
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": TITLE, "version": VERSION, "description": "Jewelry image services (docs/jewelry-api.md)."},
        "paths": {},
        "components": {"schemas": {"ErrorBody": ERROR_BODY}},
    }
    for app in _apps():
        schema = json.loads(app.get_openapi_json_schema(title=TITLE, version=VERSION))
        for path, operations in schema.get("paths", {}).items():
            doc["paths"].setdefault(path, {}).update(operations)
        doc["components"]["schemas"].update(schema.get("components", {}).get("schemas", {}))
    for schema_name in ("HTTPValidationError", "ValidationError"):  # ours answer 400 invalid_request
        doc["components"]["schemas"].pop(schema_name, None)
    for route in ROUTES:
        operation = doc["paths"][route.path][route.method.lower()]
        responses = {k: v for k, v in operation.get("responses", {}).items() if not k.startswith(("4", "5"))}
        for empty in ("204", "302"):  # no body: Powertools documents the handler's None as a JSON body
            if empty in responses:
                responses[empty] = {k: v for k, v in responses[empty].items() if k != "content"}
        if "302" in responses:  # a private link (listing_vision.jewelry.links): where the object is, for now
            responses["302"]["headers"] = {"Location": LOCATION}
        for status, codes in by_status(route.errors).items():
            responses[str(status)] = {
                "description": ", ".join(f"`{code}`" for code in codes),
                "content": {
                    "application/json": {
                        "schema": {
                            "allOf": [
                                {"$ref": "#/components/schemas/ErrorBody"},
                                {"properties": {"error": {"properties": {"code": {"enum": codes}}}}},
                            ]
                        }
                    }
                },
            }
        operation["responses"] = dict(sorted(responses.items()))
    for (path, method, answered), links in LINKS.items():
        response = doc["paths"][path][method]["responses"][answered]
        response["links"] = {
            name: {
                "operationId": doc["paths"][link["target"][0]][link["target"][1]]["operationId"],
                **{k: v for k, v in link.items() if k != "target"},
            }
            for name, link in links.items()
        }
    return doc


def swagger_html(doc: dict[str, Any]) -> str:
    """A Swagger UI page for the document, with Powertools' bundled Swagger UI (no CDN needed)."""
    import aws_lambda_powertools.event_handler.openapi.swagger_ui as bundle
    from aws_lambda_powertools.event_handler.openapi.swagger_ui.html import generate_swagger_html

    folder = Path(bundle.__file__).parent
    spec = json.dumps(doc).replace("</", "<\\/")
    js = (folder / "swagger-ui-bundle.min.js").read_text(encoding="utf-8")
    css = (folder / "swagger-ui.min.css").read_text(encoding="utf-8")
    return generate_swagger_html(spec, js, css, "", None)


def readme_table() -> str:
    """The table of docs/error-codes.md: each route, and the codes it answers by status (API Gateway's own below)."""
    gateway = set(_gateway_codes())
    lines = ["| route | status: codes |", "|---|---|"]
    for route in ROUTES:
        groups = by_status(tuple(code for code in route.errors if code not in gateway))
        cells = "; ".join(f"{status}: " + ", ".join(f"`{c}`" for c in codes) for status, codes in groups.items())
        lines.append(f"| `{route.method} {route.path}` | {cells} |")
    every = by_status(_gateway_codes())
    cells = "; ".join(f"{status}: " + ", ".join(f"`{c}`" for c in codes) for status, codes in every.items())
    lines.append(f"| every route (API Gateway, Lambda) | {cells} |")
    return "\n".join(lines)


def _gateway_codes() -> tuple[str, ...]:
    from listing_vision.api.error_codes import GATEWAY

    return GATEWAY


def _readme_with_table(text: str) -> str:
    pattern = re.compile(re.escape(START) + r".*?" + re.escape(END), re.S)
    if not pattern.search(text):
        raise SystemExit(f"{PAGE.name} has no {START} … {END} markers")
    return pattern.sub(lambda _: f"{START}\n{readme_table()}\n{END}", text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, help="write the document here (default: stdout)")
    parser.add_argument("--write-readme", action="store_true", help="refresh the table in docs/error-codes.md")
    parser.add_argument("--check-readme", action="store_true", help="exit 1 when docs/error-codes.md is stale")
    args = parser.parse_args(argv)
    if args.write_readme or args.check_readme:
        text = PAGE.read_text()
        fresh = _readme_with_table(text)
        if args.check_readme:
            return 0 if fresh == text else 1
        PAGE.write_text(fresh)
        return 0
    text = json.dumps(document(), indent=2) + "\n"
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


__all__ = ["CODES", "document", "readme_table"]
