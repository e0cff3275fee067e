"""Stable links to the product photos (`image_links` `cdn`): a CloudFront distribution per image bucket
(each storefront's and the generated images'), reading it through origin access control.

One distribution per bucket keeps each URL `https://<distribution domain>/<key>` (CloudFront forwards the
path as it is, so a shared distribution would need a function to strip a bucket prefix) and each bucket
policy its own: the distribution may `s3:GetObject` only the prefixes `listing_vision.jewelry.links`
declares (`catalogue/*` of a storefront bucket, the whole generated bucket), the same declaration the
local stack's CDN server (local/cdn.py) serves from. Uploads (`incoming/`) stay private, and without
`s3:ListBucket` a missing key is a 403, telling nothing. A storefront bucket named in the stage context
(not created here) is not ours to change: it gets no distribution and its links stay presigned.
"""

from __future__ import annotations

import json

from aws_cdk import Stack
from aws_cdk import aws_cloudfront as cloudfront
from aws_cdk import aws_cloudfront_origins as origins
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra.config import DeploymentConfig
from infra.nag import acknowledge
from listing_vision.jewelry.links import GENERATED_PREFIXES, STOREFRONT_PREFIXES
from listing_vision.storefronts import bucket_setting

NAG_REASONS = {
    "CFR1": "Product photos for storefronts sold worldwide: no country is to be refused.",
    "CFR2": "Static, public-by-design product photos behind origin access control; the distribution answers "
    "GET/HEAD of cached objects only, so there is no application for a WAF to protect.",
    "CFR3": "CloudFront standard logs need an ACL-enabled bucket, and the access-log bucket enforces bucket-owner "
    "ownership (no ACLs); S3 server access logs of the origin bucket record every object CloudFront reads.",
    "CFR4": "The default *.cloudfront.net certificate allows no minimum TLS version to be set; viewers are redirected "
    "to HTTPS and a custom domain with a TLSv1.2 policy can be added without changing the links' shape.",
}


class ImageCdn(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, *, config: DeploymentConfig, buckets: dict[str, s3.IBucket]
    ) -> None:
        super().__init__(scope, construct_id)
        self.config = config
        self.access = cloudfront.S3OriginAccessControl(self, "Access", signing=cloudfront.Signing.SIGV4_ALWAYS)
        readable = {
            **{
                bucket_setting(name): STOREFRONT_PREFIXES
                for name in config.storefront_names
                if not config.storefront(name).bucket  # an existing bucket's policy is not ours
            },
            "generated_bucket": GENERATED_PREFIXES,
        }
        self.buckets = {setting: buckets[setting] for setting in readable}
        self.distributions: dict[str, cloudfront.Distribution] = {
            setting: self._distribution(setting, buckets[setting], prefixes) for setting, prefixes in readable.items()
        }

    def _distribution(self, setting: str, bucket: s3.IBucket, prefixes: tuple[str, ...]) -> cloudfront.Distribution:
        name = "".join(part.capitalize() for part in setting.split("_"))
        distribution = cloudfront.Distribution(
            self,
            name,
            comment=self.config.name(setting.replace("_", "-"))[:128],
            default_behavior=cloudfront.BehaviorOptions(
                origin=origins.S3BucketOrigin.with_bucket_defaults(
                    bucket, origin_access_control_id=self.access.origin_access_control_id
                ),
                viewer_protocol_policy=cloudfront.ViewerProtocolPolicy.REDIRECT_TO_HTTPS,
                allowed_methods=cloudfront.AllowedMethods.ALLOW_GET_HEAD,
                cache_policy=cloudfront.CachePolicy.CACHING_OPTIMIZED,
            ),
            price_class=cloudfront.PriceClass.PRICE_CLASS_100,
        )
        source = Stack.of(self).format_arn(
            service="cloudfront", region="", resource="distribution", resource_name=distribution.distribution_id
        )
        bucket.add_to_resource_policy(
            iam.PolicyStatement(
                sid=f"CloudFrontReads{name}",
                actions=["s3:GetObject"],
                resources=[bucket.arn_for_objects(f"{prefix}*") for prefix in prefixes],
                principals=[iam.ServicePrincipal("cloudfront.amazonaws.com")],
                conditions={"StringEquals": {"AWS:SourceArn": source}},
            )
        )
        for rule, reason in NAG_REASONS.items():
            acknowledge(distribution, f"AwsSolutions-{rule}", reason)
        return distribution

    def image_buckets(self) -> list[str]:
        """The settings of every bucket whose photos the API links to: each storefront's, the generated one."""
        return [*(bucket_setting(name) for name in self.config.storefront_names), "generated_bucket"]

    def environment(self) -> dict[str, str]:
        """IMAGE_LINKS and CDN_URLS (bucket → `https://<distribution domain>`) for every function."""
        urls = {
            self.buckets[setting].bucket_name: f"https://{distribution.distribution_domain_name}"
            for setting, distribution in self.distributions.items()
        }
        return {"IMAGE_LINKS": self.config.image_links, "CDN_URLS": json.dumps(urls)}
