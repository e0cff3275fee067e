"""`python -m local` started as a person starts it, for the end-to-end tests: a separate process on a
state folder, its URLs read from what it prints, stopped with Ctrl-C at the end (unless the test has
killed it)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.child_output import finish, read_on

ROOT = Path(__file__).resolve().parents[1]


def clean_environment() -> dict[str, str]:
    """This process's environment without what a local stack started in it has set (a person's shell
    has none of it)."""
    prefixes = ("AWS_", "MILVUS_", "OPENSEARCH_", "SAGEMAKER_", "CLIP_", "MOTO_", "POWERTOOLS_")
    return {name: value for name, value in os.environ.items() if not name.startswith(prefixes)}


def local_command(state_dir: Path, *extra: str, demo_listings: int = 0) -> list[str]:
    """The command line of a stack on `state_dir`, every port a free one."""
    ports = ["--port", "0", "--moto-port", "0", "--opensearch-port", "0"]
    where = ["--state-dir", str(state_dir), "--demo-listings", str(demo_listings)]
    return [sys.executable, "-m", "local", *ports, *where, *extra]


@dataclass
class Started:
    process: subprocess.Popen[str]
    urls: dict[str, str]  # api, moto, opensearch; provisioning: the line saying what it provisioned


@contextmanager
def local_stack_process(state_dir: Path, *extra: str, demo_listings: int = 120) -> Iterator[Started]:
    """The stack, once it printed READY. At the end, if it still runs, Ctrl-C, and (unless the test failed
    already) a clean stop is checked: exit status 0 and "Stopped." A test may kill it (-9) itself."""
    process = subprocess.Popen(
        local_command(state_dir, *extra, demo_listings=demo_listings),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**clean_environment(), "PYTHONUNBUFFERED": "1", "CAPTION_PROVIDER": "offline"},
    )
    urls: dict[str, str] = {}
    output: list[str] = []
    assert process.stdout is not None
    deadline = time.monotonic() + 300  # a hang guard, generous for a loaded machine
    body_failed = False
    try:
        while time.monotonic() < deadline and "api" not in urls:
            line = process.stdout.readline()
            if not line:
                break
            output.append(line)
            if line.startswith("  AWS (moto)"):
                urls["moto"] = line.split()[2]
            elif line.startswith("  OpenSearch"):
                urls["opensearch"] = line.split()[1]
            elif line.startswith("  Provisioning"):
                urls["provisioning"] = line.strip()
            elif line.startswith("READY "):
                urls["api"] = line.split()[1]
        started = len(output)
        reader = read_on(process, output)  # on: a pipe left unread fills, and the stack blocks writing to it
        assert "api" in urls, "".join(output)
        yield Started(process, urls)
    except BaseException:
        body_failed = True
        raise
    finally:
        stopped_by_us = process.poll() is None
        if stopped_by_us:
            process.send_signal(signal.SIGINT)  # Ctrl-C, as a person would stop it
        # a hang guard, generous for a loaded machine; killed past it, having printed its thread stacks
        # (the stop dumps them each minute)
        exited = finish(process, reader, 300)
        print("".join(output))  # shown when the test fails
        if not exited and not body_failed:
            raise AssertionError("the stack did not stop within 300 s of Ctrl-C:\n" + "".join(output))
        if stopped_by_us and not body_failed:
            assert process.returncode == 0, "".join(output)
            assert "Stopped." in "".join(output[started:]), "".join(output)


def refused_start(command: list[str]) -> str:
    """Run a start that must be refused: it ends at once with status 1, without a traceback; what it said
    on stderr."""
    try:
        ended = subprocess.run(
            command,
            cwd=ROOT,
            capture_output=True,
            text=True,
            env={**clean_environment(), "PYTHONUNBUFFERED": "1"},
            timeout=300,  # a hang guard, generous for a loaded machine
        )
    except subprocess.TimeoutExpired as hung:
        raise AssertionError(f"the start hung:\n{hung.stdout!r}\n{hung.stderr!r}") from None
    assert ended.returncode == 1, ended.stdout + ended.stderr
    assert "Traceback" not in ended.stdout + ended.stderr
    return ended.stderr
