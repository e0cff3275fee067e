"""The client factory against creating a client for every request.

Both fetch the same S3 object from the local stack's moto server, one request at a time; the
baseline builds a new boto3 client each time (per-request clients), the figure reuses
the cached one from `listing_vision.aws`. On AWS the gap is larger: a new client also pays TLS.
"""

from __future__ import annotations

import statistics

import boto3

from bench.figures import Figure, percentile, timed_ms
from listing_vision import aws
from local.stack import LocalStack

REPEATS = 200


def run(stack: LocalStack) -> list[Figure]:
    bucket, key = stack.settings.alya_bucket, "bench/object.bin"
    aws.client("s3").put_object(Bucket=bucket, Key=key, Body=b"x" * 50_000)

    def cached() -> None:
        aws.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()

    def per_request() -> None:
        client = boto3.session.Session().client("s3", endpoint_url=stack.moto_url, region_name="us-east-1")
        client.get_object(Bucket=bucket, Key=key)["Body"].read()

    # Interleave the two so machine noise hits both alike.
    fast: list[float] = []
    slow: list[float] = []
    for _ in range(REPEATS // 20):
        fast += timed_ms(cached, 20, warmup=1)
        slow += timed_ms(per_request, 20, warmup=1)
    name = "aws_clients"
    baseline = "new client per request"
    return [
        Figure(name, "S3 GET p50, cached client", statistics.median(fast), statistics.median(slow), "ms", baseline),
        Figure(name, "S3 GET p95, cached client", percentile(fast, 95), percentile(slow, 95), "ms", baseline),
    ]
