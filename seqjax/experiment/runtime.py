"""Process-wide runtime setting for CPU training: keep freed memory for reuse.

XLA:CPU allocates each program's temporaries (a train step's residuals, gradients, ...) with
``posix_memalign`` from its worker threads.  glibc serves a block that large from a fresh ``mmap``
(always, in a worker thread's arena, for blocks over 64 MiB) and unmaps it on ``free``, so every
step page-faults all of its temporaries back in: ~30 000 minor faults, a 120 MB buffer, per LSTM
train step at batch 32, T=256, H=256, about 20 % of the step's time
(``experiments/benchmarks/README.md``).

:func:`keep_freed_memory` tells glibc (``mallopt``) to serve every thread from the main arena, never
to ``mmap`` large blocks, and not to trim the heap, so a freed buffer is reused by the next step
without faults.  The cost: the process keeps its peak heap instead of returning it to the OS, which
for a training loop is its steady state anyway.  ``seqjax`` commands apply it at start (before JAX
starts its threads); set ``SEQJAX_MALLOC=system`` to leave glibc's defaults.  Library users can call
it themselves, first thing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform

# glibc's mallopt parameter numbers (malloc.h)
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_ARENA_MAX = -1, -3, -8
_LARGEST = 2**31 - 1  # mallopt takes an int


_applied = False


def keep_freed_memory() -> bool:
    """Apply the setting above; True if it took effect (glibc only, and not opted out)."""
    global _applied
    if os.environ.get("SEQJAX_MALLOC", "").lower() == "system" or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    settings = [(M_ARENA_MAX, 1), (M_MMAP_THRESHOLD, _LARGEST), (M_TRIM_THRESHOLD, _LARGEST)]
    _applied = all(libc.mallopt(param, value) == 1 for param, value in settings)
    return _applied


def allocator() -> str:
    """How this process allocates host memory, for benchmark headers."""
    return "glibc, keeping freed memory (seqjax.experiment.runtime)" if _applied else "system default"
