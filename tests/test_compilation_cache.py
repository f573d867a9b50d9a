"""seqjax commands share a persistent compilation cache (``seqjax.experiment.compilation_cache``): a second
run of the same experiment loads its programs instead of compiling them and trains bit for bit the same;
``SEQJAX_COMPILATION_CACHE=off`` and a ``JAX_COMPILATION_CACHE_DIR`` of the user's own are respected."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from seqjax.experiment.writers import read_rows

ROOT = Path(__file__).resolve().parents[1]
SMOKE = str(ROOT / "configs/experiments/smoke_adding.yaml")
TINY = ["model.hidden_size=8", "train.steps=2", "train.eval_every=2", "train.log_every=1", "train.eval_examples=16",
        "train.batch_size=8", "train.progress=false"]


def _train(run_dir: Path, **env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("JAX_COMPILATION_CACHE", "JAX_PERSISTENT",
                                                                      "SEQJAX_COMPILATION", "XDG_CACHE"))}
    proc = subprocess.run([sys.executable, "-m", "seqjax.cli", "train", SMOKE, f"run_dir={run_dir}", *TINY],
                          env={**clean, **env}, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc.stderr


def _entries(folder: Path) -> set[str]:
    return {p.name for p in folder.rglob("*-cache*")} if folder.exists() else set()


def test_a_second_run_loads_every_program_and_trains_the_same(tmp_path):
    # every program cached, however long it took to compile: whether one passes MIN_COMPILE_S depends on the
    # machine's load (CI: a sampling program under it in the first run, over it in the second)
    every = dict(SEQJAX_COMPILATION_CACHE=str(tmp_path / "cache"), JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")
    _train(tmp_path / "first", **every)
    written = _entries(tmp_path / "cache")
    assert written
    debug = _train(tmp_path / "second", **every, JAX_DEBUG_LOG_MODULES="jax._src.compiler")
    assert _entries(tmp_path / "cache") == written  # nothing new to write: every program was found
    assert "Persistent compilation cache hit" in debug
    first, second = read_rows(tmp_path / "first"), read_rows(tmp_path / "second")
    strip = lambda rows: [{k: v for k, v in r.items() if k not in ("time", "wall_s")} for r in rows]  # noqa: E731
    assert strip(first) == strip(second)


def test_the_default_folder_off_and_jax_own_setting(tmp_path):
    every = dict(JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")  # as above: entries whatever the load
    _train(tmp_path / "a", XDG_CACHE_HOME=str(tmp_path / "xdg"), **every)
    assert _entries(tmp_path / "xdg" / "seqjax" / "xla")
    _train(tmp_path / "b", XDG_CACHE_HOME=str(tmp_path / "xdg_off"), SEQJAX_COMPILATION_CACHE="off", **every)
    assert not (tmp_path / "xdg_off").exists()
    _train(tmp_path / "c", XDG_CACHE_HOME=str(tmp_path / "xdg_jax"), JAX_COMPILATION_CACHE_DIR=str(tmp_path / "own"),
           **every)
    assert not (tmp_path / "xdg_jax").exists() and (tmp_path / "own").exists()
