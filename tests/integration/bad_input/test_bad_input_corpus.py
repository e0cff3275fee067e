"""A corpus of bad input, through the local gateway to every route: each case is refused with a 4xx
and a stable code that the route declares (functions/routes.py), and writes nothing anywhere (every
bucket's objects and tags, every table's items, Milvus rows, OpenSearch documents, Step Functions
executions: tests/stores.py). Broken images sent through a presigned upload end `invalid`.

Classes: image bytes (truncated, fake headers, formats, sizes, blank as seen through transparency,
16-bit, PNG structure), multipart framing, form fields (sent as files, repeated, missing), JSON
shapes and depth, strict types, numeric edges, enum values, ids, URLs, filenames, unicode in every
text field (full-width, zero-width, confusables, separators, other scripts' digits), encodings,
unknown routes and methods, `Idempotency-Key` values, the search's query string. The cases are built
in image_and_form_cases.py, json_and_path_cases.py, unicode_and_field_cases.py, search_cases.py and
verdict_cases.py,
beside this file; raw HTTP header lines and
API keys are in test_headers_and_keys.py.
"""

from __future__ import annotations

import pytest
import requests

from functions.routes import ROUTES
from listing_vision.api.error_codes import CODES
from local.stack import LocalStack
from tests.integration.bad_input.image_and_form_cases import (
    PHOTO,
    PNG,
    Case,
    flat,
    form_cases,
    image_cases,
    jpeg_header,
)
from tests.integration.bad_input.jobs_cases import jobs_cases
from tests.integration.bad_input.json_and_path_cases import idempotency_key_cases, json_cases, path_cases
from tests.integration.bad_input.link_cases import link_cases
from tests.integration.bad_input.search_cases import search_cases
from tests.integration.bad_input.unicode_and_field_cases import unicode_and_field_cases
from tests.integration.bad_input.verdict_cases import verdict_cases
from tests.integration.bad_input.webhook_cases import webhook_cases
from tests.stores import Settled, changed, fingerprint, settle

CASES = (
    image_cases()
    + form_cases()
    + json_cases()
    + path_cases()
    + unicode_and_field_cases()
    + idempotency_key_cases()
    + search_cases()
    + jobs_cases()
    + webhook_cases()
    + link_cases()
    + verdict_cases()
)
DECLARED: dict[str, set[str]] = {}  # a path's codes, whichever of its methods answers them
for _route in ROUTES:
    DECLARED.setdefault(_route.path, set()).update(_route.errors)


def test_the_corpus_is_large_and_covers_every_route() -> None:
    # Given the corpus, then it has at least 80 cases and reaches every declared route
    assert len(CASES) >= 80
    assert {case.route for case in CASES} >= set(DECLARED)
    assert len({case.id for case in CASES}) == len(CASES)


@pytest.fixture(scope="module")
def store_reads(local_stack: LocalStack) -> Settled:
    return Settled(local_stack)


@pytest.fixture
def settled(store_reads: Settled, request: pytest.FixtureRequest) -> Settled:
    return store_reads.for_test(request.function)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input_is_refused_with_a_declared_code_and_writes_nothing(
    local_stack: LocalStack, settled: Settled, case: Case
) -> None:
    # Given every store as it is
    before = settled.before()
    # When the bad request arrives
    answer = requests.request(case.method, f"{local_stack.url}{case.path}", timeout=60, **case.kwargs)
    # Then it is refused with the expected status and stable code, in the one error shape
    assert answer.status_code == case.status, answer.text[:500]
    error = answer.json()["error"]
    assert error["code"] == case.code, answer.text[:500]
    assert isinstance(error["message"], str) and error["message"]
    # And the code is one the route declares (the OpenAPI document and the README list it), at its status
    if case.route is not None:
        assert case.code in DECLARED[case.route]
        assert CODES[case.code].status == case.status
    # And nothing was written anywhere, nothing started
    assert changed(before, settled.after()) == []


BROKEN_UPLOADS = [
    ("jpeg-cut-in-header", PHOTO[:200], "image/jpeg", "corrupt_image"),
    ("jpeg-declares-65000x65000", jpeg_header(65_000, 65_000), "image/jpeg", "decompression_bomb"),
    ("png-1x1", flat("red", (1, 1)), "image/png", "image_too_small"),
    ("png-blank-white", flat("white"), "image/png", "blank_image"),
    ("not-an-image", b"hello", "image/png", "not_an_image"),
    # a real photo, but a PNG under a form that declared JPEG: served as what it is not
    ("png-declared-jpeg", PNG, "image/jpeg", "content_type_mismatch"),
]


@pytest.mark.parametrize(
    ("data", "content_type", "reason"),
    [case[1:] for case in BROKEN_UPLOADS],
    ids=[case[0] for case in BROKEN_UPLOADS],
)
def test_broken_bytes_through_a_presigned_upload_end_invalid(
    local_stack: LocalStack, data: bytes, content_type: str, reason: str
) -> None:
    # Given an upload granted through the API, and broken bytes posted straight to S3 with it
    grant = requests.post(
        f"{local_stack.url}/uploads", json={"website": "alya", "content_type": content_type}, timeout=10
    ).json()
    settle(local_stack)
    before = fingerprint()
    posted = requests.post(grant["url"], data=grant["fields"], files={"file": ("x", data, content_type)}, timeout=30)
    assert posted.status_code in (200, 204), posted.text
    settle(local_stack)
    # When its status is asked for
    status = requests.get(f"{local_stack.url}/uploads/{grant['upload_id']}", params={"website": "alya"}, timeout=10)
    # Then it ended invalid with the decoder's reason, not pending
    assert status.status_code == 200, status.text
    assert status.json() == {"upload_id": grant["upload_id"], "status": "invalid", "reason": reason}
    # And nothing was indexed or recorded: only the uploaded object itself is new
    after = fingerprint()
    assert changed(before, after) == ["s3:alyaimg"]
    assert {o[0] for o in after["s3:alyaimg"]} - {o[0] for o in before["s3:alyaimg"]} == {grant["key"]}
