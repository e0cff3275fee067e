"""The docs site (mkdocs.yml, docs/) builds strictly, and the README's links lead to files that exist,
so a broken link, a missing page or a moved heading fails the suite, not a reader."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"


def test_the_docs_site_builds_strictly(tmp_path: Path) -> None:
    # Given the docs as committed, When MkDocs builds them with --strict (as `make docs` does)
    built = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    # Then it succeeds: no broken link or anchor, no page left out of the nav
    assert built.returncode == 0, built.stderr[-4000:]
    # And every page of the nav was rendered
    nav = re.findall(r":\s*([\w-]+)\.md$", (ROOT / "mkdocs.yml").read_text(), flags=re.MULTILINE)
    assert nav and all((tmp_path / "site" / ("" if page == "index" else page) / "index.html").is_file() for page in nav)


def test_the_readme_links_lead_to_files_and_headings_that_exist() -> None:
    # Given every relative link of the README (GitHub renders them; MkDocs never sees the README)
    readme = (ROOT / "README.md").read_text()
    links = re.findall(r"\]\(((?!https?:)[^)#\s]*)(?:#([^)\s]+))?\)", readme)
    assert links
    for target, anchor in links:
        path = ROOT / target
        # Then each names a file or folder of the repository
        assert path.exists(), target
        # and an anchor names a heading of that page (GitHub's slugs: lower case, punctuation dropped)
        if anchor:
            headings = re.findall(r"^#+ (.+)$", path.read_text(), flags=re.MULTILINE)
            slugs = {re.sub(r"[^\w\- ]", "", h).strip().lower().replace(" ", "-") for h in headings}
            assert anchor in slugs, f"{target}#{anchor}"


def test_each_generated_block_lives_on_exactly_one_docs_page() -> None:
    # Given the generated blocks (`<!-- NAME:start … -->`) of the README and the docs pages
    pages = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]
    found = {page.name: re.findall(r"<!-- ([\w-]+):start", page.read_text()) for page in pages}
    names = [name for blocks in found.values() for name in blocks]
    # Then each appears once, on a docs page (the README carries none: the generators write into docs/)
    assert len(names) == len(set(names)) >= 9, found
    assert found["README.md"] == []
