"""What the browser test needs besides Python packages, installed here when missing (CI runs as root):
Debian's Chromium (`apt-get install chromium`; Playwright drives it by path and downloads no browser)
and axe-core, pinned in tests/browser/package-lock.json (`npm ci`). A missing piece that cannot be
installed fails the test: it is never skipped."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

HERE = Path(__file__).parent
AXE = HERE / "node_modules" / "axe-core" / "axe.min.js"
CHROMIUM_NAMES = ("chromium", "chromium-browser")
# Chromium's own sandbox needs user namespaces, which containers (and root) often lack
CHROMIUM_ARGS = ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"]
# How long a browser test waits for the page to reach a state (Playwright's `expect`, an action's
# actionability, wait_for_function) before failing. A bound on a wait, never a measure: under CI (two
# xdist workers and each one's local stack on two cores) a generation or an upload takes far longer
# than Playwright's default 5 s for `expect`, which failed tests that were waiting on a right answer.
BROWSER_WAIT_MS = 120_000


def _run(command: list[str], **env: str) -> None:
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, **env}, check=False)
    if done.returncode != 0:
        pytest.fail(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-2000:]}")


def chromium() -> str:
    """The path of Debian's Chromium, installed with apt-get when it is not there yet."""
    found = next((shutil.which(name) for name in CHROMIUM_NAMES if shutil.which(name)), None)
    if found:
        return found
    if os.geteuid() != 0:
        pytest.fail("Chromium is not installed and only root can install it: sudo apt-get install -y chromium")
    apt = {"DEBIAN_FRONTEND": "noninteractive"}
    _run(["apt-get", "update", "-q"], **apt)
    _run(["apt-get", "install", "-y", "-q", "--no-install-recommends", "chromium"], **apt)
    found = shutil.which("chromium")
    if not found:
        pytest.fail("apt-get installed chromium but no `chromium` command is on PATH")
    return found


def axe_source() -> str:
    """axe-core's script, as pinned by tests/browser/package-lock.json."""
    if not AXE.exists():
        _run(["npm", "ci", "--no-audit", "--no-fund", "--prefix", str(HERE)])
    return AXE.read_text(encoding="utf-8")
