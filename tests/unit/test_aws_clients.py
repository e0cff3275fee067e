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


def test_clients_share_one_session_until_the_clients_are_reset(settings_env: Callable[..., None]) -> None:
    # Given clients of two services made from the same settings
    settings_env(AWS_ACCESS_KEY_ID="first", AWS_SECRET_ACCESS_KEY="secret")
    s3, dynamodb = aws.client("s3"), aws.client("dynamodb")
    # Then they read the endpoint rules and the service models through one loader (each file parsed once)
    assert s3._loader is dynamodb._loader
    # And when the credentials change and the clients are reset, the next clients use the new ones
    settings_env(AWS_ACCESS_KEY_ID="second", AWS_SECRET_ACCESS_KEY="secret")
    fresh = aws.client("s3")
    assert fresh is not s3
    assert fresh._request_signer._credentials.access_key == "second"
    # through the same loader (botocore's files never change: a reset parses none of them again), whose
    # search paths do not grow with each new session
    assert fresh._loader is s3._loader
    assert len(fresh._loader.search_paths) == len(set(fresh._loader.search_paths))
