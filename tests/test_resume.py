"""Exact resume: SIGKILL a real `seqjax train` mid-run, re-run the same command, and the final
parameters and logged metrics equal those of an uninterrupted run, bitwise (CPU) -- for the ordinary loop
and for truncated BPTT, whose carried state (``TrainState.carry``) must come back from the checkpoint too."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from seqjax.experiment.config import load_config
from seqjax.experiment.loop import Trainer
from seqjax.experiment.writers import read_rows

ROOT = Path(__file__).resolve().parents[1]
STEPS = 200
SCHEDULE = [f"train.steps={STEPS}", "train.log_every=5", "train.eval_every=10", "train.checkpoint_every=10"]
# name -> (experiment, overrides); the TBPTT run's streams are 40 steps, trained in windows of 10
RUNS = {
    "ordinary": ("smoke_adding", ["task.seq_len=20", "model.hidden_size=16", "model.dropout=0.0"]),
    "tbptt": ("copy_lstm_tbptt", ["task.seq_len=20", "train.tbptt=10", "model.hidden_size=16", "model.embed_dim=8",
                                  "train.batch_size=8", "train.eval_examples=32", "train.eval_batch_size=32"]),
}
# ~1 min each; the suite kills the ordinary run, and tests/test_tbptt.py resumes a TBPTT run (carry included)
# from its checkpoint bit-exactly in-process
SLOW = {"tbptt"}


def _command(run: str, run_dir: Path) -> list[str]:
    name, overrides = RUNS[run]
    experiment = str(ROOT / "configs" / "experiments" / f"{name}.yaml")
    return [sys.executable, "-m", "seqjax.cli", "train", experiment, f"run_dir={run_dir}", *SCHEDULE, *overrides]


def _committed_steps(run_dir: Path) -> list[int]:
    folder = run_dir / "checkpoints"
    return sorted(int(p.name) for p in folder.iterdir() if p.name.isdigit()) if folder.exists() else []


def _final_params(run_dir: Path):
    trainer = Trainer(load_config(run_dir))
    ckpt = trainer.checkpoints()
    state = ckpt.restore(STEPS, trainer.init_state())
    ckpt.close()
    return jax.device_get(state)


@pytest.mark.parametrize("run", [pytest.param(r, marks=[pytest.mark.slow] if r in SLOW else []) for r in RUNS])
def test_sigkill_then_rerun_equals_uninterrupted_run(run, tmp_path):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    killed, clean = tmp_path / "killed", tmp_path / "clean"

    proc = subprocess.Popen(_command(run, killed), cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 240
    while not _committed_steps(killed) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (killed / "summary.json").exists(), "the run finished before the kill: make it longer"
    assert _committed_steps(killed) and max(_committed_steps(killed)) < STEPS

    resumed = subprocess.run(_command(run, killed), cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming {killed} from step" in resumed.stderr
    start = int(resumed.stderr.split("from step ")[1].split()[0])
    assert 0 < start < STEPS

    done = subprocess.run(_command(run, clean), cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr

    assert read_rows(killed) == read_rows(clean)  # every train and val row, bitwise
    s_killed, s_clean = (json.loads((d / "summary.json").read_text()) for d in (killed, clean))
    assert s_killed["resumed_from"] == start and s_clean["resumed_from"] is None
    for key in ("final", "best", "param_count", "steps"):
        assert s_killed[key] == s_clean[key], key
    a, b = _final_params(killed), _final_params(clean)
    assert bool(jax.tree.leaves(a.carry)) == (run == "tbptt")  # the carried state is compared below too
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(x, y)
