"""The corruption suite: every file of a real checkpoint damaged in every way, then the run resumed.

A tiny real run (``smoke_adding``, 4 steps, checkpoints at steps 2 and 4) is trained once.  For each
file of its latest checkpoint and each damage -- cut to half its length, zeroed, overwritten with
random bytes, deleted -- a copy of the run is damaged and resumed in process, and must end bit-exact
with the undamaged run (its ``metrics.jsonl`` rows and its step-4 parameters) in one of two ways:

* **fell back**: one warning line says step 4 is unreadable, moved to ``corrupt_checkpoints/4``,
  falling back to step 2; the run retrains steps 3 and 4;
* **intact**: the damaged file is one a restore never reads (a commit marker, the per-process copy of
  data that orbax merged into the step's own database) and the state read still matches the checksum
  written with it, so the run resumes at step 4 and says nothing about it.

The files a restore cannot do without (the metadata, the metrics, the state's tree metadata, manifest
and merged data) must fall back under every damage.  With every checkpoint damaged, ``seqjax train``
and ``seqjax eval`` exit 2 with one line.  One :class:`Trainer` (its compiled steps) resumes every copy:
only ``cfg.run_dir`` changes between cases.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import jax
import numpy as np
import pytest

from seqjax.cli import main
from seqjax.experiment.checkpoints import Checkpoints
from seqjax.experiment.config import load_config
from seqjax.experiment.loop import Trainer
from seqjax.experiment.writers import read_rows

SMOKE = Path(__file__).resolve().parents[1] / "configs/experiments/smoke_adding.yaml"
TINY = ["model.hidden_size=8", "train.steps=4", "train.eval_every=2", "train.checkpoint_every=2",
        "train.log_every=1", "train.eval_examples=16", "train.eval_batch_size=16", "train.batch_size=8",
        "train.progress=false"]
LATEST, PREVIOUS = 4, 2
NEEDED = ("_CHECKPOINT_METADATA", "metrics/metrics", "state/_METADATA", "state/manifest.ocdbt", "state/d/")


def _cut(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _zeroed(path: Path) -> None:
    path.write_bytes(bytes(path.stat().st_size))


def _garbage(path: Path) -> None:
    path.write_bytes(np.random.default_rng(0).bytes(path.stat().st_size))


def _deleted(path: Path) -> None:
    path.unlink()


DAMAGES = [_cut, _zeroed, _garbage, _deleted]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Trainer, Path, list, list]:
    """The trainer, its undamaged run directory, that run's metrics rows and its step-4 parameters."""
    run_dir = tmp_path_factory.mktemp("trained") / "run"
    trainer = Trainer(load_config(SMOKE, [f"run_dir={run_dir}", *TINY]))
    trainer.run()
    return trainer, run_dir, read_rows(run_dir), _params(trainer, run_dir)


def _params(trainer: Trainer, run_dir: Path) -> list:
    ckpt = Checkpoints(run_dir, trainer.cfg.train)
    state = ckpt.restore(LATEST, trainer.init_state())
    ckpt.close()
    return jax.tree.leaves(jax.device_get(state.params))


def _files(run_dir: Path) -> list[str]:
    step_dir = run_dir / "checkpoints" / str(LATEST)
    return sorted(str(p.relative_to(step_dir)) for p in step_dir.rglob("*") if p.is_file())


def _resume(trainer: Trainer, run_dir: Path, capsys) -> list[str]:
    """Resume ``run_dir`` with the module's trainer; its stderr lines."""
    capsys.readouterr()
    trainer.cfg.run_dir = str(run_dir)
    trainer.run()
    return capsys.readouterr().err.splitlines()


@pytest.mark.parametrize("damage", DAMAGES, ids=lambda d: d.__name__.strip("_"))
def test_each_damaged_file_falls_back_or_is_not_needed_and_the_run_ends_bit_exact(trained, tmp_path, capsys, damage):
    trainer, reference, rows, params = trained
    outcomes = {}
    for i, name in enumerate(_files(reference)):
        run_dir = tmp_path / f"case{i}"
        shutil.copytree(reference, run_dir)
        damage(run_dir / "checkpoints" / str(LATEST) / name)
        err = _resume(trainer, run_dir, capsys)
        warnings = [line for line in err if "unreadable" in line]
        if warnings:
            assert len(warnings) == 1 and warnings[0].startswith(f"warning: checkpoint at step {LATEST} is unreadable ("), err
            assert warnings[0].endswith(f"; moved to {run_dir / 'corrupt_checkpoints' / str(LATEST)}; "
                                        f"falling back to step {PREVIOUS}"), warnings[0]
            assert f"resuming {run_dir} from step {PREVIOUS}" in err, err
            outcomes[name] = "fell back"
        else:
            assert f"resuming {run_dir} from step {LATEST}" in err, (name, err)
            outcomes[name] = "intact"
        expected = ("warning: checkpoint", "resuming ", "step ", f"{run_dir} is already trained")
        assert all(line.startswith(expected) for line in err), (name, err)  # nothing else, no traceback
        assert read_rows(run_dir) == rows, name
        for a, b in zip(_params(trainer, run_dir), params, strict=True):
            np.testing.assert_array_equal(a, b, err_msg=name)
    needed = [n for n in outcomes if n.startswith(NEEDED)]
    assert len(needed) >= len(NEEDED) and all(outcomes[n] == "fell back" for n in needed), outcomes
    fell_back = sum(o == "fell back" for o in outcomes.values())
    print(f"\n{damage.__name__.strip('_')}: {len(outcomes)} files, {fell_back} fell back to step {PREVIOUS} "
          f"bit-exact, {len(outcomes) - fell_back} not needed by a restore (resumed at {LATEST} bit-exact)")


def test_with_every_checkpoint_damaged_train_and_eval_exit_2_in_one_line(trained, tmp_path, capsys):
    _, reference, _, _ = trained
    run_dir = tmp_path / "run"
    shutil.copytree(reference, run_dir)
    _garbage(run_dir / "checkpoints" / str(LATEST) / "metrics" / "metrics")  # caught before orbax opens
    _deleted(run_dir / "checkpoints" / str(PREVIOUS) / "state" / "manifest.ocdbt")  # caught by the restore
    capsys.readouterr()
    assert main(["train", str(run_dir)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {run_dir} holds a run that trained (metrics to step {LATEST}) "
                                               "but has no readable checkpoint (step 4 ("), err
    assert "refusing to start over; set train.restart=true" in err[0]
    assert sorted(p.name for p in (run_dir / "corrupt_checkpoints").iterdir()) == [str(PREVIOUS), str(LATEST)]
    assert read_rows(run_dir) == read_rows(reference)  # nothing overwritten

    shutil.rmtree(run_dir / "corrupt_checkpoints")
    shutil.copytree(reference / "checkpoints", run_dir / "checkpoints", dirs_exist_ok=True)
    for step in (PREVIOUS, LATEST):
        _zeroed(run_dir / "checkpoints" / str(step) / "state" / "manifest.ocdbt")
    assert main(["eval", str(run_dir)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {run_dir} has no readable checkpoint (step "), err


def test_eval_falls_back_past_an_unreadable_best_checkpoint(trained, tmp_path, capsys):
    _, reference, _, _ = trained
    run_dir = tmp_path / "run"
    shutil.copytree(reference, run_dir)
    ckpt = Checkpoints(reference, trained[0].cfg.train)
    best = ckpt.best_step()
    ckpt.close()
    other = PREVIOUS if best == LATEST else LATEST
    _cut(run_dir / "checkpoints" / str(best) / "state" / "_METADATA")
    capsys.readouterr()
    assert main(["eval", str(run_dir), "--split", "val"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(f"warning: checkpoint at step {best} is unreadable (")
    assert err[0].endswith(f"falling back to step {other}"), err
