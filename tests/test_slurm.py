"""``seqjax sweep --launcher slurm`` against a real SLURM cluster (``bash scripts/slurm-local.sh start``, which
``.ci/run`` runs first), and ``seqjax sweep --status``.

The cluster tests are skipped, with the reason, when no cluster answers ``sinfo``; the bad-option tests
need none.  The jobs run on this machine, so the trials are tiny and at most two run at once.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest
from omegaconf import OmegaConf

from seqjax.cli import main
from seqjax.experiment.config import load_config
from seqjax.experiment.loop import Trainer
from seqjax.experiment.slurm_jobs import queue_states, read_jobs
from seqjax.experiment.sweep import expand, load_sweep
from seqjax.experiment.sweep_status import sweep_status
from seqjax.experiment.writers import read_rows

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENT = ROOT / "configs" / "experiments" / "smoke_adding.yaml"
TINY = ["train.steps=4", "train.eval_every=2", "train.checkpoint_every=2", "train.log_every=1", "train.batch_size=4",
        "train.eval_examples=8", "train.eval_batch_size=8", "train.test_examples=8", "model.hidden_size=4"]
LONG_STEPS = 1000  # the cancelled trial: long enough to be cancelled between its first checkpoint and its end
LONG = [f"train.steps={LONG_STEPS}", "train.eval_every=50", "train.checkpoint_every=50", "train.log_every=10",
        "task.seq_len=20", "model.hidden_size=16", "model.dropout=0.0"]
ARRAY = ["--launcher", "slurm", "--no-vmap", "--slurm.cpus_per_task", "1", "--slurm.array_parallelism", "2",
         "--slurm.time", "10"]


def _cluster_problem() -> str | None:
    if shutil.which("sinfo") is None:
        return "no SLURM here (no sinfo on PATH): start the local cluster with bash scripts/slurm-local.sh start"
    proc = subprocess.run(["sinfo", "--noheader", "--format=%T"], capture_output=True, text=True, timeout=60)
    if proc.returncode != 0 or not proc.stdout.strip():
        return f"the SLURM cluster does not answer sinfo ({proc.stderr.strip()[:200]}): bash scripts/slurm-local.sh start"
    return None


needs_cluster = pytest.mark.skipif(_cluster_problem() is not None, reason=str(_cluster_problem()))
pytestmark = pytest.mark.xdist_group("slurm")


def _sweep_file(tmp_path: Path, grid: dict, overrides: list[str]) -> Path:
    path = tmp_path / "sweep.yaml"
    spec = {"experiment": str(EXPERIMENT), "overrides": overrides, "grid": grid, "seeds": [0], "out": str(tmp_path / "out")}
    path.write_text(OmegaConf.to_yaml(OmegaConf.create(spec)))
    return path


def _seqjax(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "seqjax.cli", *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})


def _states(path: Path) -> dict[str, str]:
    """``{trial: state}``, in this process (quick: for the moments a job is running)."""
    return {s.name: s.state for s in sweep_status(path)}


def _status(path: Path) -> dict[str, str]:
    """``{trial: state}`` as ``seqjax sweep FILE --status`` prints them."""
    proc = _seqjax("sweep", str(path), "--status")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split()[:3] == ["trial", "state", "job"]
    return {line.split()[0]: line.split()[1] for line in lines[1:-1]}


def _wait_gone(job: str, timeout_s: float = 120) -> None:
    deadline = time.time() + timeout_s
    while job in queue_states():
        assert time.time() < deadline, f"SLURM job {job} still queued after {timeout_s} s"
        time.sleep(0.5)


def _committed_steps(run_dir: Path) -> list[int]:
    folder = run_dir / "checkpoints"
    return sorted(int(p.name) for p in folder.iterdir() if p.name.isdigit()) if folder.exists() else []


def _final_state(run_dir: Path):
    trainer = Trainer(load_config(run_dir))
    ckpt = trainer.checkpoints()
    state = ckpt.restore(LONG_STEPS, trainer.init_state())
    ckpt.close()
    return jax.device_get(state)


@needs_cluster
def test_four_trials_run_as_one_array_and_report_tabulates_them(tmp_path):
    path = _sweep_file(tmp_path, {"optim.lr": [0.01, 0.02], "model.dropout": [0.0, 0.1]}, TINY)
    run = _seqjax("sweep", str(path), *ARRAY)
    assert run.returncode == 0, run.stdout + run.stderr
    jobs = read_jobs(tmp_path / "out")
    assert len(jobs) == 4 and len(set(jobs.values())) == 4
    assert len({job.split("_")[0] for job in jobs.values()}) == 1, f"not one array: {jobs}"
    assert "submitted 4 array tasks" in run.stdout and "| optim.lr | model.dropout |" in run.stdout
    report = _seqjax("report", str(tmp_path / "out"))
    assert report.returncode == 0, report.stderr
    assert (tmp_path / "out" / "results.csv").read_text().count("\n") == 1 + 4
    assert set(_status(path).values()) == {"done"}
    again = _seqjax("sweep", str(path), *ARRAY)  # everything done: nothing is submitted
    assert again.returncode == 0 and "nothing to submit" in again.stdout, again.stdout + again.stderr
    assert read_jobs(tmp_path / "out") == jobs


@needs_cluster
def test_cancelled_trial_resumes_from_its_checkpoint_bit_exact(tmp_path):
    """``scancel`` mid-run, rerun the submit command: the trial resumes and ends as an uninterrupted run
    does, bitwise; ``--status`` says running, then pending (cancelled) and failed (diverged), then done."""
    path = _sweep_file(tmp_path, {"optim.lr": [3.0e-3, 1.0e30]}, LONG)  # the second diverges (NaN)
    long, diverging = expand(*load_sweep(path))
    assert set(_status(path).values()) == {"pending"}
    submit = _seqjax("sweep", str(path), *ARRAY, "--no-wait")
    assert submit.returncode == 0, submit.stderr
    jobs = read_jobs(tmp_path / "out")
    deadline = time.time() + 240
    while not _committed_steps(long.run_dir) and time.time() < deadline:
        time.sleep(0.05)
    assert _states(path)[long.name] == "running"
    subprocess.run(["scancel", jobs[long.name]], check=True)
    _wait_gone(jobs[long.name])
    _wait_gone(jobs[diverging.name])
    assert not (long.run_dir / "summary.json").exists(), "the trial finished before scancel: make it longer"
    assert 0 < max(_committed_steps(long.run_dir)) < LONG_STEPS
    assert _states(path) == {long.name: "pending", diverging.name: "failed"}

    rerun = _seqjax("sweep", str(path), *ARRAY)
    assert rerun.returncode == 1, rerun.stdout + rerun.stderr  # the diverging trial fails again
    assert f"error: trial {diverging.name} is failed" in rerun.stdout
    assert read_jobs(tmp_path / "out")[long.name] != jobs[long.name]
    log = (long.run_dir / "train.log").read_text()
    assert f"resuming {long.run_dir} from step" in log
    assert json.loads((long.run_dir / "summary.json").read_text())["resumed_from"] > 0
    assert _status(path) == {long.name: "done", diverging.name: "failed"}

    clean = tmp_path / "clean"
    overrides = [o for o in long.overrides if not o.startswith("run_dir=")]
    local = _seqjax("train", str(long.experiment), *overrides, f"run_dir={clean}", "train.progress=false")
    assert local.returncode == 0, local.stderr
    assert read_rows(long.run_dir) == read_rows(clean)  # every train and val row, bitwise
    resumed, uninterrupted = _final_state(long.run_dir), _final_state(clean)
    for a, b in zip(jax.tree.leaves(resumed), jax.tree.leaves(uninterrupted)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.slow  # ~50 s; the suite's scancel test covers resuming from a checkpoint on this cluster
@needs_cluster
def test_preempted_job_is_requeued_by_submitit_and_resumes(tmp_path):
    """SIGUSR2 is what SLURM sends a job before it preempts it or its time runs out (submitit's --signal):
    submitit checkpoints the task, requeues it, and the trial resumes from its checkpoint."""
    path = _sweep_file(tmp_path, {"optim.lr": [3.0e-3]}, LONG)
    trial, = expand(*load_sweep(path))
    submit = _seqjax("sweep", str(path), *ARRAY, "--no-wait")
    assert submit.returncode == 0, submit.stderr
    job = read_jobs(tmp_path / "out")[trial.name]
    deadline = time.time() + 240
    while not _committed_steps(trial.run_dir) and time.time() < deadline:
        time.sleep(0.05)
    subprocess.run(["scancel", "--signal=USR2", job], check=True)
    _wait_gone(job, timeout_s=300)
    logs = "".join(p.read_text() for p in (tmp_path / "out" / "slurm").glob("*_log.err"))
    assert f"Requeued job {job}" in logs
    summary = json.loads((trial.run_dir / "summary.json").read_text())
    assert summary["steps"] == LONG_STEPS and summary["resumed_from"] > 0
    assert read_jobs(tmp_path / "out")[trial.name] == job  # the same job, requeued: nothing to resubmit


@needs_cluster
def test_rerun_refuses_while_a_pending_trials_job_is_queued(tmp_path):
    path = _sweep_file(tmp_path, {"optim.lr": [3.0e-3]}, LONG)
    trial, = expand(*load_sweep(path))
    submit = _seqjax("sweep", str(path), *ARRAY, "--no-wait")
    assert submit.returncode == 0, submit.stderr
    job = read_jobs(tmp_path / "out")[trial.name]
    try:
        again = _seqjax("sweep", str(path), *ARRAY)
        assert again.returncode == 2
        assert again.stderr.count("\n") == 1 and f"still in the SLURM queue as job {job}" in again.stderr, again.stderr
    finally:
        subprocess.run(["scancel", job], check=True)
        _wait_gone(job)


def _one_line_error(capsys, argv: list[str]) -> str:
    try:
        rc = main(argv)
    except SystemExit as e:  # argparse's errors
        rc = e.code
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: ") and err.count("\n") == 1, err
    return err


def test_no_sbatch_on_path_is_one_line(tmp_path, capsys, monkeypatch):
    path = _sweep_file(tmp_path, {"optim.lr": [0.01]}, TINY)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert "no sbatch on PATH" in _one_line_error(capsys, ["sweep", str(path), "--launcher", "slurm"])
    assert not (tmp_path / "out" / "slurm").exists()


def test_missing_submitit_names_the_extra(tmp_path, capsys, monkeypatch):
    if shutil.which("sbatch") is None:
        pytest.skip("sbatch is checked first: no sbatch on PATH here")
    monkeypatch.setitem(sys.modules, "submitit", None)  # what `import submitit` sees when it is not installed
    path = _sweep_file(tmp_path, {"optim.lr": [0.01]}, TINY)
    assert "pip install seqjax[slurm]" in _one_line_error(capsys, ["sweep", str(path), "--launcher", "slurm"])


@pytest.mark.parametrize("options, match", [
    (["--launcher", "slurm", "--slurm.time", "0"], "--slurm.time: must be a whole number >= 1"),
    (["--launcher", "slurm", "--slurm.time", "1:00"], "--slurm.time: invalid"),
    (["--launcher", "slurm", "--slurm.cpus_per_task", "-1"], "--slurm.cpus_per_task: must be"),
    (["--launcher", "slurm", "--slurm.opt", "qos"], "--slurm.opt 'qos' is not KEY=VALUE"),
    (["--slurm.partition", "gpu"], "--slurm.partition needs --launcher slurm"),
    (["--no-wait"], "--no-wait needs --launcher slurm"),
    (["--launcher", "pbs"], "invalid choice: 'pbs'"),
], ids=["time 0", "time not minutes", "cpus", "opt", "partition without slurm", "no-wait without slurm", "launcher"])
def test_bad_slurm_options_are_one_line(tmp_path, capsys, options, match):
    path = _sweep_file(tmp_path, {"optim.lr": [0.01]}, TINY)
    assert match in _one_line_error(capsys, ["sweep", str(path), *options])
    assert not (tmp_path / "out").exists()


def test_status_of_a_sweep_run_here(tmp_path):
    """``--status`` reads any launcher's sweep folder: here a local sweep with a finished and a diverged trial."""
    path = _sweep_file(tmp_path, {"optim.lr": [0.01, 1.0e30]}, TINY)
    done, diverged = expand(*load_sweep(path))
    assert _status(path) == {done.name: "pending", diverged.name: "pending"}
    run = _seqjax("sweep", str(path), "--no-vmap")
    assert run.returncode == 1, run.stdout + run.stderr
    assert _status(path) == {done.name: "done", diverged.name: "failed"}


@needs_cluster
def test_an_option_sbatch_refuses_is_one_line(tmp_path):
    path = _sweep_file(tmp_path, {"optim.lr": [0.01]}, TINY)
    proc = _seqjax("sweep", str(path), "--launcher", "slurm", "--slurm.partition", "nosuch")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith("error: sbatch refused the array: invalid partition specified: nosuch")
