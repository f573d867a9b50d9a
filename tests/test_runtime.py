"""keep_freed_memory: repeated XLA:CPU programs stop page-faulting their temporaries (counted, not timed)."""

import os
import platform
import subprocess
import sys

import pytest

SCRIPT = """
import resource, sys
from seqjax.experiment.runtime import keep_freed_memory
applied = keep_freed_memory() if sys.argv[1] == "keep" else False
import jax, jax.numpy as jnp

from seqjax import lstm, scan

cell = lstm(256)  # an LSTM training gradient at B=32, T=256: ~100 MB of temporaries per call
params = cell.init(jax.random.key(0), 64)
xs = jax.random.normal(jax.random.key(1), (32, 256, 64))
f = jax.jit(jax.grad(lambda p: jnp.mean(scan.run(cell, p, xs)[1] ** 2)))
for _ in range(5):  # compile, and let the heap reach its steady size
    jax.block_until_ready(f(params))
faults = []
for _ in range(9):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    jax.block_until_ready(f(params))
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(applied, sorted(faults)[len(faults) // 2])
"""


def _faults_per_call(mode: str) -> tuple[bool, float]:
    """The median page faults of one call over nine (a busy machine's thread timing can grow the heap once more)."""
    out = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, check=True,
                         env={"PATH": "", "JAX_PLATFORMS": "cpu",  # the suite's compilation cache: compiled once
                              **{k: v for k, v in os.environ.items() if k.startswith(("JAX_COMPILATION_CACHE",
                                                                                       "JAX_PERSISTENT_CACHE"))}},
                         timeout=300).stdout.split()
    return out[0] == "True", float(out[1])


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="a glibc malloc setting")
def test_keep_freed_memory_stops_page_faults_on_repeated_calls():
    applied, kept = _faults_per_call("keep")
    _, system = _faults_per_call("system")
    assert applied
    assert system > 10_000  # ~25 000 pages of 4 KiB: the temporaries are faulted in on every call
    assert kept < 0.5 * system  # what remains comes from XLA's own small mmaps, not malloc


def test_opt_out(monkeypatch):
    from seqjax.experiment.runtime import keep_freed_memory

    monkeypatch.setenv("SEQJAX_MALLOC", "system")
    assert keep_freed_memory() is False
