"""One local stack a state folder: a second one on the same folder would restore the same snapshot,
replay the same queue of events and overwrite the first's saves. `LocalStack.start()` takes an
exclusive `flock` on `<state folder>/lock` (its process id written in it) before anything else, and
`stop()` lets it go, so a `python -m local`, a test's stack and a benchmark's are refused alike, in
another process or in the same one (each start opens the file anew, and flock locks open files). The
kernel releases it however the process ends, kill -9 included, so no stale lock is left behind."""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import IO


class StateFolderInUse(Exception):
    """Another process holds the state folder's lock."""

    def __init__(self, state_dir: Path, holder: str) -> None:
        who = f"process {holder}" if holder else "another process"
        super().__init__(
            f"The state folder {state_dir} is in use by another local stack ({who}). Stop that one first, "
            "or give this one another folder with --state-dir (LOCAL_STATE_DIR)."
        )


class StateLock:
    """The lock of one state folder: `acquire()` or raise `StateFolderInUse`; `release()` (or exit) lets go."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir.resolve()
        self._file: IO[str] | None = None

    def acquire(self) -> StateLock:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        lock = (self.state_dir / "lock").open("a+", encoding="utf-8")  # "a+": a holder's pid is not wiped
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip()
            lock.close()
            raise StateFolderInUse(self.state_dir, holder) from None
        lock.seek(0)
        lock.truncate()
        lock.write(f"{os.getpid()}\n")
        lock.flush()
        self._file = lock
        return self

    def release(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None
