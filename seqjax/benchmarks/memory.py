"""Peak-memory measurement from XLA's compiled memory analysis (no run needed, works on every backend).

``compiled_memory(f, *args)`` compiles ``jax.jit(f)`` for ``args`` and reads
``memory_analysis()``: ``temp`` is the scratch memory XLA allocates for the
program (intermediates, including everything kept for a backward pass inside
``f``), ``argument`` and ``output`` the buffers in and out. ``peak = argument
+ output + temp`` (less aliased bytes) is what the program needs at once.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import numpy as np


def compiled_memory(f: Callable[..., Any], *args: Any) -> dict[str, int]:
    """Bytes of ``temp``, ``argument``, ``output``, ``alias`` and ``peak`` for ``jax.jit(f)(*args)``."""
    return executable_memory(jax.jit(f).lower(*args).compile())


def executable_memory(compiled: Any) -> dict[str, int]:
    """:func:`compiled_memory` of a program already compiled (``jax.jit(f).lower(...).compile()``)."""
    stats = compiled.memory_analysis()
    if stats is None:
        raise RuntimeError(f"backend {jax.default_backend()!r} gives no compiled memory analysis")
    out = {
        "temp": int(stats.temp_size_in_bytes),
        "argument": int(stats.argument_size_in_bytes),
        "output": int(stats.output_size_in_bytes),
        "alias": int(stats.alias_size_in_bytes),
    }
    out["peak"] = out["temp"] + out["argument"] + out["output"] - out["alias"]
    return out


def growth(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """Least-squares ``(slope, exponent)``: ``y ~ slope x + c`` and ``y ~ x^exponent`` (log-log fit)."""
    slope = float(np.polyfit(xs, ys, 1)[0])
    exponent = float(np.polyfit(np.log(xs), np.log(np.maximum(ys, 1)), 1)[0])
    return slope, exponent
