"""Shared fixtures: the cell kinds under test and random parameters (keep this file small).

And two settings for every test process and every subprocess it starts (they inherit the environment):
the suite's programs are tiny, so XLA's compile time, not their run time, is what the suite costs.

* LLVM at -O0 and XLA:CPU's older fusion emitters (``XLA_FLAGS``): training ``selective_copy_mamba`` 4 steps
  with eval, at the shipped-config test's size, took 49 s of CPU with XLA's default optimisation and 28 s at
  -O0; the older emitters then cut the compilation of a train step by 40-50% (``induction_hawk`` 5.6-6.0 s to
  3.0-4.0 s, ``induction_transformer`` 3.9-4.9 s to 1.9-2.7 s, ``adding_lstm`` 1.6-2.0 s to 0.8-0.9 s; three
  runs each, 2026-12-07); and one LLVM module per program instead of XLA's parallel split, which on two
  busy cores only adds work: compiling the training gradient of four linear-recurrence backbones (Hawk,
  Mamba-2, LRU, S5 at width 16) took 3.3-3.6 s of CPU split, 2.1-2.6 s whole (three runs each, 2026-12-07).
* One persistent JAX compilation cache for the whole run (created by the first process that imports this
  file: the pytest-xdist controller, whose workers inherit it), so a program compiled by one test process
  is loaded, not compiled, by the next (the documented commands and the shipped configs train the same
  small models many times).  It is deleted at exit.
"""

import atexit
import os
import shutil
import tempfile

FAST_COMPILE = ("--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true "
                "--xla_cpu_use_fusion_emitters=false --xla_cpu_parallel_codegen_split_count=1")
if FAST_COMPILE not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {FAST_COMPILE}".strip()
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="seqjax-test-jax-cache-")
    atexit.register(shutil.rmtree, os.environ["JAX_COMPILATION_CACHE_DIR"], True)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "-1")

import jax  # noqa: E402  (after the environment above)
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import seqjax  # noqa: E402

# kind -> (cell name, options); the kinds match tests/reference_numpy.step_fn.
CELL_KINDS = {
    "rnn_tanh": ("rnn", {"activation": "tanh"}),
    "rnn_relu": ("rnn", {"activation": "relu"}),
    "lstm": ("lstm", {}),
    "gru_cho": ("gru", {"variant": "cho"}),
    "gru_reset_after": ("gru", {"variant": "reset_after"}),
}


@pytest.fixture(params=list(CELL_KINDS))
def kind(request) -> str:
    """Each cell kind in turn."""
    return request.param


@pytest.fixture
def make_kind_cell():
    """``make(kind, hidden, **options) -> seqjax.Cell``."""

    def make(kind: str, hidden: int, **options) -> seqjax.Cell:
        name, base = CELL_KINDS[kind]
        return seqjax.make_cell(name, hidden, **base, **options)

    return make


@pytest.fixture
def randomize():
    """``randomize(tree, seed, scale)``: every leaf replaced by N(0, scale^2) draws of its shape and dtype."""

    def draw(tree, seed: int = 0, scale: float = 0.5):
        rng = np.random.default_rng(seed)
        return jax.tree.map(lambda a: jnp.asarray(rng.normal(scale=scale, size=a.shape), a.dtype), tree)

    return draw
