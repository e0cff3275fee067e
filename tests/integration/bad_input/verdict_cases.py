"""Bad input to reviewers' verdicts: PUT /verdicts (ids not of an image, the same image twice, a matched
image the storefront does not hold, verdicts it does not know, fields missing, extra or of the wrong
type) and GET /verdicts (parameters, limits, cursors). Each is refused before anything is written."""

from __future__ import annotations

from typing import Any

from tests.integration.bad_input.image_and_form_cases import Case

ROUTE = "/verdicts"
A, B = "a" * 64, "b" * 64  # no photo's SHA-256 here
GOOD: dict[str, Any] = {"website": "alya", "image_id": A, "matched_image_id": B, "verdict": "same_piece"}


def verdict_cases() -> list[Case]:
    bodies: list[tuple[str, Any, int, str]] = [
        ("matched-unknown", GOOD, 404, "image_not_found"),
        ("same-image-twice", {**GOOD, "matched_image_id": A}, 400, "same_image_pair"),
        ("verdict-unknown", {**GOOD, "verdict": "maybe"}, 400, "invalid_request"),
        ("verdict-case", {**GOOD, "verdict": "Same_Piece"}, 400, "invalid_request"),
        ("verdict-bool", {**GOOD, "verdict": True}, 400, "invalid_request"),
        ("verdict-missing", {k: v for k, v in GOOD.items() if k != "verdict"}, 400, "invalid_request"),
        ("image-id-missing", {k: v for k, v in GOOD.items() if k != "image_id"}, 400, "invalid_request"),
        ("image-id-short", {**GOOD, "image_id": "abc"}, 400, "invalid_request"),
        ("image-id-upper", {**GOOD, "image_id": "A" * 64}, 400, "invalid_request"),
        ("matched-id-path", {**GOOD, "matched_image_id": "../" + B[3:]}, 400, "invalid_request"),
        ("matched-id-number", {**GOOD, "matched_image_id": 7}, 400, "invalid_request"),
        ("website-unknown", {**GOOD, "website": "amazon"}, 400, "invalid_request"),
        ("website-null", {**GOOD, "website": None}, 400, "invalid_request"),
        ("extra-field", {**GOOD, "note": "looks alike"}, 400, "invalid_request"),
        ("body-a-list", [GOOD], 400, "invalid_request"),
    ]
    cases = [Case(f"verdict-put:{n}", "PUT", ROUTE, s, c, ROUTE, {"json": body}) for n, body, s, c in bodies]
    cases.append(
        Case(
            "verdict-put:not-json",
            "PUT",
            ROUTE,
            400,
            "malformed_json",
            ROUTE,
            {"data": b"{verdict:", "headers": {"Content-Type": "application/json"}},
        )
    )
    queries = [
        ("unknown-parameter", {"verdict": "same_piece"}, "unknown_parameter"),
        ("website-unknown", {"website": "amazon"}, "invalid_request"),
        ("image-id-short", {"image_id": "abc"}, "invalid_request"),
        ("limit-zero", {"limit": "0"}, "invalid_request"),
        ("limit-201", {"limit": "201"}, "invalid_request"),
        ("cursor-garbage", {"cursor": "garbage"}, "invalid_cursor"),
        ("cursor-301-chars", {"cursor": "A" * 301}, "invalid_request"),
    ]
    cases += [Case(f"verdict-get:{n}", "GET", ROUTE, 400, c, ROUTE, {"params": params}) for n, params, c in queries]
    return cases
