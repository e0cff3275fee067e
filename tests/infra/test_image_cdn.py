"""Links that last on AWS (`image_links` `cdn`): a CloudFront distribution per image bucket, reading it
through origin access control, each bucket policy letting its distribution read only the declared
prefixes (`listing_vision.jewelry.links`), and every function told the distributions' URLs."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.infra.conftest import EXISTING_ALYA_BUCKET, Synthesized


def _statements(synthesized: Synthesized, bucket_setting: str) -> list[dict[str, Any]]:
    bucket = synthesized.logical_id(synthesized.stack.storage.buckets[bucket_setting])
    policies = synthesized.of_type("AWS::S3::BucketPolicy").values()
    policy = next(p for p in policies if p["Properties"]["Bucket"] == {"Ref": bucket})
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    return [s for s in statements if "cloudfront.amazonaws.com" in str(s.get("Principal"))]


def _resources(statement: dict[str, Any]) -> list[Any]:
    found = statement["Resource"]
    return found if isinstance(found, list) else [found]


def test_each_image_bucket_has_a_distribution_reading_it_through_origin_access_control(
    synthesized: Synthesized,
) -> None:
    # Given the synthesized stack (two storefronts created by it, and the generated bucket)
    console = synthesized.logical_id(synthesized.stack.console.distribution)  # the review console's own
    distributions = {n: d for n, d in synthesized.of_type("AWS::CloudFront::Distribution").items() if n != console}
    controls = {
        n: c
        for n, c in synthesized.of_type("AWS::CloudFront::OriginAccessControl").items()
        if not n.startswith("ConsoleDistribution")
    }
    # Then there is one distribution per image bucket, each with the one origin access control, HTTPS only
    assert len(distributions) == 3 and len(controls) == 1
    (control,) = controls
    for distribution in distributions.values():
        config = distribution["Properties"]["DistributionConfig"]
        (origin,) = config["Origins"]
        assert origin["OriginAccessControlId"] == {"Fn::GetAtt": [control, "Id"]}
        assert config["DefaultCacheBehavior"]["ViewerProtocolPolicy"] == "redirect-to-https"
        assert config["DefaultCacheBehavior"]["AllowedMethods"] == ["GET", "HEAD"]
    assert controls[control]["Properties"]["OriginAccessControlConfig"]["SigningBehavior"] == "always"


@pytest.mark.parametrize("storefront", ["alya", "blysk"])
def test_a_storefront_bucket_lets_its_distribution_read_only_the_catalogue(
    synthesized: Synthesized, storefront: str
) -> None:
    # When the storefront bucket's policy is read
    (statement,) = _statements(synthesized, f"{storefront}_bucket")
    # Then CloudFront may only GetObject under catalogue/ (not incoming/ uploads, not list), from its distribution
    assert statement["Action"] == "s3:GetObject" and statement["Effect"] == "Allow"
    (resource,) = _resources(statement)
    assert resource["Fn::Join"][1][-1] == "/catalogue/*"
    source = statement["Condition"]["StringEquals"]["AWS:SourceArn"]
    distribution = synthesized.logical_id(synthesized.stack.cdn.distributions[f"{storefront}_bucket"])
    assert {"Ref": distribution} in source["Fn::Join"][1]


def test_the_generated_bucket_is_readable_whole_by_its_distribution_only(synthesized: Synthesized) -> None:
    (statement,) = _statements(synthesized, "generated_bucket")
    (resource,) = _resources(statement)
    assert resource["Fn::Join"][1][-1] == "/*"
    # And no other bucket (artifacts, access logs) is readable by CloudFront
    assert not _statements(synthesized, "artifacts_bucket")


def test_every_function_gets_the_link_mode_and_the_distribution_urls(synthesized: Synthesized) -> None:
    # When a function's environment is read
    functions = synthesized.of_type("AWS::Lambda::Function").values()
    dedupe = next(f for f in functions if f["Properties"].get("FunctionName") == "listing-vision-test-dedupe")
    variables = dedupe["Properties"]["Environment"]["Variables"]
    # Then links are cdn by default and CDN_URLS names each distribution's domain for its bucket
    assert variables["IMAGE_LINKS"] == "cdn"
    rendered = json.dumps(variables["CDN_URLS"])
    for setting, distribution in synthesized.stack.cdn.distributions.items():
        assert synthesized.logical_id(distribution) in rendered
        assert synthesized.logical_id(synthesized.stack.storage.buckets[setting]) in rendered


def test_an_existing_storefront_bucket_gets_no_distribution_and_keeps_presigned_links(first_stage: Synthesized) -> None:
    # Given a stage whose alya storefront names a bucket that already exists (the first stage)
    existing = first_stage
    # Then only blysk's and the generated bucket have a distribution (the existing bucket's policy is not ours)
    assert set(existing.stack.cdn.distributions) == {"blysk_bucket", "generated_bucket"}
    assert EXISTING_ALYA_BUCKET not in json.dumps(existing.of_type("AWS::S3::BucketPolicy"))
