"""The local stack's own lines reach a reader whole while handlers log from other threads.

A supervisor (the kill tests, a person's script) reads the URL from the READY line; a log line written
between that line's text and its newline once split it (CI: `127.0.0.1:45159{"level":"INFO",...`).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# A handler thread logging as fast as it can while the main thread announces itself many times
WRITER = """
import sys, threading
from local.__main__ import say
from aws_lambda_powertools import Logger

logger = Logger(service="noisy")
done = threading.Event()

def log_forever():
    while not done.is_set():
        logger.info("run")

thread = threading.Thread(target=log_forever)
thread.start()
for number in range(300):
    say(f"READY http://127.0.0.1:{number}")
done.set()
thread.join()
"""


def test_ready_lines_are_whole_while_another_thread_logs() -> None:
    # Given a stack-like process whose stdout is a pipe, unbuffered as the kill tests run it
    run = subprocess.run(
        [sys.executable, "-u", "-c", WRITER], cwd=ROOT, capture_output=True, text=True, timeout=120, check=True
    )
    # When its output is read line by line, as a supervisor reads it
    ready = [line for line in run.stdout.splitlines() if "READY" in line]
    # Then every READY line is exactly what was said, in order, none split by a log line
    assert ready == [f"READY http://127.0.0.1:{number}" for number in range(300)]
