"""The SageMaker embedder batches its requests under the endpoint's payload limit: InvokeEndpoint's
6 MB by default, serverless inference's 4 MB when the stack sets SAGEMAKER_MAX_PAYLOAD_BYTES."""

from __future__ import annotations

import pytest

from listing_vision.config import Settings
from listing_vision.embeddings.sagemaker import MAX_PAYLOAD_BYTES, PART_OVERHEAD_BYTES, SageMakerEmbedder


def test_requests_stay_under_a_serverless_endpoints_payload_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the setting a serverless stage's functions get
    monkeypatch.setenv("SAGEMAKER_MAX_PAYLOAD_BYTES", "3500000")
    cap = Settings().sagemaker_max_payload_bytes
    embedder = SageMakerEmbedder("listing-vision-dev-clip", client=None, dim=4, max_payload_bytes=cap)
    # When eight 900 KB images are batched for the endpoint
    batches = list(embedder._batches([b"x" * 900_000] * 8, None))
    # Then no request reaches 4 MB (three images a request), and every image goes once
    assert [len(batch) for batch in batches] == [3, 3, 2]
    assert all(sum(len(i) + PART_OVERHEAD_BYTES for i in batch) <= cap < 4_000_000 for batch in batches)


def test_the_default_cap_is_real_time_inferences(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given no setting (a real-time endpoint)
    monkeypatch.delenv("SAGEMAKER_MAX_PAYLOAD_BYTES", raising=False)
    # Then requests may use up to 5.5 MB of InvokeEndpoint's 6 MB
    assert Settings().sagemaker_max_payload_bytes == MAX_PAYLOAD_BYTES == 5_500_000
    # and a cap beyond it is refused at start
    monkeypatch.setenv("SAGEMAKER_MAX_PAYLOAD_BYTES", "7000000")
    with pytest.raises(ValueError, match="sagemaker_max_payload_bytes"):
        Settings()
