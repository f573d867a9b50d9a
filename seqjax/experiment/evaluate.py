"""Evaluation on a fixed set: ``metric = sum_i n_i m_i / sum_i n_i`` over pieces of ``eval_batch_size``.

``seqjax eval RUN_DIR`` (:func:`evaluate_run`) restores the best checkpoint (by the validation metric)
and scores it on the fixed test set, writing ``eval_<split>.json`` beside the run's summary.
``task.*`` overrides score the same parameters on a changed task, e.g. ``task.seq_len=1024`` for length
generalization (written to ``eval_<split>_<overrides>.json``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from omegaconf import DictConfig

from seqjax.errors import UserError, check_choice, describe
from seqjax.experiment.checkpoints import Checkpoints
from seqjax.experiment.config import load_config
from seqjax.experiment.state import TrainState

if TYPE_CHECKING:
    from seqjax.experiment.loop import Trainer


def evaluate_run(run_dir: str, split: str = "test", step: int | None = None, overrides: list[str] = ()) -> dict:
    """Score the run's best (or ``step``'s) checkpoint on the fixed ``split``; writes ``eval_<split>.json``."""
    bad = [o for o in overrides if not o.startswith("task.")]
    if bad:
        raise UserError(f"eval override {bad[0]!r} is not allowed: only task.* keys can change for a trained model, "
                        "e.g. task.seq_len=1024")
    cfg = load_config(run_dir, list(overrides))
    trainer, step, state = restore_trained(cfg, step)
    examples = cfg.train.test_examples if split == "test" else cfg.train.eval_examples
    metrics = trainer.evaluate(state.params, split, examples)
    result = {"split": split, "step": step, "examples": examples, "metrics": metrics,
              "baseline": trainer.workload.baseline, "overrides": list(overrides)}
    suffix = "".join(f"_{o.removeprefix('task.').replace('=', '')}" for o in overrides)
    (Path(run_dir) / f"eval_{split}{suffix}.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def restore_trained(cfg: DictConfig, step: int | None = None) -> tuple[Trainer, int, TrainState]:
    """The :class:`~seqjax.experiment.loop.Trainer` of a run directory's config (``cfg.run_dir``) and its best
    (or ``step``'s) checkpoint: ``(trainer, step, state)``; a one-line :class:`UserError` when there is none."""
    from seqjax.experiment.loop import Trainer  # the same model, state and shardings as training

    trainer = Trainer(cfg)
    ckpt = trainer.checkpoints()
    try:
        step, state = _restore(ckpt, trainer.abstract_state(), cfg.run_dir, step)
    finally:
        ckpt.close()
    return trainer, step, state


def _restore(ckpt: Checkpoints, like: TrainState, run_dir: str, step: int | None) -> tuple[int, TrainState]:
    """The best readable checkpoint (unreadable ones moved aside and reported in one line each) or,
    given ``step``, that one; a one-line :class:`UserError` when there is none."""
    state = ckpt.restore_best(like) if step is None else None
    if state is not None:
        return int(state.step), state
    steps = ckpt.steps()
    if not steps:
        lost = ckpt.describe_unreadable()
        raise UserError(f"{run_dir} has no readable checkpoint ({lost}): train it again with "
                        f"`seqjax train {run_dir} train.restart=true`" if lost else
                        f"{run_dir} has no checkpoints: train it first with `seqjax train {run_dir}`")
    ckpt.report(using=None)
    check_choice("checkpoint step", step, steps, where=str(run_dir))
    try:
        return step, ckpt.restore(step, like)
    except Exception as e:  # orbax/tensorstore raise many types for unreadable checkpoints
        raise UserError(f"the checkpoint at step {step} in {run_dir} cannot be read ({describe(e)}); "
                        f"pick another with --step ({', '.join(map(str, steps))})") from None
