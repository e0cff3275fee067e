"""The bad-input corpus, part five: job management, GET /jobs (unknown and repeated parameters,
storefronts and statuses that do not exist, limits at their edges, cursors the listing never
returned) and DELETE /jobs/{job_id} (ids, storefronts, a job that does not exist)."""

from __future__ import annotations

import base64

from listing_vision.dynamodb_items import to_item
from listing_vision.jewelry.job_listing import encode_cursor
from tests.integration.bad_input.image_and_form_cases import JOB, Case

ROUTE = "/jobs"
# A cursor in the right shape whose digest the listing did not make
FORGED = base64.urlsafe_b64encode(f'[1,"{JOB}",1]'.encode()).decode().rstrip("=") + ".AAAAAAAAAAAAAAAAAAAAAA"
# A right digest over a key no listing returns (it is a check, not a secret): the version is unknown
_KEY = to_item({"job_id": JOB, "website": "alya", "created_at": 1})
FOR_BLYSK = encode_cursor("blysk", None, _KEY)  # a cursor of blysk's listing, used for alya's
FOR_DONE = encode_cursor("alya", "done", _KEY)  # a cursor of the `done` filter, used without it


def jobs_cases() -> list[Case]:
    queries: list[tuple[str, str | dict[str, str], int, str]] = [
        ("unknown-parameter", {"website": "alya", "state": "done"}, 400, "unknown_parameter"),
        ("parameter-case", {"Website": "alya"}, 400, "unknown_parameter"),
        ("repeated-status", "website=alya&status=done&status=failed", 400, "invalid_request"),
        ("unknown-website", {"website": "amazon"}, 400, "invalid_request"),
        ("website-case", {"website": "Alya"}, 400, "invalid_request"),
        ("unknown-status", {"website": "alya", "status": "finished"}, 400, "invalid_request"),
        ("status-case", {"website": "alya", "status": "DONE"}, 400, "invalid_request"),
        ("limit-zero", {"limit": "0"}, 400, "invalid_request"),
        ("limit-101", {"limit": "101"}, 400, "invalid_request"),
        ("limit-word", {"limit": "ten"}, 400, "invalid_request"),
        ("cursor-garbage", {"cursor": "garbage"}, 400, "invalid_cursor"),
        ("cursor-forged", {"cursor": FORGED}, 400, "invalid_cursor"),
        ("cursor-another-storefront", {"website": "alya", "cursor": FOR_BLYSK}, 400, "invalid_cursor"),
        ("cursor-another-status", {"website": "alya", "cursor": FOR_DONE}, 400, "invalid_cursor"),
        ("cursor-401-chars", {"cursor": "A" * 401}, 400, "invalid_request"),
    ]
    cases = [
        Case(f"jobs-list:{name}", "GET", ROUTE, status, code, ROUTE, {"params": params})
        for name, params, status, code in queries
    ]
    deletes: list[tuple[str, str, dict[str, str], int, str]] = [
        ("short-id", "0" * 31, {}, 400, "invalid_request"),
        ("upper-case-id", "A" * 32, {}, 400, "invalid_request"),
        ("unknown-job", JOB, {}, 404, "job_not_found"),
        ("unknown-job-of-a-storefront", JOB, {"website": "blysk"}, 404, "job_not_found"),
        ("unknown-website", JOB, {"website": "amazon"}, 400, "invalid_request"),
    ]
    cases += [
        Case(f"jobs-cancel:{name}", "DELETE", f"/jobs/{job}", status, code, "/jobs/{job_id}", {"params": params})
        for name, job, params, status, code in deletes
    ]
    return cases
