from __future__ import annotations

from collections.abc import Callable

from listing_vision import aws


def test_endpoint_override_reaches_every_client(settings_env: Callable[..., None]) -> None:
    settings_env(AWS_ENDPOINT_URL="http://127.0.0.1:4999")
    assert aws.client("s3").meta.endpoint_url == "http://127.0.0.1:4999"
    assert aws.client("dynamodb").meta.endpoint_url == "http://127.0.0.1:4999"


def test_without_override_clients_talk_to_aws(settings_env: Callable[..., None]) -> None:
    settings_env(unset=("AWS_ENDPOINT_URL",), AWS_REGION="eu-west-1")
    assert aws.client("dynamodb").meta.endpoint_url == "https://dynamodb.eu-west-1.amazonaws.com"


def test_clients_are_reused_and_retry_in_standard_mode(settings_env: Callable[..., None]) -> None:
    settings_env(AWS_MAX_ATTEMPTS="7")
    first = aws.client("s3")
    assert aws.client("s3") is first
    assert first.meta.config.retries == {"mode": "standard", "total_max_attempts": 7}


def test_a_service_can_bound_its_own_read_timeout(settings_env: Callable[..., None]) -> None:
    settings_env(AWS_READ_TIMEOUT_S="30")
    assert aws.client("s3").meta.config.read_timeout == 30
    assert aws.client("sagemaker-runtime", read_timeout_s=10).meta.config.read_timeout == 10
