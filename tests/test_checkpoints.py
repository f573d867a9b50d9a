"""Checkpoints: a damaged or half-written latest checkpoint is detected, reported and skipped; the run
falls back to the previous good one and ends exactly where an undamaged run ends."""

from __future__ import annotations

import shutil
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest

from seqjax.experiment.config import load_config
from seqjax.experiment.checkpoints import Checkpoints
from seqjax.experiment.loop import Trainer
from seqjax.experiment.writers import read_rows

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "configs/experiments/smoke_adding.yaml"


def _trainer(run_dir: Path) -> Trainer:
    return Trainer(load_config(SMOKE, [f"run_dir={run_dir}"]))


def _params(trainer: Trainer, step: int):
    ckpt = trainer.checkpoints()
    state = ckpt.restore(step, trainer.init_state())
    ckpt.close()
    return jax.device_get(state.params)


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> tuple[Path, list]:
    """An undamaged 40-step run (checkpoints kept: 30, 40 and the best) and its final parameters."""
    run_dir = tmp_path_factory.mktemp("finished")
    trainer = _trainer(run_dir)
    trainer.run()
    return run_dir, jax.tree.leaves(_params(trainer, 40))


def _data_files(step_dir: Path) -> list[Path]:
    return [p for p in (step_dir / "state").rglob("*") if p.is_file() and p.parent.name == "d"]


def _truncated(step_dir: Path) -> None:
    """Array data files cut short, as by a crash mid-write on a filesystem without atomic renames."""
    for f in _data_files(step_dir):
        f.write_bytes(f.read_bytes()[:5])


def _missing_item(step_dir: Path) -> None:
    shutil.rmtree(step_dir / "state")


def _rewritten_state(step_dir: Path) -> None:
    """The state item replaced by a well-formed one holding other values (here the step-0 parameters):
    every file parses, only the checksum written with the checkpoint tells."""
    state = _trainer(step_dir.parent.parent).init_state()._replace(step=jnp.asarray(int(step_dir.name), jnp.int32))
    shutil.rmtree(step_dir / "state")
    with ocp.StandardCheckpointer() as writer:
        writer.save(step_dir / "state", state)


@pytest.mark.parametrize("damage", [_truncated, _missing_item, _rewritten_state])
def test_damaged_latest_falls_back_to_the_previous_checkpoint(finished, tmp_path, capsys, damage):
    finished_dir, finished_params = finished
    run_dir = tmp_path / "run"
    shutil.copytree(finished_dir, run_dir)
    damage(run_dir / "checkpoints" / "40")
    capsys.readouterr()

    trainer = _trainer(run_dir)
    summary = trainer.run()

    err = capsys.readouterr().err
    assert "warning: checkpoint at step 40 is unreadable" in err and "falling back to step 30" in err, err
    assert f"resuming {run_dir} from step 30" in err
    assert summary["resumed_from"] == 30 and (run_dir / "corrupt_checkpoints" / "40").is_dir()
    assert read_rows(run_dir) == read_rows(finished_dir)  # retrained 31..40 exactly as before
    for a, b in zip(jax.tree.leaves(_params(trainer, 40)), finished_params, strict=True):
        np.testing.assert_array_equal(a, b)


def test_half_written_temporary_checkpoint_is_ignored(finished, tmp_path, capsys):
    run_dir = tmp_path / "run"
    shutil.copytree(finished[0], run_dir)
    partial = run_dir / "checkpoints" / "50.orbax-checkpoint-tmp-1700000000000000"
    shutil.copytree(run_dir / "checkpoints" / "40", partial)
    _truncated(partial)
    trainer = Trainer(load_config(SMOKE, [f"run_dir={run_dir}", "train.steps=50"]))
    ckpt = trainer.checkpoints()
    state = ckpt.restore_latest(trainer.init_state())
    ckpt.close()
    assert int(state.step) == 40 and not partial.exists()
    assert "unreadable" not in capsys.readouterr().err


def test_eval_of_an_unreadable_checkpoint_is_one_clear_error(finished, tmp_path):
    from seqjax.errors import UserError
    from seqjax.experiment.evaluate import evaluate_run

    run_dir = tmp_path / "run"
    shutil.copytree(finished[0], run_dir)
    (run_dir / "config.yaml").write_text((finished[0] / "config.yaml").read_text().replace(
        str(finished[0]), str(run_dir)))
    _missing_item(run_dir / "checkpoints" / "40")
    with pytest.raises(UserError, match=r"checkpoint at step 40 .* cannot be read.*--step"):
        evaluate_run(str(run_dir), step=40)


@pytest.mark.parametrize("on_nan", ["stop", "skip"])
def test_a_state_holding_nan_is_never_checkpointed(tmp_path, on_nan):
    from seqjax.experiment.loop import Diverged

    trainer = Trainer(load_config(SMOKE, [f"run_dir={tmp_path}", f"train.on_nan={on_nan}"]))
    state = trainer.init_state()
    state = state._replace(step=jnp.asarray(10, jnp.int32),
                           params=jax.tree.map(lambda x: x.at[(0,) * x.ndim].set(jnp.inf), state.params))
    warnings = []
    ckpt = Checkpoints(tmp_path, trainer.cfg.train, log=warnings.append)
    if on_nan == "stop":
        with pytest.raises(Diverged, match=r"state at step 10 holds NaN/Inf \(\.params\[.*stopped without checkpointing"):
            ckpt.save(state, {"loss": 1.0})
    else:
        ckpt.save(state, {"loss": 1.0})
        assert len(warnings) == 1 and "holds NaN/Inf" in warnings[0] and "not checkpointed" in warnings[0]
    ckpt.wait()
    assert ckpt.steps() == []
    ckpt.close()
