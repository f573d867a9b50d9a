"""Process-wide setting: a persistent XLA compilation cache shared by every ``seqjax`` command.

A training run compiles its train step, its evaluation and its sampling programs; ``seqjax eval`` of the same run,
a resumed run, every ``seqjax train`` process of a sweep whose trials share a program (seeds that are not
vmapped, SLURM array tasks) and a rerun of the same experiment compile them again, seconds each on a CPU and
more than the training itself for a small model.  With JAX's persistent cache the second compilation is a
file read.

:func:`use_compilation_cache` points JAX at ``$SEQJAX_COMPILATION_CACHE``, else ``$XDG_CACHE_HOME/seqjax/xla``
(``~/.cache/seqjax/xla``), and caches every program that took over ``MIN_COMPILE_S`` to compile.
``SEQJAX_COMPILATION_CACHE=off`` leaves JAX's default (no persistent cache), as does a folder that cannot be
created, and a ``JAX_COMPILATION_CACHE_DIR`` already set wins (JAX reads it itself).  Entries are keyed by the
program, the compile options, the device and the JAX version, so a stale entry is never used, only left behind:
delete the folder to reclaim the space.
JAX writes no entry for a program with host callbacks, and an unreadable entry (a write that another process
had not finished) is compiled afresh with a warning.  ``seqjax`` commands apply it at start; library users can
call it themselves.

>>> cache_dir() is None or cache_dir().name == "xla" or "SEQJAX_COMPILATION_CACHE" in os.environ
True
"""

from __future__ import annotations

import os
from pathlib import Path

import jax

MIN_COMPILE_S = 0.2  # JAX's default, 1 s, leaves out most evaluation programs of small models on a CPU


def cache_dir() -> Path | None:
    """Where :func:`use_compilation_cache` puts the cache (``None``: off, or JAX's own setting wins)."""
    chosen = os.environ.get("SEQJAX_COMPILATION_CACHE", "")
    if chosen.lower() == "off" or os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        return None
    if chosen:
        return Path(chosen).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "seqjax" / "xla"


def use_compilation_cache() -> Path | None:
    """Turn the cache on for this process (before its first compilation); the folder, or ``None`` if left off."""
    path = cache_dir()
    if path is None:
        return None
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:  # a read-only home: run without the cache rather than not at all
        return None
    jax.config.update("jax_compilation_cache_dir", str(path))
    if "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS" not in os.environ:
        jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_S)
    return path
