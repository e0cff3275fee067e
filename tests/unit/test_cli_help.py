"""Every command-line tool of the repository answers `--help`: argparse formats every help string
with `%` (so a literal `%` must be `%%`), and a bad one only fails when help is asked for. The
tools are found by their source (each file that builds an ArgumentParser), so a new one is covered
without being listed; each runs in its own process, as a person runs it, and the help of every
subcommand is formatted too."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LIBRARY = ROOT / "layers" / "common"
SKIPPED = {".venv", "node_modules", "cdk.out", "tests", "build", ".local-state"}

# Run in the child: before the tool parses its arguments, format the help of its parser and of
# every subcommand's parser (argparse only formats a subcommand's help when that subcommand is
# asked for), then let it parse `--help` as usual.
SHIM = """
import argparse, runpy, sys

original = argparse.ArgumentParser.parse_known_args

def format_all(parser):
    parser.format_help()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                format_all(sub)

def parse_known_args(self, args=None, namespace=None):
    format_all(self)
    return original(self, args, namespace)

argparse.ArgumentParser.parse_known_args = parse_known_args
target = sys.argv[1]
sys.argv = [target, "--help"]
if target.endswith(".py"):
    runpy.run_path(target, run_name="__main__")
else:
    runpy.run_module(target, run_name="__main__", alter_sys=True)
"""


def command_line_tools() -> list[str]:
    """Each tool as `python -m` runs it (a module), or its path when it is a plain script."""
    tools = []
    for path in sorted(ROOT.rglob("*.py")):
        relative = path.relative_to(ROOT)
        hidden = any(part.startswith(".") for part in relative.parts)  # .venv, .git, a developer's scratch folders
        if hidden or SKIPPED & set(relative.parts) or "ArgumentParser(" not in path.read_text(encoding="utf-8"):
            continue
        in_library = path.is_relative_to(LIBRARY)
        if not in_library and not (path.parent / "__init__.py").exists():
            tools.append(str(relative))  # a script, run by its path
            continue
        base = path.relative_to(LIBRARY) if in_library else relative
        parts = list(base.with_suffix("").parts)
        tools.append(".".join(parts[:-1] if parts[-1] == "__main__" else parts))
    return tools


def test_the_tools_are_found() -> None:
    tools = command_line_tools()
    assert {"listing_vision.realestate.migrate", "local", "evaluation.search_quality"} <= set(tools), tools


@pytest.mark.parametrize("tool", command_line_tools())
def test_help_exits_0(tool: str) -> None:
    # Given a command-line tool, when it is asked for --help
    done = subprocess.run(
        [sys.executable, "-c", SHIM, tool],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": f"{LIBRARY}{os.pathsep}{ROOT}"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    # Then it prints its usage and exits 0, every subcommand's help formatted too
    assert done.returncode == 0, done.stderr[-2000:]
    assert "usage:" in done.stdout
