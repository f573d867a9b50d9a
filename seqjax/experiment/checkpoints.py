"""Orbax checkpoints of the :class:`~seqjax.experiment.state.TrainState`.

``CheckpointManager`` with the 0.12 preservation policies: ``AnyPreservationPolicy([LatestN(keep_latest),
BestN(n=keep_best)])`` keeps the newest checkpoints (what a resume needs) plus the best ``keep_best``
by the validation metric ``train.best_metric`` (``train.best_mode`` min or max), saved
asynchronously.  Every checkpoint carries its validation metrics.

Restoring walks back from the latest step: a checkpoint that fails to restore (half-written,
truncated, corrupted files) or holds non-finite values is moved to ``<run>/corrupt_checkpoints/``,
reported, and the previous one is tried.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Callable

import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp
from orbax.checkpoint.checkpoint_managers import AnyPreservationPolicy, BestN, LatestN

from seqjax.errors import describe
from seqjax.experiment.state import TrainState


class Checkpoints:
    def __init__(self, run_dir: str | Path, train_cfg: Any, log: Callable[[str], None] = print):
        self.directory = (Path(run_dir) / "checkpoints").absolute()
        self.quarantine = Path(run_dir).absolute() / "corrupt_checkpoints"
        self.log = log
        self.train_cfg = train_cfg
        self.manager = self._open()

    def _open(self) -> ocp.CheckpointManager:
        t = self.train_cfg
        best_fn = lambda m: m[t.best_metric]  # noqa: E731
        options = ocp.CheckpointManagerOptions(
            preservation_policy=AnyPreservationPolicy([
                LatestN(n=t.keep_latest),
                BestN(get_metric_fn=best_fn, reverse=(t.best_mode == "min"), n=t.keep_best),
            ]),
            best_fn=best_fn,
            best_mode=t.best_mode,
            enable_async_checkpointing=t.async_checkpoint,
            cleanup_tmp_directories=True,
        )
        return ocp.CheckpointManager(self.directory, item_names=("state",), options=options)

    def save(self, state: TrainState, metrics: dict[str, float]) -> None:
        args = ocp.args.Composite(state=ocp.args.StandardSave(state))
        self.manager.save(int(state.step), args=args, metrics=metrics, force=True)

    def wait(self) -> None:
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.close()

    def steps(self) -> list[int]:
        return sorted(self.manager.all_steps())

    def best_step(self) -> int | None:
        return self.manager.best_step()

    def restore(self, step: int, like: TrainState) -> TrainState:
        """The state saved at ``step``, placed with ``like``'s shardings; raises if unreadable or non-finite."""
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
        state = self.manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract))).state
        state = TrainState(*state)
        floats = [x for x in jax.tree.leaves(state) if jnp.issubdtype(x.dtype, jnp.inexact)]
        if not all(bool(jnp.all(jnp.isfinite(x))) for x in floats):
            raise ValueError("it holds NaN/Inf values")
        return state

    def restore_latest(self, like: TrainState) -> TrainState | None:
        """The newest readable checkpoint, falling back past unreadable ones; ``None`` if there is none."""
        for step in reversed(self.steps()):
            try:
                return self.restore(step, like)
            except Exception as e:  # orbax/tensorstore raise many types for damaged files
                self.quarantine.mkdir(parents=True, exist_ok=True)
                target = self.quarantine / f"{step}"
                shutil.rmtree(target, ignore_errors=True)
                self.manager.close()  # a failed restore can leave the manager's caches inconsistent
                shutil.move(str(self.directory / str(step)), target)
                self.manager = self._open()
                earlier = [s for s in self.steps() if s < step]
                fallback = f"falling back to step {earlier[-1]}" if earlier else "no earlier checkpoint: starting fresh"
                self.log(f"warning: checkpoint at step {step} is unreadable ({describe(e)}); "
                         f"moved to {target}; {fallback}")
        return None
