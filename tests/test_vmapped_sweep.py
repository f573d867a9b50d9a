"""Vmapped sweeps: a group of trials in one program equals the trials run alone; random/zip search
axes; seeds aggregated with Student-t intervals.

Tolerance of vmapped vs alone: metrics and final parameters to rtol 1e-4, atol 1e-6 (float32; the
batched matmuls of the vmapped program round differently; measured differences are ~1e-6 relative).
"""

import contextlib
import io
import json
import math
from pathlib import Path

import jax
import numpy as np
import pytest
from omegaconf import OmegaConf

from seqjax.cli import main
from seqjax.errors import UserError
from seqjax.experiment.checkpoints import Checkpoints
from seqjax.experiment.config import load_config
from seqjax.experiment.loop import Trainer
from seqjax.experiment.report import report
from seqjax.experiment.sweep import expand, load_sweep, run_sweep
from seqjax.experiment.writers import read_rows

SMOKE = Path(__file__).resolve().parents[1] / "configs" / "experiments" / "smoke_adding.yaml"
SMALL = ["train.steps=6", "train.log_every=2", "train.eval_every=3", "train.checkpoint_every=3",
         "train.eval_examples=16", "train.eval_batch_size=16", "train.test_examples=16"]
TOL = dict(rtol=1e-4, atol=1e-6)


def _sweep_file(tmp_path, name="sweep.yaml", **fields):
    spec = {"experiment": str(SMOKE), "out": str(tmp_path / "out"), "overrides": SMALL, **fields}
    path = tmp_path / name
    path.write_text(OmegaConf.to_yaml(OmegaConf.create(spec)))
    return path


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """A vmapped sweep of 6 trials (lr x clip_norm zipped, 2 seeds; lr=1e39 diverges) and 3 of them alone."""
    tmp = tmp_path_factory.mktemp("vmapped")
    path = _sweep_file(tmp, zip={"optim.lr": [3e-3, 3e-2, 1e39], "optim.clip_norm": [1.0, None, 1.0]}, seeds=[0, 1])
    failed = run_sweep(path, quiet=True)
    trials = {t.name: t for t in expand(*load_sweep(path))}
    alone = {}
    for name in ("lr=0.003,clip_norm=1.0,seed=0", "lr=0.003,clip_norm=1.0,seed=1", "lr=0.03,clip_norm=None,seed=1"):
        cfg = load_config(SMOKE, [*trials[name].overrides[:-1], f"run_dir={tmp / 'alone' / name}"])
        trainer = Trainer(cfg)
        trainer.run()
        alone[name] = trainer
    return path, trials, failed, alone


def test_vmapped_trials_equal_the_trials_run_alone(swept):
    _, trials, _, alone = swept
    for name, trainer in alone.items():
        together = trials[name].run_dir
        rows, expected = read_rows(together), read_rows(trainer.cfg.run_dir)
        assert [(r["step"], r["split"]) for r in rows] == [(r["step"], r["split"]) for r in expected]
        for row, want in zip(rows, expected):
            numbers = [k for k in want if k not in ("step", "split")]
            np.testing.assert_allclose([row[k] for k in numbers], [want[k] for k in numbers], **TOL)
        like = trainer.init_state()
        mine = _restore_latest(together, trainer, like)
        theirs = _restore_latest(Path(trainer.cfg.run_dir), trainer, like)
        assert int(mine.step) == int(theirs.step) == 6
        jax.tree.map(lambda a, b: np.testing.assert_allclose(np.asarray(a), np.asarray(b), **TOL), mine, theirs)
        summary = json.loads((together / "summary.json").read_text())
        assert summary["steps"] == 6 and summary["param_count"] == json.loads(
            (Path(trainer.cfg.run_dir) / "summary.json").read_text())["param_count"]
        assert OmegaConf.load(together / "config.yaml").optim.lr == trainer.cfg.optim.lr


def _restore_latest(run_dir, trainer, like):
    ckpt = Checkpoints(run_dir, trainer.cfg.train)
    try:
        return ckpt.restore_latest(like)
    finally:
        ckpt.close()


def test_a_diverging_trial_is_masked_out_and_reported(swept):
    path, trials, failed, _ = swept
    diverged = sorted(t.name for t in failed)
    assert diverged == ["lr=1e+39,clip_norm=1.0,seed=0", "lr=1e+39,clip_norm=1.0,seed=1"]
    for name in diverged:
        assert not (trials[name].run_dir / "summary.json").exists()
        assert "became NaN/Inf between steps 0 and 2" in (trials[name].run_dir / "train.log").read_text()
    text = report(load_sweep(path)[0].out)
    assert "not in the table (2 runs without a summary)" in text and "lr=1e+39,clip_norm=1.0,seed=0: error:" in text
    assert "| 0.003 | 1.0 | 2 |" in text  # the other configurations: 2 seeds each


def test_a_vmapped_trial_resumes_alone(swept):
    _, trials, _, _ = swept
    run_dir = trials["lr=0.03,clip_norm=None,seed=0"].run_dir
    before = read_rows(run_dir)
    summary = Trainer(load_config(run_dir, ["train.steps=8"])).run()
    assert summary["resumed_from"] == 6 and summary["steps"] == 8
    rows = read_rows(run_dir)
    assert rows[:len(before)] == before and rows[-2]["step"] == 8


def test_a_rerun_of_a_finished_vmapped_sweep_does_nothing(swept, capsys):
    path, _, _, _ = swept
    run_sweep(path, dry_run=True)
    assert "6 trials, 4 already done" in capsys.readouterr().out  # a re-run retries only the 2 diverged ones


def test_vmap_refuses_a_shape_changing_axis_in_one_line(tmp_path):
    path = _sweep_file(tmp_path, grid={"model.hidden_size": [4, 8]})
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        assert main(["sweep", str(path), "--vmap", "--dry-run"]) == 2
    lines = err.getvalue().strip().splitlines()
    assert len(lines) == 1 and "--vmap: model.hidden_size differs between trials (4 vs 8)" in lines[0]


def test_dry_run_shows_the_groups(tmp_path, capsys):
    path = _sweep_file(tmp_path, grid={"model.hidden_size": [4, 8]}, seeds=[0, 1, 2])
    assert run_sweep(path, dry_run=True, group_size=2) == []
    printed = capsys.readouterr().out.splitlines()
    groups = [line.split("# ")[-1] for line in printed if line.startswith("seqjax train")]
    assert groups == [f"vmapped group {g} of 4" for g in (1, 1, 2, 3, 3, 4)]
    assert run_sweep(path, dry_run=True, vmap=False) == []
    assert "vmapped" not in capsys.readouterr().out


def test_the_default_group_size_counts_every_device(monkeypatch):
    from seqjax.experiment import memory, vmapped

    cfg = load_config(SMOKE)
    need = memory.estimate(cfg)
    per_trial = need["state"] + need["activations"]
    monkeypatch.setattr(memory, "available_bytes", lambda: 2 * (need["data"] + 5 * per_trial + 1))  # 5 trials per half
    assert vmapped.default_group_size(cfg) == 5
    monkeypatch.setattr(vmapped.jax, "device_count", lambda: 4)
    assert vmapped.default_group_size(cfg) == 20  # 5 on each of 4 devices: the trial axis sharded over all 4
    monkeypatch.setattr(memory, "available_bytes", lambda: need["data"])  # not even one trial: still one
    assert vmapped.default_group_size(cfg) == 1


def test_random_axes_are_reproducible_and_in_range(tmp_path):
    random = {"optim.lr": {"loguniform": [1e-4, 1e-2]}, "optim.b1": {"uniform": [0.8, 0.95]},
              "train.batch_size": {"int": [4, 8]}, "optim.name": {"choice": ["adam", "adamw"]}}
    path = _sweep_file(tmp_path, random=random, samples=5, random_seed=3, seeds=[0, 1])
    first, again = expand(*load_sweep(path)), expand(*load_sweep(path))
    assert first == again and len(first) == 10 and len({t.run_dir for t in first}) == 10
    values = [dict(o.split("=", 1) for o in t.overrides if o.split("=")[0] in random) for t in first[::2]]
    assert all(1e-4 <= float(v["optim.lr"]) <= 1e-2 and 0.8 <= float(v["optim.b1"]) <= 0.95
               and v["train.batch_size"] in {"4", "5", "6", "7", "8"} and v["optim.name"] in {"adam", "adamw"}
               for v in values)
    assert [t.name.split(",")[-2] for t in first[::2]] == [f"sample={i}" for i in range(5)]
    other = expand(*load_sweep(_sweep_file(tmp_path, "other.yaml", random=random, samples=5, random_seed=4)))
    assert [t.overrides for t in other] != [t.overrides for t in first[::2]]


@pytest.mark.parametrize("fields, match", [
    ({"random": {"optim.lr": {"loguniform": [1e-4, 1e-2]}}}, "random axes need samples >= 1"),
    ({"random": {"optim.lr": {"lognormal": [0, 1]}}, "samples": 2}, "unknown random.optim.lr distribution"),
    ({"random": {"optim.lr": {"loguniform": [0, 1]}}, "samples": 2}, "needs lo > 0"),
    ({"random": {"optim.lr": {"uniform": [2, 1]}}, "samples": 2}, r"takes \[lo, hi\] with lo < hi"),
    ({"zip": {"optim.lr": [1, 2], "optim.b1": [0.9]}}, "zip axes must be non-empty lists of one length"),
    ({"grid": {"optim.lr": [1]}, "zip": {"optim.lr": [2]}}, "optim.lr is swept twice"),
], ids=["no samples", "unknown distribution", "loguniform at 0", "lo >= hi", "zip lengths", "swept twice"])
def test_bad_search_spaces_fail_in_one_line(tmp_path, fields, match):
    with pytest.raises(UserError, match=match) as e:
        load_sweep(_sweep_file(tmp_path, **fields))
    assert "\n" not in str(e.value)


def test_report_gives_student_t_intervals(tmp_path):
    (tmp_path / "sweep.yaml").write_text("grid: {optim.lr: [0.1]}\n")
    bests = [0.5, 0.7, 0.65]
    for seed, best in enumerate(bests):
        run = tmp_path / f"lr=0.1,seed={seed}"
        run.mkdir()
        (run / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create({"seed": seed, "optim": {"lr": 0.1}})))
        (run / "summary.json").write_text(json.dumps({
            "best_metric": "loss", "best": {"loss": best}, "final": {"val": {"loss": best}},
            "baseline": {"loss": 1 / 6}, "param_count": 100, "wall_time_s": 2.0}))
    text = report(tmp_path)
    half = 4.302652729911275 * np.std(bests, ddof=1) / math.sqrt(3)  # t_{0.975, 2} from the t table
    (row,) = json.loads((tmp_path / "aggregate.json").read_text())["rows"]
    assert row["n"] == 3 and row["best"]["mean"] == pytest.approx(np.mean(bests))
    assert row["best"]["ci95"] == pytest.approx(half, rel=1e-9)
    assert f"| 0.1 | 3 | {np.mean(bests):.4g} ± {half:.2g} |" in text
    assert "best_ci95" in (tmp_path / "aggregate.csv").read_text().splitlines()[0]


def test_an_interrupted_vmapped_group_resumes_bit_identically(tmp_path):
    from seqjax.experiment.vmapped import VmappedTrainer

    def group(run: str, steps: int) -> list:
        cfgs = [load_config(SMOKE, [*SMALL, f"seed={seed}", f"optim.lr={lr}", f"train.steps={steps}",
                                    f"run_dir={tmp_path / run / str(seed)}"]) for seed, lr in ((0, 0.01), (1, 0.02))]
        return VmappedTrainer(cfgs).run()

    group("straight", 6)
    group("interrupted", 3)  # stopped after its checkpoint at step 3, as a kill would leave it
    resumed = group("interrupted", 6)
    assert [s["resumed_from"] for s in resumed] == [3, 3]
    for seed in ("0", "1"):
        a, b = tmp_path / "straight" / seed, tmp_path / "interrupted" / seed
        assert read_rows(a) == read_rows(b)
        trainer = Trainer(load_config(a))
        like = trainer.init_state()
        jax.tree.map(lambda x, y: np.testing.assert_array_equal(np.asarray(x), np.asarray(y)),
                     _restore_latest(a, trainer, like), _restore_latest(b, trainer, like))


def test_the_shipped_vmapped_sweep_is_one_group(tmp_path, capsys):
    shipped = SMOKE.parents[1] / "sweeps" / "adding_rnn_clip.yaml"
    assert run_sweep(shipped, dry_run=True, vmap=True, out=tmp_path / "o") == []
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("seqjax train")]
    assert len(lines) == 45 and all(line.endswith("# vmapped group 1 of 1") for line in lines)


def test_report_plots_against_an_axis_holding_null(tmp_path):
    (tmp_path / "sweep.yaml").write_text("grid: {optim.clip_norm: [null, 1.0]}\n")
    for clip in (None, 1.0):
        run = tmp_path / f"clip_norm={clip},seed=0"
        run.mkdir()
        (run / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create({"seed": 0, "optim": {"clip_norm": clip}})))
        (run / "summary.json").write_text(json.dumps({
            "best_metric": "loss", "best": {"loss": 0.1}, "final": {"val": {"loss": 0.1}},
            "baseline": {"loss": 1 / 6}, "param_count": 100, "wall_time_s": 2.0}))
    assert "| None | 1 | 0.1 |" in report(tmp_path) and (tmp_path / "results.png").exists()


MAMBA = SMOKE.parent / "selective_copy_mamba.yaml"  # warmup_cosine: the swept lr inside a schedule


@pytest.mark.parametrize("experiment, model", [
    (SMOKE, ["model=rnn", "model.hidden_size=8"]),
    pytest.param(MAMBA, ["model.d_model=8", "model.n_layers=1", "model.d_state=4", "task.seq_len=16", "task.num_tokens=4",
             "train.batch_size=8", "optim.warmup_steps=1"], marks=pytest.mark.slow),  # ~30 s of compilation
], ids=["rnn", "mamba"])
@pytest.mark.parametrize("loop", ["vmap", "map"])  # the two forms of a group's step (auto picks map on one CPU)
def test_other_families_vmapped_equal_alone(tmp_path, experiment, model, loop):
    from seqjax.experiment.vmapped import VmappedTrainer

    tiny = [*SMALL, *model, "train.steps=2", "train.log_every=1", "train.eval_every=2", "train.checkpoint_every=2"]
    cfgs = [load_config(experiment, [*tiny, f"seed={seed}", f"optim.lr={lr}", f"run_dir={tmp_path / str(seed)}"])
            for seed, lr in ((0, 0.01), (1, 0.03))]
    group = VmappedTrainer(cfgs, loop=loop)
    assert group.loop == loop
    group.run()
    alone = Trainer(load_config(experiment, [*tiny, "seed=1", "optim.lr=0.03", f"run_dir={tmp_path / 'alone'}"]))
    alone.run()
    for row, want in zip(read_rows(tmp_path / "1"), read_rows(tmp_path / "alone"), strict=True):
        numbers = [k for k in want if k not in ("step", "split")]
        np.testing.assert_allclose([row[k] for k in numbers], [want[k] for k in numbers], **TOL)


@pytest.mark.slow  # a real runner process killed, then two sweeps to compare (~1 min)
def test_kill_9_of_a_vmapped_runner_then_rerun_is_bit_identical(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    fields = dict(grid={"optim.lr": [0.01, 0.02]}, seeds=[0], overrides=[
        *SMALL, "train.steps=400", "train.log_every=5", "train.eval_every=10", "train.checkpoint_every=10"])
    killed = _sweep_file(tmp_path, "killed.yaml", **fields, out=str(tmp_path / "killed"))
    runner = subprocess.Popen([sys.executable, "-m", "seqjax.cli", "sweep", str(killed), "--vmap"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoints = tmp_path / "killed" / "lr=0.01,seed=0" / "checkpoints"
    deadline = time.time() + 240
    while not (checkpoints.is_dir() and any(p.name.isdigit() and int(p.name) >= 30 for p in checkpoints.iterdir())):
        assert runner.poll() is None and time.time() < deadline
        time.sleep(0.05)
    runner.send_signal(signal.SIGKILL)
    runner.wait(timeout=60)
    assert not (tmp_path / "killed" / "lr=0.01,seed=0" / "summary.json").exists()
    assert run_sweep(killed, quiet=True) == []
    straight = _sweep_file(tmp_path, "straight.yaml", **fields, out=str(tmp_path / "straight"))
    assert run_sweep(straight, quiet=True, vmap=True) == []
    for name in ("lr=0.01,seed=0", "lr=0.02,seed=0"):
        a, b = tmp_path / "killed" / name, tmp_path / "straight" / name
        assert json.loads((a / "summary.json").read_text())["resumed_from"] >= 10  # its last finished checkpoint
        assert read_rows(a) == read_rows(b)
        trainer = Trainer(load_config(b))
        like = trainer.init_state()
        jax.tree.map(lambda x, y: np.testing.assert_array_equal(np.asarray(x), np.asarray(y)),
                     _restore_latest(a, trainer, like), _restore_latest(b, trainer, like))
