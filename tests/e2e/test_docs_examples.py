"""Every shell example of README.md and docs/*.md runs against a local stack (`python -m local`, as
`make run` starts it, on free ports and a fresh state folder), and its shown output is checked in
substance (tests/docs_examples.py says how). A block that cannot run here is marked not-run in the
markdown, and the list below names each: a new one fails until it is added, with its reason."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import docs_examples
from tests.docs_examples import Block, blocks, mismatches, pages, with_ports
from tests.local_process import clean_environment

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.e2e

# (page, first line of the block's fence) → why it cannot run here. Keep it short and honest.
NOT_RUN = {
    "README.md": 1,  # the two commands: `make run` is the stack the examples use, `make test` runs them
    "docs/quickstart.md": 1,  # the same two commands
    "docs/deploying.md": 5,  # AWS: bootstrap, deploy, CodeDeploy, CloudFormation, teardown
    "docs/embeddings.md": 1,  # downloads the CLIP weights from the Hugging Face hub
    "docs/operations.md": 2,  # rotates API Gateway keys of a deployed stage; adds a person to its user pool
}
COMMAND_TIMEOUT_S = 300  # a hang guard for one command, not a measure
MARKER = "__docs_example_done__"


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, int]]:
    api, moto, opensearch, cdn = free_ports(4)
    ports = {"api": api, "moto": moto, "opensearch": opensearch, "cdn": cdn}
    env = {
        **clean_environment(),
        "PYTHONUNBUFFERED": "1",
        "LOCAL_PORT": str(api),
        "LOCAL_MOTO_PORT": str(moto),
        "LOCAL_OPENSEARCH_PORT": str(opensearch),
        "LOCAL_CDN_PORT": str(cdn),
        "LOCAL_STATE_DIR": str(tmp_path_factory.mktemp("docs-state")),
    }
    for name in ("CAPTION_PROVIDER", "OPENAI_API_KEY", "ANTHROPIC_API_KEY", "LOCAL_AUTH"):
        env.pop(name, None)  # a newcomer's shell: no keys, the documented defaults
    # but 200 demo listings, not 1,588: the migration page's runs take seconds (the listing pages show
    # no figure that depends on how many)
    env["LOCAL_DEMO_LISTINGS"] = "200"
    log = (tmp_path_factory.mktemp("docs-log") / "local.log").open("w+")
    process = subprocess.Popen([sys.executable, "-m", "local"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 300  # a hang guard for a loaded machine
    try:
        while time.monotonic() < deadline and process.poll() is None:
            log.seek(0)
            if "READY " in log.read():
                break
            time.sleep(0.5)
        log.seek(0)
        assert process.poll() is None and "READY " in log.read(), Path(log.name).read_text()
        yield ports
    finally:
        process.send_signal(signal.SIGINT)  # Ctrl-C, as a person stops it: it saves its state first
        try:
            process.wait(timeout=300)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)
        log.close()


class Shell:
    """One bash for a page: commands in order, each one's output (stdout and stderr) and exit status."""

    def __init__(self, ports: dict[str, int]) -> None:
        env = {
            **clean_environment(),
            "LOCAL_PORT": str(ports["api"]),
            "LOCAL_MOTO_PORT": str(ports["moto"]),
            "LOCAL_OPENSEARCH_PORT": str(ports["opensearch"]),
            "LOCAL_CDN_PORT": str(ports["cdn"]),
            # the evaluation page's calibration on groups of the first 4 shipped photos (a dev and a test
            # design each), not all 10: the same command, 2.3x less verification (its shown output, the
            # verdicts' line, does not depend on how many)
            "CALIBRATE_DEMO_PHOTOS": "4",
        }
        self.process = subprocess.Popen(
            ["bash", "--noprofile", "--norc"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.run("set -o pipefail")

    def run(self, command: str) -> tuple[int, str]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(f"{command}\nprintf '\\n{MARKER} %s\\n' $?\n")
        self.process.stdin.flush()
        lines: list[str] = []
        deadline = time.monotonic() + COMMAND_TIMEOUT_S
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                break
            if line.startswith(MARKER):
                return int(line.split()[1]), "".join(lines).rstrip("\n")
            lines.append(line)
        raise AssertionError(f"no end to {command!r}: {''.join(lines)[-2000:]}")

    def close(self) -> None:
        if self.process.stdin:
            self.process.stdin.close()
        self.process.wait(timeout=30)


def run_page(page: Path, ports: dict[str, int]) -> list[str]:
    failures: list[str] = []
    shell = Shell(ports)
    try:
        for block in blocks(page):
            if block.not_run or block.excerpt:
                continue
            for command in block.commands:
                status, output = shell.run(with_ports(command.text, ports))
                where = f"{block.page}:{command.line}"
                if status != 0:
                    failures.append(f"{where}: exit {status}: {command.text}\n{output[-1500:]}")
                elif command.expected:
                    wrong = mismatches(with_ports(command.expected, ports), output)
                    if wrong:
                        failures.append(
                            f"{where}: {command.text}\n  " + "\n  ".join(wrong) + f"\n  output: {output[:1500]}"
                        )
    finally:
        shell.close()
    return failures


def test_the_not_run_blocks_are_the_listed_ones() -> None:
    # Given every bash block of the README and the docs
    marked: dict[str, list[Block]] = {}
    for page in pages():
        for block in blocks(page):
            if block.not_run:
                marked.setdefault(block.page, []).append(block)
    # Then the blocks marked not-run are exactly as many as listed, page by page, each with a reason
    assert {page: len(found) for page, found in marked.items()} == NOT_RUN
    assert all(block.not_run and len(block.not_run) > 10 for found in marked.values() for block in found)


def test_every_example_runs_and_shows_what_it_answers(stack: dict[str, int]) -> None:
    # Given a local stack as `make run` starts it, and the pages in the order a reader meets them
    # (the migration before the listings page: its searches find the split fields the migration wrote)
    first = ["docs/quickstart.md", "README.md", "docs/jewelry-api.md", "docs/migration.md", "docs/listings.md"]
    ordered = [docs_examples.ROOT / name for name in first]
    ordered += [page for page in pages() if page not in ordered]
    failures: list[str] = []
    ran = 0
    # When each page's examples run in one shell, in order
    for page in ordered:
        ran += sum(len(b.commands) for b in blocks(page) if not (b.not_run or b.excerpt))
        failures += run_page(page, stack)
    # Then every command exits 0 and answers what the page shows
    assert ran > 20
    assert not failures, "\n\n".join(failures)
