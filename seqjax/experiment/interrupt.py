"""Ctrl-C (SIGINT) during training, taken between steps: :func:`deferred_interrupt`.

Python raises ``KeyboardInterrupt`` wherever the main thread happens to be; inside an asynchronous checkpoint
save (orbax's event loop and commit threads) it can leave the save half-started, and the run's final wait for
its checkpoints then never returns.  Within :func:`deferred_interrupt` a SIGINT only sets a flag; the training
loop asks ``interrupted()`` between steps and raises ``KeyboardInterrupt`` there, where every save in flight is
complete or cleanly pending.  A second SIGINT raises at once (the user insists).

>>> with deferred_interrupt() as interrupted:
...     interrupted()
False
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Callable, Iterator


@contextlib.contextmanager
def deferred_interrupt() -> Iterator[Callable[[], bool]]:
    """Defer SIGINT to the caller's checks of the yielded ``interrupted()`` (main thread only; elsewhere, and
    where SIGINT is ignored, nothing changes and ``interrupted()`` stays False)."""
    received = threading.Event()
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGINT) in (
            signal.SIG_IGN, None):
        yield received.is_set
        return

    def handler(signum: int, frame: object) -> None:
        if received.is_set():
            raise KeyboardInterrupt
        received.set()

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield received.is_set
    finally:
        signal.signal(signal.SIGINT, previous)
