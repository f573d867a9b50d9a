"""Adaptive search with Optuna: real SQLite and journal storages, real trials of tiny models, real workers."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from omegaconf import OmegaConf

optuna = pytest.importorskip("optuna")

from optuna.trial import TrialState  # noqa: E402

from seqjax.cli import main  # noqa: E402
from seqjax.experiment.config import load_config  # noqa: E402
from seqjax.experiment.loop import Trainer  # noqa: E402
from seqjax.experiment.optuna_search import PRUNED, load_search, run_search  # noqa: E402
from seqjax.experiment.study_report import BEST, PLOTS, study_report  # noqa: E402
from seqjax.experiment.study_storage import open_storage  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENT = ROOT / "configs" / "experiments" / "smoke_adding.yaml"
TINY = ["model.hidden_size=4", "task.seq_len=5", "train.batch_size=4", "train.eval_examples=8",
        "train.eval_batch_size=8", "train.log_every=2", "train.eval_every=2", "train.checkpoint_every=2"]


def _search_file(tmp_path, steps=4, **search):
    spec = {"experiment": str(EXPERIMENT), "out": str(tmp_path / "out"), "overrides": [*TINY, f"train.steps={steps}"],
            "search": {"space": {"optim.lr": {"loguniform": [1.0e-3, 1.0e-1]}}, "n_trials": 2,
                       "objective": "val.mse", **search}}
    path = tmp_path / "search.yaml"
    path.write_text(OmegaConf.to_yaml(OmegaConf.create(spec)))
    return path


def _study(url, name="search"):
    return optuna.load_study(study_name=name, storage=open_storage(url))


def _states(study):
    return [t.state for t in study.get_trials(deepcopy=False)]


@pytest.mark.parametrize("search, cli, match", [
    ({"sampler": "tpee"}, [], "unknown search.sampler 'tpee'.*did you mean 'tpe'"),
    ({"pruner": "asha"}, [], "unknown search.pruner 'asha'"),
    ({"objective": "mse"}, [], "search.objective='mse' must be val.<metric>"),
    ({"direction": "down"}, [], "unknown search.direction 'down'"),
    ({"n_trials": 0}, [], "search.n_trials=0 is out of range"),
    ({"space": {"optim.lr": {"normal": [0, 1]}}}, [], "unknown random.optim.lr distribution 'normal'"),
    ({"pruner_args": {"n_startup": 1}}, [], "search.pruner_args .* for median"),
    ({"sampler_args": {"n_startup": 1}}, [], "search.sampler_args .* for tpe"),
    ({}, ["--storage", "nosuchdb://x"], "--storage 'nosuchdb://x' cannot be opened"),
    ({}, ["--storage", "journal:"], "--storage 'journal:': journal: needs a file path"),
], ids=["sampler", "pruner", "objective", "direction", "n_trials", "space", "pruner_args", "sampler_args",
        "rdb url", "journal"])
def test_bad_search_sections_exit_2_in_one_line(tmp_path, capsys, search, cli, match):
    import re

    assert main(["sweep", str(_search_file(tmp_path, **search)), *cli]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and re.search(match, err), err
    assert not list((tmp_path / "out").glob("trial-*"))  # nothing ran


def test_killed_search_reruns_to_n_trials_then_reports_a_best_yaml_that_trains(tmp_path):
    """SQLite: a worker killed mid-trial leaves it running; the rerun retries it in its run directory, keeps
    the finished trials and runs on to n_trials; the report's best.yaml trains."""
    # 40 steps, a checkpoint every 2: the second trial runs for seconds after its first checkpoint, long enough for
    # the 0.2 s poll below to catch it on a loaded machine (at 8 steps it once finished in 1.2 s, uncaught)
    path = _search_file(tmp_path, steps=40, n_trials=2, pruner="none")
    url = f"sqlite:///{tmp_path / 'out' / 'optuna.db'}"
    log = open(tmp_path / "first-run.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "seqjax.cli", "sweep", str(path)], cwd=tmp_path, stdout=log,
                            stderr=subprocess.STDOUT)
    deadline, killed = time.time() + 300, None
    while killed is None and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
        if "to run;" not in (tmp_path / "first-run.log").read_text():  # the study exists (tables made once)
            continue
        trials = _study(url).get_trials(deepcopy=False)
        complete = [t for t in trials if t.state == TrialState.COMPLETE]
        running = [t for t in trials if t.state == TrialState.RUNNING and "run_dir" in t.user_attrs]
        if complete and running and list(Path(running[0].user_attrs["run_dir"]).glob("checkpoints/*/commit_*")):
            proc.send_signal(signal.SIGKILL)
            killed = running[0]
    proc.wait()
    log.close()
    assert killed is not None, f"not killed mid-trial: {(tmp_path / 'first-run.log').read_text()[-3000:]}"

    run_search(path, quiet=True)
    study = _study(url)
    trials = study.get_trials(deepcopy=False)
    assert [t.state for t in trials].count(TrialState.COMPLETE) == 2
    assert trials[killed.number].state == TrialState.FAIL  # kept, not restarted: the study grew past it
    retry = next(t for t in trials if t.user_attrs.get("retries") == killed.number)
    assert retry.state == TrialState.COMPLETE and retry.params == killed.params
    assert retry.user_attrs["run_dir"] == killed.user_attrs["run_dir"]  # resumed in its own run directory
    assert "resuming" in (Path(killed.user_attrs["run_dir"]) / "train.log").read_text()  # from its checkpoint

    text = study_report(tmp_path / "out")
    assert f"best: trial {study.best_trial.number}" in text
    assert all((tmp_path / "out" / f"{plot}.png").stat().st_size > 0 for plot in PLOTS)
    cfg = load_config(tmp_path / "out" / BEST, ["train.steps=2"])
    assert cfg.optim.lr == study.best_params["optim.lr"] and cfg.run_dir == str(tmp_path / "out" / "best")
    assert Trainer(cfg).run()["steps"] == 2


def test_median_pruner_prunes_a_bad_trial_in_a_journal_storage(tmp_path):
    """The huge learning rate's first validation value is worse than the good trial's: pruned at step 2.
    Both points proposed again are not trained again: the first takes the good trial's value, the second
    is pruned as its twin was, and neither has a run directory."""
    journal = tmp_path / "shared" / "study.log"
    path = _search_file(tmp_path, space={"optim.lr": {"choice": [1.0e-2, 30.0]}}, sampler="grid", n_trials=4,
                        pruner_args={"n_startup_trials": 1})
    search = load_search(path, storage=f"journal:{journal}")
    study = search.load_study(seed=0)
    for lr in (1.0e-2, 30.0, 1.0e-2, 30.0):
        study.enqueue_trial({"optim.lr": lr})
    run_search(path, quiet=True, storage=f"journal:{journal}")
    study = _study(f"journal:{journal}")
    good, bad, good_again, bad_again = study.get_trials(deepcopy=False)
    assert (good.state, good.params, bad.state, bad.params) == (
        TrialState.COMPLETE, {"optim.lr": 1.0e-2}, TrialState.PRUNED, {"optim.lr": 30.0})
    assert (good_again.state, good_again.value, good_again.user_attrs["same_as"]) == (TrialState.COMPLETE,
                                                                                      good.value, 0)
    assert (bad_again.state, bad_again.user_attrs["same_as"]) == (TrialState.PRUNED, 1)
    assert sorted(p.name for p in (tmp_path / "out").glob("trial-*")) == ["trial-0000", "trial-0001"]
    pruned = json.loads((Path(bad.user_attrs["run_dir"]) / PRUNED).read_text())
    assert pruned["pruned_at_step"] == 2 and pruned["val.mse"] > good.value
    assert not (Path(bad.user_attrs["run_dir"]) / "summary.json").exists()
    assert "trial-0001: pruned at step 2" in main_output(tmp_path / "out")


def main_output(root):
    """What ``seqjax report`` prints for ``root``."""
    out = subprocess.run([sys.executable, "-m", "seqjax.cli", "report", str(root)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_two_workers_on_one_sqlite_study_run_n_trials_without_repeats(tmp_path):
    path = _search_file(tmp_path, n_trials=2, sampler="random", pruner="none")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "seqjax.cli", "sweep", str(path), "--jobs", "2"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    trials = _study(f"sqlite:///{tmp_path / 'out' / 'optuna.db'}").get_trials(deepcopy=False)
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2
    run_dirs = [t.user_attrs["run_dir"] for t in trials]
    assert len(set(run_dirs)) == 2 and all((Path(d) / "summary.json").exists() for d in run_dirs)
    logs = [(tmp_path / "out" / f"worker-{i}.log").read_text() for i in range(2)]
    assert sum(log.count("[done]") for log in logs) == 2  # each trial trained by exactly one worker
