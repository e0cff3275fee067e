"""Links that last (`image_links`): with `cdn`, the links an answer holds are stable CDN URLs (CloudFront
on AWS, local/cdn.py here) that still fetch the same bytes after a presigned URL would have expired;
with `presigned`, the link dies at its expiry. The CDN serves only the declared prefixes: a storefront's
catalogue and the generated images, never its uploads."""

from __future__ import annotations

import hashlib
import re
import time
import uuid
from collections.abc import Callable

import requests

from listing_vision import aws
from listing_vision.config import get_settings
from local.stack import LocalStack
from tests.images import fresh_image
from tests.integration import test_access
from tests.integration.test_access import Clients, call
from tests.integration.test_generation import RESPOND_ASYNC, earring_photo, wait
from tests.stores import changed, fingerprint, settle


def stored(local_stack: LocalStack, photo: bytes, website: str = "alya") -> dict[str, str]:
    answer = requests.post(
        f"{local_stack.url}/image_similarity_search",
        files={"file": ("ring.jpg", photo, "image/jpeg")},
        data={"website": website, "check_duplicate": "no"},
        timeout=60,
    )
    assert answer.status_code == 200, answer.text
    settle(local_stack)
    return dict(answer.json())


def test_a_cdn_link_returned_yesterday_still_fetches_the_photo_today(
    local_stack: LocalStack, provider_env: Callable[..., None]
) -> None:
    # Given presigned links that live one second, and a photo stored once with cdn links, once with presigned
    provider_env(IMAGE_LINKS="cdn", PRESIGN_EXPIRY_S="1")
    photo = fresh_image(uuid.uuid4().int % 2**32)
    stable = stored(local_stack, photo)["s3_url"]
    provider_env(IMAGE_LINKS="presigned", PRESIGN_EXPIRY_S="1")
    presigned = stored(local_stack, fresh_image(uuid.uuid4().int % 2**32))["s3_url"]
    assert stable.startswith(f"{local_stack.cdn.url}/alyaimg/catalogue/") if local_stack.cdn else False
    assert "X-Amz-Expires=1" in presigned
    # When both are fetched after the presigned link's expiry has passed
    time.sleep(2.5)
    kept, expired = requests.get(stable, timeout=10), requests.get(presigned, timeout=10)
    # Then the cdn link answers the same bytes, as an <img> would load them, and the presigned one is refused
    assert kept.status_code == 200 and kept.content == photo
    assert kept.headers["Content-Type"] == "image/jpeg"
    assert expired.status_code == 403


def test_a_jobs_generated_images_and_zip_have_stable_links_and_its_cdn_source_is_accepted(
    local_stack: LocalStack, provider_env: Callable[..., None]
) -> None:
    # Given a catalogue photo whose answer held a cdn link
    provider_env(IMAGE_LINKS="cdn", PRESIGN_EXPIRY_S="1")
    source = stored(local_stack, earring_photo(7))["s3_url"]
    # When a job is made from that very link (what a client stored) and has ended
    submitted = requests.post(
        f"{local_stack.url}/generate-images",
        headers=RESPOND_ASYNC,
        json={"s3_urls": source, "product_type": "ear", "image_types": [1]},
        timeout=30,
    )
    assert submitted.status_code == 202, submitted.text
    view = wait(local_stack, submitted.json()["job_id"])
    # Then every link is a cdn URL that still answers after presigned links would have expired
    assert view["original_image_url"] == source
    links = [view["zip_url"], *(image["image_url"] for image in view["gen_images"])]
    assert links and all(link.startswith(f"{local_stack.cdn.url}/generated/") for link in links if local_stack.cdn)
    time.sleep(1.5)
    for link in links:
        answer = requests.get(link, timeout=10)
        assert answer.status_code == 200 and answer.content


def test_the_cdn_serves_only_the_catalogue_and_generated_images(local_stack: LocalStack) -> None:
    # Given an object in a storefront's uploads prefix and one in its catalogue
    s3, bucket = aws.client("s3"), get_settings().storefronts["alya"]
    s3.put_object(Bucket=bucket, Key="incoming/secret.jpg", Body=b"private bytes")
    assert local_stack.cdn is not None
    base = local_stack.cdn.url
    # When the CDN is asked for the upload, for a missing catalogue key, an unknown bucket and a path escape
    asked = [
        f"{base}/{bucket}/incoming/secret.jpg",
        f"{base}/{bucket}/catalogue/00/missing.jpg",
        f"{base}/artifacts/anything",
        f"{base}/{bucket}/catalogue/../incoming/secret.jpg",
    ]
    answers = [requests.get(url, timeout=10) for url in asked]
    # Then each is refused as CloudFront with origin access control refuses it: 403 AccessDenied
    assert [answer.status_code for answer in answers] == [403, 403, 403, 403]
    assert all(b"AccessDenied" in answer.content and b"private" not in answer.content for answer in answers)


# --- private links: API paths that check the key and redirect to a fresh presigned URL ------------------
secured = test_access.secured  # the authorizer's gateway, a key per storefront (module-scoped)


def test_a_private_link_redirects_its_storefronts_client_to_the_photo_after_expiry(
    secured: Clients, provider_env: Callable[..., None]
) -> None:
    # Given a photo stored by alya's client with private links, and presigned URLs that live one second
    provider_env(IMAGE_LINKS="private", PRESIGN_EXPIRY_S="1")
    photo = fresh_image(uuid.uuid4().int % 2**32)
    files = {"file": ("ring.jpg", photo, "image/jpeg")}
    answer = call(secured, "POST", "/image_similarity_search", secured.alya, files=files, data={"website": "alya"})
    link = answer.json()["s3_url"]
    assert re.fullmatch(r"/images/[0-9a-f]{64}\?website=alya", link), link
    # When alya's client follows it after any presigned URL of the time would have expired (and presigned
    # URLs signed from now on live an hour: one living a second could expire between the redirect and its
    # GET on a busy machine, or at once when signed late in a second, as X-Amz-Date counts whole seconds)
    time.sleep(1.5)
    provider_env(IMAGE_LINKS="private", PRESIGN_EXPIRY_S="3600")
    followed = call(secured, "GET", link, secured.alya, allow_redirects=False)
    # Then it is a 302 to a fresh presigned URL of the same bytes
    assert followed.status_code == 302, followed.text
    assert "X-Amz-Expires=3600" in followed.headers["Location"]
    assert requests.get(followed.headers["Location"], timeout=10).content == photo


def test_a_private_link_refuses_another_storefront_and_an_unknown_id_writing_nothing(
    secured: Clients, provider_env: Callable[..., None]
) -> None:
    # Given a photo of alya's, linked privately
    provider_env(IMAGE_LINKS="private")
    files = {"file": ("ring.jpg", fresh_image(uuid.uuid4().int % 2**32), "image/jpeg")}
    link = call(secured, "POST", "/image_similarity_search", secured.alya, files=files, data={"website": "alya"})
    path = link.json()["s3_url"]
    before = fingerprint()
    # When blysk's client follows it, and alya's client asks for an id never stored or not an id at all
    foreign = call(secured, "GET", path, secured.blysk, allow_redirects=False)
    unknown = call(secured, "GET", f"/images/{'ab' * 32}?website=alya", secured.alya, allow_redirects=False)
    malformed = call(secured, "GET", "/images/not-an-id?website=alya", secured.alya, allow_redirects=False)
    # Then blysk's is a 403, the others 404 or 400, with their codes, and no store changed
    assert (foreign.status_code, foreign.json()["error"]["code"]) == (403, "storefront_forbidden")
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "image_not_found")
    assert (malformed.status_code, malformed.json()["error"]["code"]) == (400, "invalid_request")
    assert changed(before, fingerprint()) == []


def test_a_jobs_private_links_redirect_to_its_outputs_for_its_storefront_only(
    local_stack: LocalStack, secured: Clients, provider_env: Callable[..., None]
) -> None:
    # Given an ended alya job, made from a photo's private link and answered with private links
    provider_env(IMAGE_LINKS="private")
    photo = earring_photo(8)
    files, form = {"file": ("earring.jpg", photo, "image/jpeg")}, {"website": "alya", "check_duplicate": "no"}
    answer = call(secured, "POST", "/image_similarity_search", secured.alya, files=files, data=form)
    link = answer.json()["s3_url"]
    assert link == f"/images/{hashlib.sha256(photo).hexdigest()}?website=alya"
    submitted = call(
        secured,
        "POST",
        "/generate-images",
        secured.alya,
        headers=RESPOND_ASYNC,
        json={"s3_urls": link, "product_type": "ear", "image_types": [1]},  # the link it was given
    )
    assert submitted.status_code == 202, submitted.text
    job_id = submitted.json()["job_id"]
    settle(local_stack)  # the worker has run the job
    view = call(secured, "GET", f"/jobs/{job_id}", secured.alya).json()
    assert view["status"] == "done", view
    assert view["zip_url"] == f"/jobs/{job_id}/zip"
    assert [image["image_url"] for image in view["gen_images"]] == [f"/jobs/{job_id}/images/1"]
    # When alya's client follows them, blysk's client follows the ZIP, and a type never made is asked
    for link in (view["zip_url"], view["gen_images"][0]["image_url"]):
        followed = call(secured, "GET", link, secured.alya, allow_redirects=False)
        # Then each redirects to its bytes
        assert followed.status_code == 302 and requests.get(followed.headers["Location"], timeout=10).content
    foreign = call(secured, "GET", view["zip_url"], secured.blysk, allow_redirects=False)
    missing = call(secured, "GET", f"/jobs/{job_id}/images/2", secured.alya, allow_redirects=False)
    # And another storefront's job does not exist for blysk, nor an image the job did not make
    assert (foreign.status_code, foreign.json()["error"]["code"]) == (404, "job_not_found")
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "image_not_found")
