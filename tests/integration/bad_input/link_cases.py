"""Bad input to the private links (`image_links` `private`): GET /images/{id}, GET /jobs/{id}/zip and
GET /jobs/{id}/images/{type}. Each is refused before anything is read or presigned."""

from __future__ import annotations

from tests.integration.bad_input.image_and_form_cases import JOB, Case

UNKNOWN_IMAGE = "0" * 64  # no photo's SHA-256 here


def link_cases() -> list[Case]:
    images = [
        ("short", "abc", 400, "invalid_request"),
        ("upper", "A" * 64, 400, "invalid_request"),
        ("65-chars", "0" * 65, 400, "invalid_request"),
        ("dot-dot", "..%2F..%2Fetc", 400, "invalid_request"),
        ("unknown", UNKNOWN_IMAGE, 404, "image_not_found"),
    ]
    cases = [Case(f"image-get:{n}", "GET", f"/images/{i}", s, c, "/images/{image_id}") for n, i, s, c in images]
    for name, params, code in (
        ("website-unknown", {"website": "amazon"}, "invalid_request"),
        ("website-empty", {"website": ""}, "invalid_request"),
        ("unknown-parameter", {"size": "large"}, "unknown_parameter"),
    ):
        route = "/images/{image_id}"
        cases.append(Case(f"image-get:{name}", "GET", f"/images/{UNKNOWN_IMAGE}", 400, code, route, {"params": params}))
    jobs = [
        ("short", "abc", 400, "invalid_request"),
        ("upper", "A" * 32, 400, "invalid_request"),
        ("dot-dot", "..%2F..%2Fetc", 400, "invalid_request"),
        ("unknown", JOB, 404, "job_not_found"),
    ]
    for name, ident, status, code in jobs:
        cases.append(Case(f"job-zip:{name}", "GET", f"/jobs/{ident}/zip", status, code, "/jobs/{job_id}/zip"))
        route = "/jobs/{job_id}/images/{image_type}"
        cases.append(Case(f"job-image:{name}", "GET", f"/jobs/{ident}/images/1", status, code, route))
    for name, image_type in (("type-zero", "0"), ("type-100", "100"), ("type-word", "main"), ("type-float", "1.5")):
        path, route = f"/jobs/{JOB}/images/{image_type}", "/jobs/{job_id}/images/{image_type}"
        cases.append(Case(f"job-image:{name}", "GET", path, 400, "invalid_request", route))
    return cases
