"""One job per module, readable in one sitting: no Python module of the repository is over 450 lines.

A module that grows past it is doing two jobs; split it by job (as `local/powertools_state.py` was
split from the Lambda runtime) rather than raising the limit."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LIMIT = 450
SKIPPED = {".venv", "node_modules", "build", "cdk.out", ".git"}


def python_modules() -> list[Path]:
    return [
        path
        for path in ROOT.rglob("*.py")
        if not SKIPPED.intersection(path.relative_to(ROOT).parts) and not path.name.startswith(".")
    ]


def test_no_module_is_over_the_limit() -> None:
    # Given every Python module in the repository
    modules = python_modules()
    assert len(modules) > 100, "the walk found too few modules to mean anything"
    # When each is measured in lines
    too_long = {str(path.relative_to(ROOT)): n for path in modules if (n := len(path.read_text().splitlines())) > LIMIT}
    # Then none is over the limit
    assert too_long == {}, f"modules over {LIMIT} lines (split them by job): {too_long}"
