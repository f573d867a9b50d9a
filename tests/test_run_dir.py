"""The run directory is safe: one trainer at a time (an OS lock the kernel drops when its holder dies),
and a trained run whose checkpoints are gone is never silently started over."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from seqjax.cli import main
from seqjax.errors import UserError
from seqjax.experiment.run_lock import RunLock, lock_holder
from seqjax.experiment.writers import read_rows

ROOT = Path(__file__).resolve().parents[1]
SMOKE = str(ROOT / "configs/experiments/smoke_adding.yaml")
TINY = ["model.hidden_size=8", "train.steps=4", "train.eval_every=2", "train.checkpoint_every=2",
        "train.log_every=1", "train.eval_examples=16", "train.eval_batch_size=16", "train.batch_size=8"]


def _wait_for(condition, timeout: float, proc: subprocess.Popen | None = None) -> None:
    deadline = time.time() + timeout
    while not condition():
        assert proc is None or proc.poll() is None, proc.communicate()
        assert time.time() < deadline, "timed out"
        time.sleep(0.05)


def test_a_second_lock_on_a_run_dir_is_refused_naming_the_holder(tmp_path):
    with RunLock(tmp_path):
        assert lock_holder(tmp_path) == str(os.getpid())
        with pytest.raises(UserError, match=rf"^{tmp_path} is in use by another seqjax process \(PID {os.getpid()}\)"):
            RunLock(tmp_path).__enter__()
    assert lock_holder(tmp_path) is None
    with RunLock(tmp_path):  # released: taken again
        pass


def test_kill_9_leaves_no_stale_lock(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom seqjax.experiment.run_lock import RunLock\n"
                               f"with RunLock({str(tmp_path)!r}):\n    print('locked', flush=True)\n    time.sleep(600)"],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    assert lock_holder(tmp_path) == str(holder.pid)
    holder.kill()
    holder.wait()
    assert lock_holder(tmp_path) is None
    with RunLock(tmp_path):
        pass


def test_two_trainers_on_one_run_dir_the_second_exits_2_naming_the_first(tmp_path):
    run_dir = tmp_path / "run"
    cmd = [sys.executable, "-m", "seqjax.cli", "train", SMOKE, f"run_dir={run_dir}", "train.steps=1000000",
           "train.log_every=1", "train.eval_every=1000", "train.checkpoint_every=1000"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    # SIGINT at its default in the child: a suite started in the background of a non-interactive shell ignores
    # it, and the ignored disposition would be inherited, leaving the first trainer deaf to the SIGINT below
    first = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        _wait_for(lambda: len(read_rows(run_dir)) >= 1, 240, first)  # the first is training
        second = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
        assert second.returncode == 2, second.stderr
        assert second.stderr.splitlines() == [
            f"error: {run_dir} is in use by another seqjax process (PID {first.pid}): wait for it to finish or stop "
            "it; two trainers on one run directory would interleave its metrics and checkpoints"]
        assert first.poll() is None  # undisturbed
    finally:
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=120)
    rows = read_rows(run_dir)
    train = [r["step"] for r in rows if r["split"] == "train"]
    assert train == list(range(1, len(train) + 1)) and len(train) >= 2, train  # every row once, in order
    assert len({(r["step"], r["split"]) for r in rows}) == len(rows)


def test_a_trained_run_without_checkpoints_is_not_started_over_unless_asked(tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert main(["train", SMOKE, f"run_dir={run_dir}", *TINY]) == 0
    trained = read_rows(run_dir)
    shutil.rmtree(run_dir / "checkpoints")
    capsys.readouterr()

    assert main(["train", str(run_dir)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: {run_dir} holds a run that trained (metrics to step 4) but has no checkpoint: refusing to start "
        "over; set train.restart=true to discard its history and train from step 0"]
    assert read_rows(run_dir) == trained and (run_dir / "summary.json").exists()  # untouched

    assert main(["train", str(run_dir), "train.restart=true"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err[0] == (f"train.restart=true: {run_dir} has no checkpoint; discarding its metrics to step 4 and "
                      "training from step 0"), err
    assert read_rows(run_dir) == trained  # retrained from scratch: the same run, bit for bit
    assert len(list((run_dir / "tb").glob("events.out.tfevents.*"))) == 1  # the old events went with it


FREQUENT_SAVES = ["train.steps=1000000", "train.log_every=1", "train.eval_every=2", "train.checkpoint_every=2",
                  "train.progress=false"]


@pytest.mark.parametrize("how", ["train", "vmapped sweep"])
def test_ctrl_c_between_frequent_saves_ends_the_run_cleanly_and_leaves_whole_checkpoints(tmp_path, how):
    """SIGINT lands between steps (``seqjax.experiment.interrupt``), never inside an asynchronous save: the process
    ends with KeyboardInterrupt (not a hang, nor the segfault at exit it gave when interrupted mid-save), and its
    checkpoints can be evaluated; so too for two seeds trained in one vmapped program by ``seqjax sweep``."""
    if how == "train":
        run_dirs = [tmp_path / "run"]
        args = ["train", SMOKE, f"run_dir={run_dirs[0]}", *FREQUENT_SAVES]
    else:
        run_dirs = [tmp_path / "out" / "seed=0", tmp_path / "out" / "seed=1"]
        sweep = tmp_path / "sweep.yaml"
        sweep.write_text(f"experiment: {SMOKE}\noverrides: [{', '.join(FREQUENT_SAVES)}]\nseeds: [0, 1]\n")
        args = ["sweep", str(sweep), "--out", str(tmp_path / "out"), "--vmap"]
    first = subprocess.Popen([sys.executable, "-m", "seqjax.cli", *args], cwd=ROOT, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True,
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    _wait_for(lambda: all(d.exists() and len(read_rows(d)) >= 20 for d in run_dirs), 240, first)  # saving often
    first.send_signal(signal.SIGINT)
    _, err = first.communicate(timeout=120)
    assert first.returncode == -signal.SIGINT and err.strip().endswith("KeyboardInterrupt"), (first.returncode, err)
    for run_dir in run_dirs:
        assert main(["eval", str(run_dir)]) == 0  # the checkpoints it wrote are whole
