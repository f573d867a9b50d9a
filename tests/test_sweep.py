"""Sweeps: grid expansion, validation before any work, resumable runs, and the report's aggregation."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from seqjax.errors import UserError
from seqjax.experiment.report import collect, report
from seqjax.cli import main
from seqjax.experiment.config import load_config
from seqjax.experiment.sweep import expand, load_sweep, run_sweep
from seqjax.experiment.tiny import tiny_overrides

EXPERIMENT = Path(__file__).resolve().parents[1] / "configs" / "experiments" / "adding_lstm.yaml"


def _sweep_file(tmp_path, **fields):
    spec = {"experiment": str(EXPERIMENT), "out": str(tmp_path / "out"), **fields}
    path = tmp_path / "sweep.yaml"
    path.write_text(OmegaConf.to_yaml(OmegaConf.create(spec)))
    return path


def test_grid_times_seeds(tmp_path):
    spec, experiments = load_sweep(_sweep_file(tmp_path, grid={"optim.lr": [0.1, 0.2, 0.3], "model.hidden_size": [4, 8]},
                                               seeds=[0, 1], overrides=["train.steps=5"]))
    trials = expand(spec, experiments)
    assert len(trials) == 3 * 2 * 2 and len({t.run_dir for t in trials}) == 12
    combos = {(o[1], o[2], o[3]) for o in (t.overrides for t in trials)}
    assert combos == {(f"optim.lr={lr}", f"model.hidden_size={h}", f"seed={s}")
                      for lr in (0.1, 0.2, 0.3) for h in (4, 8) for s in (0, 1)}
    assert all(t.overrides[0] == "train.steps=5" for t in trials)


def test_a_tiny_trial_shrinks_what_the_file_sets_but_not_the_point_nor_the_command_line(tmp_path):
    spec, experiments = load_sweep(_sweep_file(tmp_path, grid={"model.hidden_size": [16]}, overrides=["train.steps=500"]))
    (trial,) = expand(spec, experiments, ["optim.lr=0.1"], tiny=True)
    assert trial.overrides[:-2] == ("train.steps=500", *tiny_overrides(EXPERIMENT), "optim.lr=0.1",
                                    "model.hidden_size=16")
    cfg = load_config(trial.experiment, list(trial.overrides))
    assert (cfg.train.steps, cfg.task.seq_len, cfg.model.hidden_size, cfg.optim.lr) == (6, 24, 16, 0.1)


def test_overrides_may_follow_the_options(tmp_path, capsys):
    assert main(["sweep", str(_sweep_file(tmp_path, grid={"optim.lr": [0.1]})), "--dry-run", "optim.b1=0.8", "--tiny"]) == 0
    printed = capsys.readouterr().out
    assert "optim.b1=0.8" in printed and "train.steps=6" in printed and "model.hidden_size=8" in printed


def test_a_list_of_experiments_is_one_more_dimension(tmp_path):
    other = EXPERIMENT.parent / "copy_transformer.yaml"
    spec, experiments = load_sweep(_sweep_file(tmp_path, experiment=[str(EXPERIMENT), str(other)],
                                               grid={"optim.lr": [0.1, 0.2]}))
    trials = expand(spec, experiments)
    assert [(t.experiment.stem, t.overrides[0]) for t in trials] == [
        (e.stem, f"optim.lr={lr}") for e in (EXPERIMENT, other) for lr in (0.1, 0.2)]
    assert len({t.run_dir for t in trials}) == 4


def test_bad_sweeps_fail_before_any_work(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_sweep(tmp_path / "missing.yaml")
    with pytest.raises(UserError, match="allowed keys"):
        load_sweep(_sweep_file(tmp_path, gird={"optim.lr": [1]}))
    bad = _sweep_file(tmp_path, grid={"model.hiden_size": [4]})
    with pytest.raises(UserError, match="trial .*hiden_size.*did you mean 'hidden_size'"):
        run_sweep(bad, quiet=True)
    assert not list((tmp_path / "out").glob("*/config.yaml"))  # nothing ran


def _fake_run(root: Path, name: str, lr: float, seed: int, best: float):
    run = root / name
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create({"seed": seed, "optim": {"lr": lr}})))
    (run / "summary.json").write_text(json.dumps({
        "best_metric": "loss", "best": {"loss": best, "step": 10}, "final": {"val": {"loss": best + 1}},
        "baseline": {"loss": 1 / 6}, "param_count": 100, "wall_time_s": 2.0}))


def test_report_aggregates_seeds(tmp_path):
    (tmp_path / "sweep.yaml").write_text("grid: {optim.lr: [0.1, 0.2]}\n")
    bests = {(0.1, 0): 0.5, (0.1, 1): 0.7, (0.2, 0): 0.2, (0.2, 1): 0.3}
    for (lr, seed), best in bests.items():
        _fake_run(tmp_path, f"lr={lr},seed={seed}", lr, seed, best)
    keys, rows = collect(tmp_path)
    assert keys == ["optim.lr"] and len(rows) == 4
    text = report(tmp_path)
    for lr in (0.1, 0.2):
        values = [bests[(lr, s)] for s in (0, 1)]
        half = 12.706204736174698 * np.std(values, ddof=1) / np.sqrt(2)  # 95% interval: t_{0.975, 1} s / sqrt(n)
        assert f"| {lr} | 2 | {np.mean(values):.4g} ± {half:.2g} |" in text
    assert (tmp_path / "results.csv").exists() and (tmp_path / "results.png").exists()
    with pytest.raises(UserError, match="no finished runs"):
        collect(tmp_path / "lr=0.1,seed=0")


@pytest.mark.slow
def test_sweep_end_to_end_and_resume(tmp_path):
    path = _sweep_file(tmp_path, grid={"optim.lr": [0.01]}, seeds=[0], overrides=[
        "train.steps=4", "train.eval_every=2", "train.checkpoint_every=2", "task.seq_len=5",
        "model.hidden_size=4", "train.eval_examples=8", "train.test_examples=8"])
    cmd = [sys.executable, "-m", "seqjax.cli", "sweep", str(path)]
    first = subprocess.run(cmd, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    assert "| 0.01 | 1 |" in first.stdout
    again = subprocess.run(cmd, capture_output=True, text=True)
    assert "1 trials, 1 already done" in again.stdout


def _tiny_sweep(tmp_path, steps: int):
    return _sweep_file(tmp_path, grid={"optim.lr": [0.01]}, seeds=[0], overrides=[
        f"train.steps={steps}", "train.log_every=1", "train.eval_every=1000", "train.checkpoint_every=1000",
        "task.seq_len=5", "model.hidden_size=4", "train.eval_examples=8", "train.test_examples=8"])


def test_a_rerun_refuses_to_start_while_a_trial_is_still_being_trained(tmp_path):
    from seqjax.experiment.run_lock import RunLock

    path = _tiny_sweep(tmp_path, 4)
    (trial,) = expand(*load_sweep(path))
    with RunLock(trial.run_dir):  # as a worker of an earlier run of the sweep would hold it
        with pytest.raises(UserError, match=rf"trial {trial.name} is still being trained by PID {os.getpid()} "
                                            r".*kill \d+\), then re-run the sweep"):
            run_sweep(path, quiet=True)
    assert not (trial.run_dir / "train.log").exists()  # nothing started


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_killing_the_runner_takes_its_workers_down(tmp_path, signum):
    """SIGKILL: the runner gets no chance to clean up, the kernel signals the worker (PR_SET_PDEATHSIG);
    SIGTERM: the runner terminates its workers and exits 128 + 15."""
    from seqjax.experiment.run_lock import lock_holder

    path = _tiny_sweep(tmp_path, 1000000)
    (trial,) = expand(*load_sweep(path))
    runner = subprocess.Popen([sys.executable, "-m", "seqjax.cli", "sweep", str(path)], stdout=subprocess.DEVNULL)
    try:
        deadline = time.time() + 240
        while not (lock_holder(trial.run_dir) or "").isdigit():  # the worker is training (its PID written, not yet
            assert runner.poll() is None and time.time() < deadline  # "unknown": locked, the PID still to come)
            time.sleep(0.1)
        worker = int(lock_holder(trial.run_dir))
        runner.send_signal(signum)
        assert runner.wait(timeout=60) == (-signum if signum == signal.SIGKILL else 128 + signum)
        deadline = time.time() + 60
        while lock_holder(trial.run_dir) is not None:
            assert time.time() < deadline, f"worker {worker} outlived its runner"
            time.sleep(0.1)
        stat = Path(f"/proc/{worker}/stat")
        assert not stat.exists() or stat.read_text().split(")")[1].split()[0] == "Z"  # gone, or dead and unreaped
    finally:  # a failed assertion above must not leave a million-step trial training
        if runner.poll() is None:
            runner.kill()  # its worker follows it (PR_SET_PDEATHSIG)
            runner.wait()


def test_jobs_0_trains_in_this_process_as_the_trial_processes_do(tmp_path, capsys):
    """``--jobs 0``: the trials one after another in this process, each run directory as a ``seqjax train``
    process leaves it (metrics equal); a diverged trial fails alone, its error line in its ``train.log``."""
    overrides = ["train.steps=4", "train.log_every=1", "train.eval_every=2", "train.checkpoint_every=2",
                 "task.seq_len=5", "model.hidden_size=4", "train.eval_examples=8", "train.test_examples=8"]
    runs = {}
    for jobs in (1, 0):
        (tmp_path / str(jobs)).mkdir()
        path = _sweep_file(tmp_path / str(jobs), grid={"optim.lr": [0.01, 1.0e30]}, seeds=[0], overrides=overrides)
        assert main(["sweep", str(path), "--jobs", str(jobs), "--no-vmap"]) == 1  # the lr=1e30 trial diverges
        runs[jobs] = tmp_path / str(jobs) / "out"
        assert ("(in this process" in capsys.readouterr().out) == (jobs == 0)
    rows = {jobs: [json.loads(line) for line in (out / "lr=0.01,seed=0" / "metrics.jsonl").read_text().splitlines()]
            for jobs, out in runs.items()}
    assert rows[0] == rows[1] and len(rows[0]) == 6  # 4 train rows, 2 val rows
    for out in runs.values():
        assert not (out / "lr=1e+30,seed=0" / "summary.json").exists()
        assert "error: " in (out / "lr=1e+30,seed=0" / "train.log").read_text()
    assert main(["sweep", str(tmp_path / "0" / "sweep.yaml"), "--jobs", "0", "--launcher", "slurm"]) == 2
