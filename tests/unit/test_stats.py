"""The Wilson interval every published figure carries, against values computed independently."""

from __future__ import annotations

import pytest

from evaluation.stats import Proportion, cell, wilson


@pytest.mark.parametrize(
    ("successes", "n", "low", "high"),
    [
        # Brown, Cai and DasGupta (2001) and R's binom.confint(method = "wilson"), 95 %:
        (0, 10, 0.0, 0.2775),
        (10, 10, 0.7225, 1.0),
        (5, 10, 0.2366, 0.7634),
        (1, 20, 0.0089, 0.2361),
        (81, 263, 0.2553, 0.3662),
        (73, 73, 0.9500, 1.0),
    ],
)
def test_the_interval_matches_published_values(successes: int, n: int, low: float, high: float) -> None:
    # Given a count of successes out of n
    # When its 95 % Wilson interval is computed
    got_low, got_high = wilson(successes, n)
    # Then it matches the reference to four places and contains the point estimate
    assert got_low == pytest.approx(low, abs=1e-4) and got_high == pytest.approx(high, abs=1e-4)
    assert got_low <= successes / n <= got_high


def test_an_empty_sample_says_nothing_and_bad_counts_are_refused() -> None:
    # Given no observations, the interval is the whole range; impossible counts raise
    assert wilson(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError):
        wilson(3, 2)
    with pytest.raises(ValueError):
        wilson(-1, 2)


def test_a_proportion_carries_its_sample_size_and_interval_into_json_and_text() -> None:
    # Given 73 of 73
    figure = Proportion(73, 73).as_json()
    # Then its JSON names n and the interval, and its table cell shows all three
    assert figure == {"value": 1.0, "successes": 73, "n": 73, "ci95": [0.95, 1.0]}
    assert cell(figure) == "1.000 (n 73; 0.950–1.000)"
    assert Proportion(0, 0).text() == "— (n 0)" and Proportion(0, 0).as_json()["value"] is None
    # A value on a rounding edge is rounded once, from the counts: 224/228 = 0.98246 is 0.982
    assert cell(Proportion(224, 228).as_json()).startswith("0.982 ")
