"""The client factory against what a competent user writes: one boto3 client made once (at import,
with boto3's defaults) and reused.

Both fetch the same S3 object from the local stack's moto server, one request at a time,
interleaved. The factory's point is not speed (both reuse one client and its connections) but
its settings: endpoint overrides, standard retries, timeouts, thread-safe creation. So the
ratio is expected near 1×; a new client per request (the strawman this bench compared against
before) is not measured.
"""

from __future__ import annotations

import statistics

import boto3

from bench.figures import Figure, percentile, timed_ms
from listing_vision import aws
from local.stack import LocalStack

REPEATS = 200


def run(stack: LocalStack) -> list[Figure]:
    bucket, key = stack.settings.bucket_for(stack.settings.default_storefront), "bench/object.bin"
    aws.client("s3").put_object(Bucket=bucket, Key=key, Body=b"x" * 50_000)

    def cached() -> None:
        aws.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()

    module_level = boto3.session.Session().client("s3", endpoint_url=stack.moto_url, region_name="us-east-1")

    def reused() -> None:
        module_level.get_object(Bucket=bucket, Key=key)["Body"].read()

    # Interleave the two so machine noise hits both alike.
    fast: list[float] = []
    plain: list[float] = []
    for _ in range(REPEATS // 20):
        fast += timed_ms(cached, 20, warmup=1)
        plain += timed_ms(reused, 20, warmup=1)
    name = "aws_clients"
    baseline = "one boto3 client made at import, defaults"
    return [
        Figure(name, "S3 GET p50, cached client", statistics.median(fast), statistics.median(plain), "ms", baseline),
        Figure(name, "S3 GET p95, cached client", percentile(fast, 95), percentile(plain, 95), "ms", baseline),
    ]
