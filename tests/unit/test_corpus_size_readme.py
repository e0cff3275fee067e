"""The README's count of the bad-input corpus is the corpus's size, not a number typed once."""

from __future__ import annotations

import re
from pathlib import Path

from tests.integration.bad_input.test_bad_input_corpus import CASES

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_states_the_corpus_size() -> None:
    # Given the README's mentions of the corpus, Then each gives the number of cases it holds
    text = README.read_text()
    mentions = re.findall(r"bad-input corpus \((\d+) cases", text) + re.findall(
        r"`tests/integration/bad_input/` sends (\d+)", text
    )
    assert mentions and {int(found) for found in mentions} == {len(CASES)}, f"the corpus has {len(CASES)} cases"
