"""What a release of an API function is rolled back on, as the functions emit it: an API function
answers its failures as 5xx responses (Lambda counts none of them as errors), so the resolver counts
each 5xx answer as `Answered5xx` for the version running (Lambda's AWS_LAMBDA_FUNCTION_VERSION), and
the release's alarm watches the new version's count (infra/constructs/monitoring.py)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from doubles.loopback import ANTHROPIC_MESSAGES, LoopbackServer, anthropic_message
from local.stack import LocalStack
from tests.images import fresh_image
from tests.integration.test_captions import caption


@pytest.fixture
def malformed_captions(provider_env: Callable[..., None]) -> Iterator[None]:
    """The caption provider answering every request with a reply no caption can be read from."""
    server = LoopbackServer({ANTHROPIC_MESSAGES: lambda request: anthropic_message("no json here")}).start()
    provider_env(CAPTION_PROVIDER="anthropic", ANTHROPIC_API_KEY="sk-ant-test", ANTHROPIC_BASE_URL=server.url)
    yield
    server.stop()


def counted(output: str, name: str) -> list[dict[str, Any]]:
    """The EMF records in the functions' output that count `name`."""
    records = [json.loads(line) for line in output.splitlines() if line.startswith('{"_aws"')]
    return [
        record
        for record in records
        for group in record["_aws"]["CloudWatchMetrics"]
        if {"Name": name, "Unit": "Count"} in group["Metrics"]
    ]


def test_a_route_answering_5xx_counts_it_for_the_version_running(
    local_stack: LocalStack,
    malformed_captions: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given the caption function running as version 8 (what Lambda tells a published version)
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_VERSION", "8")
    capsys.readouterr()
    # When a request fails upstream (the provider's replies hold no caption)
    answer = caption(local_stack, fresh_image(20_101))
    # Then it is answered 502, and that answer is counted once, for version 8, in the functions' namespace
    assert answer.status_code == 502 and answer.json()["error"]["code"] == "malformed_model_reply", answer.text
    (record,) = counted(capsys.readouterr().out, "Answered5xx")
    (group,) = record["_aws"]["CloudWatchMetrics"]
    assert group["Namespace"] == "ListingVision" and group["Dimensions"] == [["service", "ExecutedVersion"]]
    assert (record["ExecutedVersion"], record["Answered5xx"]) == ("8", [1.0])


def test_a_refused_request_is_not_counted_as_a_5xx(
    local_stack: LocalStack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given the caption function running as version 8
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_VERSION", "8")
    capsys.readouterr()
    # When a request is the caller's fault (no photo)
    answer = caption(local_stack, None)
    # Then it is answered 4xx and counts nothing a release is rolled back on
    assert 400 <= answer.status_code < 500, answer.text
    assert counted(capsys.readouterr().out, "Answered5xx") == []
