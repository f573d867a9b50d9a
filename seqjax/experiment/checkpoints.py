"""Orbax checkpoints of the :class:`~seqjax.experiment.state.TrainState`, written and opened so that they fail safe.

``CheckpointManager`` with the 0.12 preservation policies: ``AnyPreservationPolicy([LatestN(keep_latest),
BestN(n=keep_best)])`` keeps the newest checkpoints (what a resume needs) plus the best ``keep_best``
by the validation metric ``train.best_metric`` (``train.best_mode`` min or max), saved
asynchronously.  Every checkpoint carries its validation metrics and ``state_sha256``
(:func:`state_checksum`: SHA-256 over every leaf's path, dtype, shape and bytes), computed from the
host copy of the state at save time and compared at restore, so silent bit flips in the array data are
caught as well as files that do not parse.  A state holding NaN/Inf is never written: under
``train.on_nan=stop`` saving it raises :class:`~seqjax.experiment.state.Diverged`, otherwise the
checkpoint is skipped with a warning.

Opening is defensive.  Half-written step directories (a run killed mid-save) are removed.  Orbax's
manager reads every step's metrics when it opens, so each step's
``_CHECKPOINT_METADATA`` and ``metrics/metrics`` are parsed first; restoring then walks from the
newest step (:meth:`Checkpoints.restore_latest`) or the best one (:meth:`Checkpoints.restore_best`).
A checkpoint that cannot be read -- its metadata, its metrics or its state, or a state that does not
match its checksum -- is moved to ``<run>/corrupt_checkpoints/<step>`` and reported in one line once
the checkpoint used instead is known::

    warning: checkpoint at step 40 is unreadable (metrics/metrics: JSONDecodeError: ...); moved to
    RUN/corrupt_checkpoints/40; falling back to step 30

When none is left the restore returns ``None`` and :meth:`Checkpoints.describe_unreadable` names what
was moved aside, for the caller's one-line error.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import hashlib
import json
import logging
import shutil
import sys
from pathlib import Path
from typing import Any, Callable, Iterator

import jax
import numpy as np
import orbax.checkpoint as ocp
from orbax.checkpoint.checkpoint_managers import AnyPreservationPolicy, BestN, LatestN

from seqjax.errors import describe
from seqjax.experiment.state import Diverged, TrainState, host_copy, nonfinite_leaves

CHECKSUM = "state_sha256"  # the key of the state's checksum in each checkpoint's metrics
TMP_SUFFIX = ".orbax-checkpoint-tmp"  # orbax's name for a step directory not yet finalized


def state_checksum(host_state: Any) -> str:
    """SHA-256 (hex) over every leaf of a host tree in tree order: its path, dtype, shape and C-order bytes."""
    digest = hashlib.sha256()
    for path, x in jax.tree_util.tree_flatten_with_path(host_state)[0]:
        digest.update(f"{jax.tree_util.keystr(path)}:{x.dtype}:{x.shape}\n".encode())
        digest.update(np.ascontiguousarray(x).tobytes())
    return digest.hexdigest()


def _json_object(step_dir: Path, name: str) -> dict:
    path = step_dir / name
    if not path.is_file():
        raise ValueError(f"{name} is missing")
    try:
        value = json.loads(path.read_bytes())
    except ValueError as e:  # JSONDecodeError, UnicodeDecodeError
        raise ValueError(f"{name}: {describe(e, 120)}") from None
    if not isinstance(value, dict):
        raise ValueError(f"{name} is not a JSON object")
    return value


def _metadata_problem(step_dir: Path) -> str | None:
    """Why orbax could not open ``step_dir`` (a damaged metadata or metrics file, no checksum), or ``None``."""
    try:
        _json_object(step_dir, "_CHECKPOINT_METADATA")
        metrics = _json_object(step_dir, "metrics/metrics")
    except ValueError as e:
        return str(e)
    return None if isinstance(metrics.get(CHECKSUM), str) else f"its metrics hold no {CHECKSUM}"


def _drop_closed_loop_errors() -> None:
    """From now on drop the ``RuntimeError: Event loop is closed`` of reads abandoned by a failed restore:
    they complete, and find orbax's event loop gone, at any later time.  Other unraisable errors still
    reach the hook installed before (installed once)."""
    previous = sys.unraisablehook
    if getattr(previous, "drops_closed_loop", False):
        return

    def hook(unraisable: Any) -> None:
        error = unraisable.exc_value
        if not (isinstance(error, RuntimeError) and str(error) == "Event loop is closed"):
            previous(unraisable)

    hook.drops_closed_loop = True  # type: ignore[attr-defined]
    sys.unraisablehook = hook


@contextlib.contextmanager
def _quiet_failed_reads() -> Iterator[None]:
    """Orbax reads a checkpoint's arrays in many tensorstore tasks at once; when one fails, the ones left
    behind print tracebacks as they are collected or complete ("Exception ignored in <coroutine>",
    "Task exception was never retrieved", "Event loop is closed").  The restore's own exception says
    what went wrong, so these are dropped."""
    hook, asyncio_log = sys.unraisablehook, logging.getLogger("asyncio")
    level = asyncio_log.level
    sys.unraisablehook = lambda unraisable: None
    asyncio_log.setLevel(logging.CRITICAL)
    try:
        yield
    except BaseException:
        gc.collect()  # collect the abandoned tasks while their complaints are still dropped
        sys.unraisablehook = hook
        _drop_closed_loop_errors()
        raise
    else:
        sys.unraisablehook = hook
    finally:
        asyncio_log.setLevel(level)


@dataclasses.dataclass(frozen=True)
class Unreadable:
    """A checkpoint moved aside: its step, why, where to, and whether restoring it was tried."""

    step: int
    reason: str
    moved_to: Path
    tried: bool


class Checkpoints:
    """The checkpoints of one run directory: save, list, restore (falling back past unreadable ones)."""

    def __init__(self, run_dir: str | Path, train_cfg: Any, log: Callable[[str], None] = print):
        self.directory = (Path(run_dir) / "checkpoints").absolute()
        self.quarantine = Path(run_dir).absolute() / "corrupt_checkpoints"
        self.log = log
        self.train_cfg = train_cfg
        self.unreadable: list[Unreadable] = []  # moved aside, not yet reported
        for partial in self.directory.glob(f"*{TMP_SUFFIX}*"):  # half-written by a run that died mid-save
            shutil.rmtree(partial, ignore_errors=True)
        committed = [int(p.name) for p in self.directory.glob("*") if p.is_dir() and p.name.isdigit()]
        for step in sorted(committed, reverse=True):
            problem = _metadata_problem(self.directory / str(step))
            if problem:
                self._move_aside(step, problem, tried=False)
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
            cleanup_tmp_directories=False,  # done above, before the manager opens (orbax's own runs in a thread)
        )
        return ocp.CheckpointManager(self.directory, item_names=("state",), options=options)

    def save(self, state: TrainState, metrics: dict[str, float]) -> None:
        """Write ``state`` (asynchronously) with ``metrics`` and its checksum; never a state holding NaN/Inf."""
        host = host_copy(state)
        bad = nonfinite_leaves(host)
        if bad:
            what = f"the state at step {int(host.step)} holds NaN/Inf ({', '.join(bad[:3])}{', ...' if bad[3:] else ''})"
            if self.train_cfg.on_nan == "stop":
                raise Diverged(f"{what}; stopped without checkpointing it (train.on_nan=stop)")
            self.log(f"warning: {what}; not checkpointed (train.on_nan=skip)")
            return
        args = ocp.args.Composite(state=ocp.args.StandardSave(state))
        self.manager.save(int(host.step), args=args, metrics={**metrics, CHECKSUM: state_checksum(host)}, force=True)

    def wait(self) -> None:
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.close()

    def steps(self) -> list[int]:
        return sorted(self.manager.all_steps())

    def best_step(self) -> int | None:
        return self.manager.best_step()

    def restore(self, step: int, like: TrainState) -> TrainState:
        """The state saved at ``step``, placed with ``like``'s shardings; raises if unreadable or altered."""
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
        with _quiet_failed_reads():
            restored = self.manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract)))
        state = TrainState(*restored.state)
        if state_checksum(host_copy(state)) != self.manager.metrics(step)[CHECKSUM]:
            raise ValueError(f"its state does not match the {CHECKSUM} written with it")
        return state

    def restore_latest(self, like: TrainState) -> TrainState | None:
        """The newest readable checkpoint, falling back past unreadable ones; ``None`` if none is left."""
        return self._restore_first(like, lambda: max(self.steps(), default=None))

    def restore_best(self, like: TrainState) -> TrainState | None:
        """The best readable checkpoint by ``train.best_metric``, falling back to the next best; ``None`` if none."""
        return self._restore_first(like, self.best_step)

    def _restore_first(self, like: TrainState, pick: Callable[[], int | None]) -> TrainState | None:
        while (step := pick()) is not None:
            try:
                state = self.restore(step, like)
            except Exception as e:  # orbax/tensorstore raise many types for damaged files
                self.manager.close()  # a failed restore can leave the manager's caches inconsistent
                self._move_aside(step, describe(e), tried=True)
                self.manager = self._open()
                continue
            self.report(using=step)
            return state
        return None

    def _move_aside(self, step: int, reason: str, tried: bool) -> None:
        target = self.quarantine / str(step)
        self.quarantine.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(target, ignore_errors=True)
        shutil.move(str(self.directory / str(step)), target)
        self.unreadable.append(Unreadable(step, reason, target, tried))

    def report(self, using: int | None) -> None:
        """One warning line per checkpoint moved aside and not yet reported; ``using``: the step used instead."""
        for u in self.unreadable:
            fallback = f"; falling back to step {using}" if using is not None and (u.tried or u.step > using) else ""
            self.log(f"warning: checkpoint at step {u.step} is unreadable ({u.reason}); moved to {u.moved_to}{fallback}")
        self.unreadable.clear()

    def describe_unreadable(self) -> str:
        """``"step 40 (why), step 30 (why) moved to RUN/corrupt_checkpoints"``, or ``""`` if none was moved aside."""
        if not self.unreadable:
            return ""
        listed = ", ".join(f"step {u.step} ({u.reason[:100]})" for u in self.unreadable)
        return f"{listed} moved to {self.quarantine}"
