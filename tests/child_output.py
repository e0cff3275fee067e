"""A child process's output, read to its end in the background.

A test that starts `python -m local` with its output on a pipe reads it until READY; if nothing reads
it after that, the stack's next writes fill the pipe's buffer (64 KiB on Linux: some 700 request log
lines) and every thread that writes then blocks, the gateway's request threads included, holding the
requests they serve: the API hangs (GET /webhooks/deliveries, polled a few times a second, did) until
something reads the pipe again."""

from __future__ import annotations

import subprocess
import threading

READER_JOIN_S = 60.0  # a hang guard: the output ends when the child (and anything it started) has exited


def read_on(process: subprocess.Popen[str], output: list[str]) -> threading.Thread:
    """Append the rest of `process`'s output to `output`, line by line, until it ends."""
    stream = process.stdout
    assert stream is not None

    def read() -> None:
        for line in stream:
            output.append(line)

    reader = threading.Thread(target=read, name=f"output-of-{process.pid}", daemon=True)
    reader.start()
    return reader


def finish(process: subprocess.Popen[str], reader: threading.Thread, timeout_s: float) -> bool:
    """Wait for the child to exit (killing it past `timeout_s`) and for its output to be read; whether it
    exited by itself."""
    try:
        process.wait(timeout=timeout_s)
        exited = True
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        exited = False
    reader.join(READER_JOIN_S)
    return exited
