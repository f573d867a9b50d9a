"""One trainer per run directory: an OS-level lock on ``<run>/.lock`` held for the life of the process.

:class:`RunLock` takes ``fcntl.flock(LOCK_EX | LOCK_NB)`` on the file and writes its PID into it.  The
kernel drops a ``flock`` when the holding process dies, however it dies, so a ``kill -9`` never
leaves a stale lock, and the file itself is never removed (removing a lock file races with the next
holder).  A second trainer on the same directory gets one line naming the holder::

    runs/adding is in use by another seqjax process (PID 4242): wait for it to finish or stop it ...

:func:`lock_holder` tests the lock without taking it (what ``seqjax sweep`` does before it starts).
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO

from seqjax.errors import UserError

LOCK_FILE = ".lock"


def _pid_in(file: IO[str]) -> str:
    file.seek(0)
    return file.read().strip() or "unknown"


def lock_holder(run_dir: str | Path) -> str | None:
    """The PID (as written in the lock file) of the live process holding ``run_dir``'s lock, else ``None``."""
    path = Path(run_dir) / LOCK_FILE
    if not path.exists():
        return None
    with path.open() as file:
        try:
            fcntl.flock(file, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _pid_in(file)
        fcntl.flock(file, fcntl.LOCK_UN)
    return None


class RunLock:
    """``with RunLock(run_dir):`` -- this process is the only one training in ``run_dir`` (created if new)."""

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        self._file: IO[str] | None = None

    def __enter__(self) -> "RunLock":
        self.run_dir.mkdir(parents=True, exist_ok=True)
        file = (self.run_dir / LOCK_FILE).open("a+")
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _pid_in(file)
            file.close()
            raise UserError(f"{self.run_dir} is in use by another seqjax process (PID {holder}): wait for it to "
                            "finish or stop it; two trainers on one run directory would interleave its metrics "
                            "and checkpoints") from None
        file.truncate(0)
        file.write(f"{os.getpid()}\n")
        file.flush()
        self._file = file
        return self

    def __exit__(self, *exc: object) -> None:
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None
