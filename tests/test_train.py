"""The training loop: step numerics vs NumPy, optimizers and schedules vs closed forms, heads, NaN
handling, the run directory, `seqjax eval`, and a short run that beats the adding baseline."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import yaml
from omegaconf import OmegaConf

from seqjax.experiment.config import OptimConfig, load_config
from seqjax.experiment.schema import with_name
from seqjax.cells.diagnostics import count_params
from seqjax.models.sequence_model import build_model
from seqjax.models.sequence_model import last_step
from seqjax.models.recurrent import RecurrentOptions
from seqjax.tasks import fixed_split, make_task
from seqjax.tasks.adding import AddingOptions
from seqjax.tasks.copy_memory import CopyOptions
from seqjax.errors import UserError
from seqjax.experiment.evaluate import evaluate_run
from seqjax.experiment.loop import Diverged, Trainer
from seqjax.experiment.optim import make_optimizer, make_schedule
from seqjax.experiment.state import TrainState
from seqjax.experiment.step import make_train_step
from seqjax.experiment.workloads import Workload, WorkloadSpec, register_workload
from seqjax.experiment.writers import read_rows

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "configs/experiments/smoke_adding.yaml"
NAN_FROM = 25  # the toy workload's loss is NaN from this step on


def _toy_batch(key: jax.Array, n: int, step) -> dict:
    x = jax.random.normal(key, (n, 2))
    return {"x": x, "y": x @ jnp.array([1.5, -2.0]) + 0.5, "step": jnp.full((n,), step)}


def _toy_loss(params, batch, key, train):
    err = batch["x"] @ params["w"] + params["b"] - batch["y"]
    loss = jnp.mean(err**2) + jnp.where(jnp.any(batch["step"] >= NAN_FROM), jnp.nan, 0.0)
    return loss, {"loss": loss}


TOY = Workload(
    init=lambda key: {"w": jnp.zeros(2), "b": jnp.zeros(())},
    loss=_toy_loss,
    sample_train=lambda step: _toy_batch(jax.random.fold_in(jax.random.key(1), step), 8, step),
    eval_set=lambda split, n: _toy_batch(jax.random.key(2), n, -1),
    baseline={"loss": 1.5**2 + 2.0**2},
)


@dataclasses.dataclass
class ToyModel:
    pass


# a second model family plugged in through the workload hook
register_workload("toy_nan", WorkloadSpec(model_schema=lambda name: with_name(ToyModel, name), build=lambda cfg: TOY))


def _smoke(tmp_path: Path, *overrides: str):
    return load_config(SMOKE, [f"run_dir={tmp_path}", *overrides])


def _optim(**kw) -> OptimConfig:
    return OmegaConf.structured(OptimConfig(**kw))


# ------------------------------------------------------------------ the step


def test_train_step_matches_numpy_clipped_sgd():
    lr, theta = 0.1, 0.5
    tx = make_optimizer(_optim(name="sgd", lr=lr, momentum=0.0, clip_norm=theta), 10)
    state = TrainState.create({"w": jnp.array([0.3, -0.2]), "b": jnp.array(0.1)}, tx)
    new, logged = jax.jit(make_train_step(TOY, tx, jax.random.key(0)))(state)

    batch = jax.device_get(TOY.sample_train(0))
    x, y = np.asarray(batch["x"], np.float64), np.asarray(batch["y"], np.float64)
    w, b = np.array([0.3, -0.2]), 0.1
    err = x @ w + b - y
    g_w, g_b = 2 * x.T @ err / len(y), 2 * err.mean()
    norm = math.sqrt((g_w**2).sum() + g_b**2)
    scale = min(1.0, theta / norm)
    assert norm > theta  # the clip is active
    np.testing.assert_allclose(logged["grad_norm"], norm, rtol=1e-5)  # before clipping
    np.testing.assert_allclose(new.params["w"], w - lr * scale * g_w, rtol=1e-5)
    np.testing.assert_allclose(new.params["b"], b - lr * scale * g_b, rtol=1e-5)
    np.testing.assert_allclose(logged["update_norm"], lr * scale * norm, rtol=1e-5)
    new_norm = math.sqrt(((w - lr * scale * g_w) ** 2).sum() + (b - lr * scale * g_b) ** 2)
    np.testing.assert_allclose(logged["param_norm"], new_norm, rtol=1e-5)
    np.testing.assert_allclose(logged["loss"], (err**2).mean(), rtol=1e-5)
    assert int(new.step) == 1 and int(new.nonfinite) == 0


def test_nonfinite_step_keeps_params_and_counts_it():
    tx = make_optimizer(_optim(name="adam", lr=0.1), 10)
    step = jax.jit(make_train_step(TOY, tx, jax.random.key(0)))
    state = TrainState.create(TOY.init(None), tx)._replace(step=jnp.asarray(NAN_FROM - 1, jnp.int32))
    state, _ = step(state)  # finite: params move
    before = jax.device_get(state)
    state, logged = step(state)  # NaN loss: update dropped
    assert not np.isfinite(logged["loss"]) and int(state.nonfinite) == 1 and int(state.step) == NAN_FROM + 1
    for a, b in zip(jax.tree.leaves(before.params) + jax.tree.leaves(before.opt_state),
                    jax.tree.leaves(state.params) + jax.tree.leaves(state.opt_state)):
        np.testing.assert_array_equal(a, b)


def test_an_overflowing_update_is_dropped_though_loss_and_gradients_are_finite():
    tx = make_optimizer(_optim(name="adam", lr=1e39), 10)  # |update| ~ lr overflows float32
    step = jax.jit(make_train_step(TOY, tx, jax.random.key(0)))
    state = TrainState.create(TOY.init(None), tx)
    new, logged = step(state)
    assert np.isfinite(logged["loss"]) and np.isfinite(logged["grad_norm"]) and not np.isfinite(logged["update_norm"])
    assert int(new.nonfinite) == 1 and int(new.step) == 1
    for a, b in zip(jax.tree.leaves((state.params, state.opt_state)), jax.tree.leaves((new.params, new.opt_state))):
        np.testing.assert_array_equal(a, b)


def test_on_nan_skip_under_an_overflowing_update_leaves_only_finite_checkpoints(tmp_path):
    from seqjax.experiment.state import host_copy, nonfinite_leaves

    cfg = _smoke(tmp_path, "optim.lr=1e39", "train.on_nan=skip", "train.steps=20", "train.keep_latest=3")
    summary = Trainer(cfg).run()
    assert summary["skipped_nonfinite_steps"] == 20
    trainer = Trainer(cfg)
    ckpt = trainer.checkpoints()
    assert ckpt.steps() == [10, 20]
    for step in ckpt.steps():
        assert nonfinite_leaves(host_copy(ckpt.restore(step, trainer.init_state()))) == []
    ckpt.close()
    assert not (tmp_path / "corrupt_checkpoints").exists()


# ------------------------------------------------------------- optimizers


@pytest.mark.parametrize("name", ["adam", "adamw", "rmsprop", "sgd"])
def test_first_update_of_each_optimizer_matches_its_closed_form(name):
    lr, wd, decay, eps = 0.01, 0.1, 0.9, 1e-8
    cfg = _optim(name=name, lr=lr, clip_norm=None, momentum=0.0, decay=decay, eps=eps,
                 weight_decay=wd if name == "adamw" else 0.0)
    tx = make_optimizer(cfg, 100)
    p, g = jnp.array([0.5, -1.0, 2.0]), jnp.array([0.3, -0.04, 1.2])
    updates, _ = tx.update(g, tx.init(p), p)
    gn, pn = np.asarray(g, np.float64), np.asarray(p, np.float64)
    expected = {
        "adam": -lr * gn / (np.abs(gn) + eps),  # m_hat = g, v_hat = g^2
        "adamw": -lr * (gn / (np.abs(gn) + eps) + wd * pn),
        "rmsprop": -lr * gn / np.sqrt((1 - decay) * gn**2 + eps),  # optax: eps inside the root
        "sgd": -lr * gn,
    }[name]
    np.testing.assert_allclose(updates, expected, rtol=1e-5)


def test_sgd_momentum_accumulates():
    tx = make_optimizer(_optim(name="sgd", lr=0.1, momentum=0.9, clip_norm=None), 10)
    p, g = jnp.ones(2), jnp.array([1.0, -2.0])
    opt = tx.init(p)
    u1, opt = tx.update(g, opt, p)
    u2, _ = tx.update(g, opt, p)
    np.testing.assert_allclose(u2, -0.1 * (0.9 * g + g), rtol=1e-6)


def test_warmup_cosine_schedule_closed_form():
    lr, warm, total, frac = 2e-3, 10, 110, 0.1
    sched = make_schedule(_optim(lr=lr, schedule="warmup_cosine", warmup_steps=warm, final_lr_fraction=frac), total)
    for s in [0, 5, 10, 35, 60, 110]:
        if s <= warm:
            want = lr * s / warm
        else:
            t = (s - warm) / (total - warm)
            want = lr * frac + (lr - lr * frac) * 0.5 * (1 + math.cos(math.pi * t))
        np.testing.assert_allclose(sched(s), want, rtol=1e-5, atol=1e-12)
    assert make_schedule(_optim(lr=lr), total)(77) == pytest.approx(lr)


# -------------------------------------------------------------------- heads


def test_last_step_reads_position_length_minus_one():
    y = np.random.default_rng(0).normal(size=(3, 5, 4)).astype(np.float32)
    lengths = np.array([5, 1, 3])
    np.testing.assert_array_equal(last_step(jnp.asarray(y), jnp.asarray(lengths)), y[np.arange(3), lengths - 1])
    np.testing.assert_array_equal(last_step(jnp.asarray(y)), y[:, -1])


def test_model_from_config_output_shapes_follow_the_task_kind():
    opts = RecurrentOptions(hidden_size=6)
    for task, shape in [(make_task("adding"), (2, 1)), (make_task("copy", CopyOptions(seq_len=3)), (2, 23, 10))]:
        batch = jax.jit(task.sample, static_argnums=1)(jax.random.key(0), 2)
        model = build_model("gru", opts, task, embed_dim=5)
        params = jax.jit(model.init)(jax.random.key(1), batch["inputs"])["params"]
        assert jax.eval_shape(model.apply, {"params": params}, batch["inputs"]).shape == shape
        assert ("embed" in params) == (task.input_vocab is not None)


# -------------------------------------------------------------- the loop


def test_run_dir_summary_and_eval(tmp_path):
    cfg = _smoke(tmp_path)
    summary = Trainer(cfg).run()
    for name in ["config.yaml", "metrics.jsonl", "summary.json", "checkpoints"]:
        assert (tmp_path / name).exists(), name
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))
    rows = read_rows(tmp_path)
    train_rows = [r for r in rows if r["split"] == "train"]
    val_rows = [r for r in rows if r["split"] == "val"]
    assert [r["step"] for r in train_rows] == list(range(5, 41, 5))
    assert [r["step"] for r in val_rows] == [10, 20, 30, 40]
    assert {"loss", "mse", "grad_norm", "param_norm", "update_norm", "lr"} <= train_rows[0].keys()
    assert train_rows[0]["lr"] == pytest.approx(cfg.optim.lr)

    on_disk = json.loads((tmp_path / "summary.json").read_text())
    assert on_disk == json.loads(json.dumps(summary))
    best = min(val_rows, key=lambda r: r["loss"])
    assert summary["best"] == best and summary["final"]["val"] == val_rows[-1]
    assert summary["baseline"]["mse"] == pytest.approx(1 / 6)
    assert summary["device"]["platform"] == "cpu" and summary["wall_time_s"] > 0

    # kept: the newest keep_latest=2 checkpoints plus the best one by validation loss
    trainer = Trainer(cfg)
    ckpt = trainer.checkpoints()
    assert ckpt.steps() == sorted({30, 40, best["step"]})
    assert ckpt.best_step() == best["step"]
    state = ckpt.restore(best["step"], trainer.init_state())
    ckpt.close()
    assert summary["param_count"] == count_params(state.params)

    # seqjax eval: the best checkpoint on the fixed test set, vs predictions scored here in NumPy
    result = evaluate_run(str(tmp_path))
    assert result["step"] == best["step"] and json.loads((tmp_path / "eval_test.json").read_text()) == result
    task = make_task("adding", AddingOptions(seq_len=cfg.task.seq_len))
    test = fixed_split(task, cfg.data_seed, "test", cfg.train.test_examples)
    model = build_model("lstm", RecurrentOptions(hidden_size=8), task, embed_dim=cfg.model.embed_dim)
    preds = np.asarray(model.apply({"params": state.params}, test["inputs"]), np.float64)
    mse = np.mean((preds - np.asarray(test["targets"], np.float64)) ** 2)
    np.testing.assert_allclose(result["metrics"]["mse"], mse, rtol=1e-5)

    # the same parameters on a longer task (length generalization), written to its own file
    longer = cfg.task.seq_len * 2
    result = evaluate_run(str(tmp_path), overrides=[f"task.seq_len={longer}"])
    assert json.loads((tmp_path / f"eval_test_seq_len{longer}.json").read_text()) == result
    test = fixed_split(make_task("adding", AddingOptions(seq_len=longer)), cfg.data_seed, "test", cfg.train.test_examples)
    preds = np.asarray(model.apply({"params": state.params}, test["inputs"]), np.float64)
    np.testing.assert_allclose(result["metrics"]["mse"], np.mean((preds - np.asarray(test["targets"])) ** 2), rtol=1e-5)
    with pytest.raises(UserError, match="only task.* keys"):
        evaluate_run(str(tmp_path), overrides=["model.hidden_size=4"])


def test_short_run_beats_the_adding_baseline(tmp_path):
    summary = Trainer(_smoke(tmp_path, "model.hidden_size=16", "train.steps=300", "train.batch_size=32",
                             "train.eval_every=150", "train.checkpoint_every=150", "train.log_every=50")).run()
    assert summary["best"]["mse"] < 0.25 * summary["baseline"]["mse"], summary["best"]


def _toy_cfg(tmp_path: Path, on_nan: str):
    """The smoke experiment with the toy workload in place of the model."""
    exp = yaml.safe_load(SMOKE.read_text())
    exp["defaults"] = {"task": str(ROOT / "configs/tasks/adding.yaml"), "optim": str(ROOT / "configs/optim/adam.yaml")}
    exp.update(workload="toy_nan", model={"name": "toy"})
    path = tmp_path / "toy.yaml"
    path.write_text(yaml.safe_dump(exp))
    return load_config(path, [f"run_dir={tmp_path / 'run'}", f"train.on_nan={on_nan}"])


def test_on_nan_stop_keeps_the_last_good_checkpoint(tmp_path):
    with pytest.raises(Diverged, match=r"between steps 25 and 30.*last good checkpoint: 20"):
        Trainer(_toy_cfg(tmp_path, "stop")).run()
    trainer = Trainer(_toy_cfg(tmp_path, "stop"))
    ckpt = trainer.checkpoints()
    assert ckpt.steps() == [10, 20]
    assert int(ckpt.restore(20, trainer.init_state()).step) == 20
    ckpt.close()


def test_on_nan_skip_drops_the_bad_updates(tmp_path):
    summary = Trainer(_toy_cfg(tmp_path, "skip")).run()
    assert summary["steps"] == 40 and summary["skipped_nonfinite_steps"] == 40 - NAN_FROM
    rows = read_rows(tmp_path / "run")
    assert [r["loss"] for r in rows if r["split"] == "train" and r["step"] > NAN_FROM] == [None] * 3  # NaN -> null
    val = {r["step"]: r["loss"] for r in rows if r["split"] == "val"}
    assert val[30] == val[40]  # params frozen after the NaN steps


@pytest.mark.slow
def test_quickstart_beats_the_baseline(tmp_path):
    """The README's first command, in full (about 30 s on a laptop CPU)."""
    summary = Trainer(load_config(ROOT / "configs/experiments/adding_lstm.yaml", [f"run_dir={tmp_path}"])).run()
    assert summary["final"]["val"]["mse"] < 0.01 < summary["baseline"]["mse"]


@pytest.mark.parametrize("schedule, warned", [("warmup_cosine", True), ("constant", False)])
def test_resuming_with_more_steps_warns_when_the_schedule_depends_on_them(tmp_path, capsys, schedule, warned):
    from seqjax.experiment.config import load_config
    from seqjax.experiment.loop import prepare_run_dir

    exp = "configs/experiments/adding_lstm.yaml"
    base = [f"run_dir={tmp_path}", f"optim.schedule={schedule}"]
    prepare_run_dir(load_config(exp, [*base, "train.steps=100"]))
    capsys.readouterr()
    prepare_run_dir(load_config(exp, [*base, "train.steps=200"]))  # allowed: extends the run
    err = capsys.readouterr().err
    assert ("train.steps changed from 100 to 200" in err) == warned
