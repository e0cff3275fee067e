"""What a stored image's link is (`listing_vision.jewelry.links`): the CDN serves only the declared
prefixes, and a link this deployment answered is read back to its object."""

from __future__ import annotations

from listing_vision.config import Settings
from listing_vision.jewelry import links

SHA = "ab" * 32
SETTINGS = Settings(
    storefronts={"alya": "alyaimg", "blysk": "blyskimg"},
    generated_bucket="generated",
    cdn_urls={"alyaimg": "https://d1.cloudfront.net", "generated": "https://d2.cloudfront.net"},
)


def test_only_the_catalogue_and_generated_images_have_cdn_urls() -> None:
    # Given a catalogue photo, an upload, a path escape, a job's image and an artifact
    # Then only the catalogue photo and the job's image get a CDN URL
    assert (
        links.cdn_url(SETTINGS, "alyaimg", f"catalogue/ab/{SHA}.jpg")
        == f"https://d1.cloudfront.net/catalogue/ab/{SHA}.jpg"
    )
    assert links.cdn_url(SETTINGS, "alyaimg", "incoming/u1.jpg") is None
    assert links.cdn_url(SETTINGS, "alyaimg", "catalogue/../incoming/u1.jpg") is None
    assert links.cdn_url(SETTINGS, "generated", "alya/j1/1-main.png") == "https://d2.cloudfront.net/alya/j1/1-main.png"
    assert links.cdn_url(SETTINGS, "artifacts", "manifest.json") is None
    # And a bucket without a distribution (an existing one) has none: its links stay presigned
    assert links.cdn_url(SETTINGS, "blyskimg", f"catalogue/ab/{SHA}.jpg") is None


def test_a_cdn_url_reads_back_to_its_bucket_and_key() -> None:
    url = links.cdn_url(SETTINGS, "alyaimg", f"catalogue/ab/{SHA}.jpg")
    assert url is not None
    assert links.from_cdn_url(SETTINGS, url) == ("alyaimg", f"catalogue/ab/{SHA}.jpg")
    assert links.from_cdn_url(SETTINGS, "https://elsewhere.example/catalogue/x.jpg") is None


def test_private_paths_name_the_routes_that_redirect() -> None:
    # Given a catalogue photo, a job's image and ZIP, and what no route serves
    assert links.private_path(SETTINGS, "blyskimg", f"catalogue/ab/{SHA}.png") == f"/images/{SHA}?website=blysk"
    assert links.private_path(SETTINGS, "generated", "alya/j1/3-on-model.png") == "/jobs/j1/images/3"
    assert links.private_path(SETTINGS, "generated", "alya/j1/catalogue.zip") == "/jobs/j1/zip"
    assert links.private_path(SETTINGS, "alyaimg", "incoming/u1.jpg") is None
    assert links.private_path(SETTINGS, "artifacts", f"catalogue/ab/{SHA}.jpg") is None
    # And a photo's private link reads back to its storefront and id (relative, or absolute on the API)
    assert links.from_private_path(f"/images/{SHA}?website=blysk") == ("blysk", SHA)
    assert links.from_private_path(f"https://api.example/prod/images/{SHA}?website=alya") == ("alya", SHA)
    assert links.from_private_path(f"/images/{SHA}/caption?website=alya") is None
