"""Truncated BPTT (``train.tbptt``): one window is full BPTT exactly; windows carry the state and reset at each
episode; the carry is checkpointed, so a resumed run equals an uninterrupted one bit for bit; bad settings
are one-line errors."""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seqjax.errors import UserError
from seqjax.experiment.config import load_config
from seqjax.experiment.evaluate import restore_trained
from seqjax.experiment.loop import Trainer
from seqjax.experiment.workloads import build_workload
from seqjax.experiment.workloads.windows import START

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENT = ROOT / "configs/experiments/copy_lstm_tbptt.yaml"
TINY = ["model.hidden_size=8", "model.embed_dim=4", "task.seq_len=20", "train.batch_size=4",  # streams of 40 steps
        "train.eval_examples=8", "train.test_examples=8", "train.eval_batch_size=8", "train.progress=false",
        "train.log_every=1", "train.eval_every=3", "train.checkpoint_every=3"]


def _config(*overrides: str, run_dir: Path | None = None):
    extra = [f"run_dir={run_dir}"] if run_dir is not None else []
    return load_config(EXPERIMENT, [*TINY, *overrides, *extra])


def test_one_window_is_full_bptt_exactly() -> None:
    full = build_workload(_config("train.tbptt=null"))
    windowed = build_workload(_config("train.tbptt=40"))
    params = full.init(jax.random.key(0))
    batch = full.sample_train(jnp.asarray(0))
    window = windowed.sample_train(jnp.asarray(0))
    assert bool(jnp.all(window[START]))
    np.testing.assert_array_equal(window["inputs"], batch["inputs"])
    (loss, _), grads = jax.value_and_grad(full.loss, has_aux=True)(params, batch, jax.random.key(1), True)
    (w_loss, _), w_grads = jax.value_and_grad(windowed.window_loss, has_aux=True)(params, window,
                                                                                  windowed.init_carry())
    assert float(loss) == float(w_loss)
    jax.tree.map(np.testing.assert_array_equal, w_grads, grads)


def test_windows_carry_the_state_and_reset_at_each_episode() -> None:
    workload = build_workload(_config("train.tbptt=10"))
    params = workload.init(jax.random.key(0))
    episode = build_workload(_config("train.tbptt=null")).sample_train(jnp.asarray(1))  # steps 4..7 of the windows
    carry, losses = workload.init_carry(), []
    for step in range(4, 8):
        window = workload.sample_train(jnp.asarray(step))
        assert bool(jnp.all(window[START])) == (step == 4)
        np.testing.assert_array_equal(window["inputs"], episode["inputs"][:, (step - 4) * 10:(step - 3) * 10])
        loss, (_, carry) = workload.window_loss(params, window, carry)
        losses.append(float(loss))
    full = workload.loss(params, episode, jax.random.key(0), False)[0]  # the parallel form over the whole stream
    np.testing.assert_allclose(np.mean(losses), float(full), rtol=1e-6)


def test_a_resumed_tbptt_run_is_bit_exact(tmp_path: Path) -> None:
    straight = Trainer(_config("train.tbptt=10", "train.steps=6", run_dir=tmp_path / "straight"))
    straight.run()
    Trainer(_config("train.tbptt=10", "train.steps=3", run_dir=tmp_path / "resumed")).run()
    Trainer(_config("train.tbptt=10", "train.steps=6", run_dir=tmp_path / "resumed")).run()  # resumes at step 3
    (_, _, a), (_, _, b) = (restore_trained(_config("train.tbptt=10", "train.steps=6", run_dir=tmp_path / d), 6)
                            for d in ("straight", "resumed"))
    assert jax.tree.leaves(a.carry), "the carry is part of the checkpoint"
    jax.tree.map(np.testing.assert_array_equal, (a.params, a.opt_state, a.carry), (b.params, b.opt_state, b.carry))


@pytest.mark.parametrize("overrides, message", [
    (["train.tbptt=7"], "must divide the task's stream length 40"),
    (["train.tbptt=10", "model.dropout=0.1"], "no dropout"),
    (["train.tbptt=10", "model.bidirectional=true"], "causal"),
])
def test_bad_tbptt_settings_are_one_line_errors(overrides: list[str], message: str) -> None:
    with pytest.raises(UserError, match=message) as e:
        _config(*overrides)
    assert "\n" not in str(e.value)
