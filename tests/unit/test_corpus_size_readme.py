"""The count of the bad-input corpus in the README and the docs is the corpus's size, not a number typed once."""

from __future__ import annotations

import re
from pathlib import Path

from tests.integration.bad_input.test_bad_input_corpus import CASES

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_the_readme_states_the_corpus_size() -> None:
    # Given the mentions of the corpus in the README and the docs pages, Then each gives the number of cases it holds
    text = "\n".join(page.read_text() for page in PAGES)
    mentions = re.findall(r"bad-input corpus \((\d+) cases", text) + re.findall(
        r"`tests/integration/bad_input/` sends (\d+)", text
    )
    assert mentions and {int(found) for found in mentions} == {len(CASES)}, f"the corpus has {len(CASES)} cases"
