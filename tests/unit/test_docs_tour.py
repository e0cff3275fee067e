"""The tour lives once: the README shows the Quickstart's tour verbatim (between the `the tour begins` and
`the tour ends` comments), so the two cannot drift. The Quickstart's copy is the one the docs-example test
runs (tests/e2e/test_docs_examples.py)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TOUR = re.compile(r"<!-- the tour begins.*?<!-- the tour ends -->", re.DOTALL)


def test_the_readme_tour_is_the_quickstart_tour_verbatim() -> None:
    # Given the Quickstart and the README
    quickstart = TOUR.findall((ROOT / "docs" / "quickstart.md").read_text(encoding="utf-8"))
    readme = TOUR.findall((ROOT / "README.md").read_text(encoding="utf-8"))
    # Then each has the tour once, and the README's is the Quickstart's, character for character
    assert len(quickstart) == 1 and len(readme) == 1
    assert readme[0] == quickstart[0]
    # And the tour is runnable examples (bash blocks), not prose only
    assert quickstart[0].count("```bash") >= 2
