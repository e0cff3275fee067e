"""`migrate --zpids`: the listing ids a small run acts on are read strictly, before anything runs."""

from __future__ import annotations

import pytest

from listing_vision.realestate.migrate import chosen_zpids


def test_spaces_around_ids_are_dropped() -> None:
    # Given a list as people type it, When it is read, Then each id is itself
    assert chosen_zpids(" 12345, 678-9 ,,abc_1 ") == ["12345", "678-9", "abc_1"]


@pytest.mark.parametrize(
    "lookalike",
    [
        "\uff11\uff12\uff13",  # full-width digits
        "\u0661\u0662\u0663",  # Arabic-Indic digits
        "123\u200b",  # a zero-width space
        "12\u200d3",  # a zero-width joiner
        "\u0430bc",  # a Cyrillic a
        "123\u00a0",  # a non-breaking space (only ASCII spaces and tabs are dropped)
        "1" * 41,
        "../x",
    ],
)
def test_an_id_that_only_looks_like_one_stops_the_command(lookalike: str) -> None:
    # Given a --zpids list holding an id that is not an ASCII listing id beside a good one
    # When it is read, Then the command stops, naming it, before any listing is touched
    with pytest.raises(SystemExit, match="is not a listing id"):
        chosen_zpids(f"12345,{lookalike}")
