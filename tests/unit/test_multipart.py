"""The binary request between Lambda and the endpoint: what `encode` writes `decode` reads back,
byte for byte; anything else is refused, never guessed at."""

from __future__ import annotations

import pytest

from listing_vision.embeddings import multipart


def test_images_and_the_features_flag_round_trip_byte_for_byte() -> None:
    # Given image files holding every byte value, CRLFs and dashes included, and an empty one
    images = [bytes(range(256)) * 3, b"\r\n--\r\n\r\n--x--", b""]
    for features in (False, True):
        body, content_type = multipart.encode(images, features=features)
        assert content_type.startswith("multipart/form-data; boundary=")
        assert multipart.decode(body, content_type, max_images=8) == (images, features)


def test_a_boundary_found_inside_an_image_is_never_used(monkeypatch: pytest.MonkeyPatch) -> None:
    tokens = iter(["a" * 32, "b" * 32])
    monkeypatch.setattr(multipart.secrets, "token_hex", lambda _: next(tokens))
    images = [b"xx" + b"a" * 32 + b"yy"]
    body, content_type = multipart.encode(images)
    assert content_type.endswith("b" * 32)
    assert multipart.decode(body, content_type, max_images=1) == (images, False)


@pytest.mark.parametrize(
    ("mutate", "content_type", "message"),
    [
        (lambda body: body, "multipart/form-data", "no valid boundary"),
        (lambda body: body, "multipart/form-data; boundary=" + "x" * 71, "no valid boundary"),
        (lambda body: body.replace(b"--\r\n", b"\r\n"), None, "not multipart"),
        (lambda body: b"preamble" + body, None, "not multipart"),
        (lambda body: body.replace(b'name="image"', b'name="picture"'), None, "Unexpected part 'picture'"),
        (lambda body: body.replace(b"Content-Type: app", b"Content-Type app", 1), None, "header is not"),
        (lambda body: body.replace(b"\r\n\r\n", b"\r\n"), None, "no blank line"),
        (lambda body: body.replace(b"\r\n\r\ntrue", b"\r\n\r\nyes"), None, "'features' must be"),
        # an empty part: two delimiters in a row (the second one's line break is not this part's)
        (lambda body: body.replace(b"\r\n--", b"\r\n--" + body[2:34] + b"\r\n--", 1), None, "not followed by"),
    ],
)
def test_malformed_bodies_are_refused(mutate, content_type: str | None, message: str) -> None:  # type: ignore[no-untyped-def]
    body, good_type = multipart.encode([b"\xff\xd8 one", b"\xff\xd8 two"], features=True)
    with pytest.raises(multipart.MalformedBody, match=message):
        multipart.decode(mutate(body), content_type or good_type, max_images=8)


def test_too_many_images_or_none_are_refused() -> None:
    body, content_type = multipart.encode([b"a", b"b", b"c"])
    with pytest.raises(multipart.MalformedBody, match="More than 2 images"):
        multipart.decode(body, content_type, max_images=2)
    only_flag = content_type.split("=")[1].encode()
    empty = b'--%s\r\nContent-Disposition: form-data; name="features"\r\n\r\ntrue\r\n--%s--\r\n' % (
        only_flag,
        only_flag,
    )
    with pytest.raises(multipart.MalformedBody, match="no 'image' part"):
        multipart.decode(empty, content_type, max_images=2)
