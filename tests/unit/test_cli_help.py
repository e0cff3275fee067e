"""Every command-line tool of the repository answers `--help`: argparse formats every help string
with `%` (so a literal `%` must be `%%`), and a bad one only fails when help is asked for. The
tools are found by their source (each file that builds an ArgumentParser), so a new one is covered
without being listed; each is run as `python -m` (or a script by its path) runs it, and the help of
every subcommand is formatted too. All of them run one after another in one child process (a Python
start and the shared imports once, not once per tool: most of this module's time was those), each
with its own `__main__` and its own output, its exit status kept per tool."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
LIBRARY = ROOT / "layers" / "common"
SKIPPED = {".venv", "node_modules", "cdk.out", "tests", "build", ".local-state"}

# Run in the child, for each tool named on its command line: before the tool parses its arguments,
# format the help of its parser and of every subcommand's parser (argparse only formats a subcommand's
# help when that subcommand is asked for), then let it parse `--help` as usual. Each tool's exit status,
# output and error output (a traceback, if it raised) are written as one JSON object to the file named
# first (not to stdout, which a tool could write to past the redirection).
SHIM = """
import argparse, contextlib, io, json, runpy, sys, traceback

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
results = {}
report, targets = sys.argv[1], sys.argv[2:]
for target in targets:
    out, err, code = io.StringIO(), io.StringIO(), None
    sys.argv = [target, "--help"]
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            if target.endswith(".py"):
                runpy.run_path(target, run_name="__main__")
            else:
                runpy.run_module(target, run_name="__main__", alter_sys=True)
        except SystemExit as exit:
            code = exit.code if isinstance(exit.code, int) else (0 if exit.code is None else 1)
        except BaseException:
            traceback.print_exc()
            code = "raised"
    results[target] = {"code": code, "stdout": out.getvalue(), "stderr": err.getvalue()}
with open(report, "w") as file:
    json.dump(results, file)
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


@pytest.fixture(scope="module")
def helps(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Each tool's answer to --help: its exit status, output and error output."""
    report = tmp_path_factory.mktemp("cli-help") / "answers.json"
    done = subprocess.run(
        [sys.executable, "-c", SHIM, str(report), *command_line_tools()],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": f"{LIBRARY}{os.pathsep}{ROOT}"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return dict(json.loads(report.read_text()))


@pytest.mark.parametrize("tool", command_line_tools())
def test_help_exits_0(helps: dict[str, dict[str, Any]], tool: str) -> None:
    # Given a command-line tool, when it is asked for --help
    answer = helps[tool]
    # Then it prints its usage and exits 0, every subcommand's help formatted too
    assert answer["code"] == 0, answer["stderr"][-2000:]
    assert "usage:" in answer["stdout"]
