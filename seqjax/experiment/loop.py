"""The training loop: config -> run directory with metrics, checkpoints and a summary.

``Trainer(cfg).run()`` builds the workload, optimizer and sharded state, takes the run directory's
lock (:mod:`~seqjax.experiment.run_lock`: a second trainer on it exits with one line naming this one's
PID), resumes from the newest readable checkpoint in ``cfg.run_dir`` if there is one, then for each step ``s``:
train step (jit) -> every ``log_every`` steps a ``train`` row -> every ``eval_every`` steps a ``val``
row on the fixed validation set -> every ``checkpoint_every`` steps (and at the end) an async
checkpoint ranked by the validation metric.  ``summary.json`` holds the final and best metrics, the
task baseline, the parameter count, wall time and device.

A run directory that has a history (metrics, or checkpoints that all turned out unreadable) but no
readable checkpoint is never silently started over: that is a one-line error unless
``train.restart=true``, which discards the history and trains from step 0.  With a readable checkpoint
``train.restart`` changes nothing: the run resumes.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Callable

import jax
import numpy as np
from omegaconf import DictConfig, OmegaConf

from seqjax.cells.diagnostics import count_params
from seqjax.errors import UserError
from seqjax.experiment import distributed
from seqjax.experiment.checkpoints import Checkpoints
from seqjax.experiment.config import RUN_CONFIG, to_yaml
from seqjax.experiment.distributed import batch_sharding, check_divisible
from seqjax.experiment.interrupt import deferred_interrupt
from seqjax.experiment.programs import programs_for
from seqjax.experiment.progress import progress_bar
from seqjax.experiment.run_lock import RunLock
from seqjax.experiment.state import Diverged, TrainState
from seqjax.experiment.writers import METRICS_FILE, MetricsWriter, read_rows


def _global(x: Any, sharding: Any) -> jax.Array:
    """A global array sharded by ``sharding`` from a host copy every process holds in full (multi-host safe)."""
    x = np.asarray(x)
    return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])


def evaluate(eval_fn: Callable, params: Any, data: dict, batch_size: int, mesh: Any) -> dict[str, Any]:
    """Example-weighted mean of ``eval_fn(params, piece)`` over ``data`` cut into ``batch_size`` pieces
    (float64 NumPy values: scalars, or one per trial for a vmapped ``eval_fn``)."""
    n = int(jax.tree.leaves(data)[0].shape[0])
    check_divisible("number of evaluation examples", n, mesh)
    sharding = batch_sharding(mesh)
    totals: dict[str, Any] = {}
    for start in range(0, n, batch_size):
        piece = jax.tree.map(lambda x: x[start:start + batch_size], data)
        size = int(jax.tree.leaves(piece)[0].shape[0])
        metrics = jax.device_get(eval_fn(params, jax.tree.map(lambda x: _global(x, sharding), piece)))
        for k, v in metrics.items():
            totals[k] = totals.get(k, 0.0) + size * np.asarray(v, np.float64)
    return {k: v / n for k, v in totals.items()}


RESUMABLE_CHANGES = {"run_dir", "train.steps", "train.progress", "train.async_checkpoint", "train.restart"}
HISTORY = (METRICS_FILE, "tb", "summary.json", "eval_*.json")  # what train.restart=true discards


def log(message: str) -> None:
    if distributed.is_main_process():
        print(message, file=sys.stderr, flush=True)


def flat_config(cfg: Any, prefix: str = "") -> dict[str, Any]:
    """A nested mapping as ``{"optim.lr": 0.001, ...}``."""
    out = {}
    for k, v in cfg.items():
        out.update(flat_config(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


def prepare_run_dir(cfg: DictConfig) -> Path:
    """Create the run dir and write ``config.yaml``; an existing one must hold the same experiment."""
    run_dir = Path(cfg.run_dir)
    path = run_dir / RUN_CONFIG
    if path.exists():
        saved = flat_config(OmegaConf.to_container(OmegaConf.load(path), resolve=True))
        new = flat_config(OmegaConf.to_container(cfg, resolve=True))
        changed = sorted(k for k in saved.keys() | new.keys()
                         if saved.get(k) != new.get(k) and k not in RESUMABLE_CHANGES)
        if changed:
            raise UserError(f"{run_dir} holds a run with a different config ({', '.join(changed[:5])} differ): "
                            "resume it unchanged, or pick a new run_dir=...")
        steps_before, steps_now = saved.get("train.steps"), new.get("train.steps")
        if steps_before != steps_now and new.get("optim.schedule") != "constant":
            print(f"warning: train.steps changed from {steps_before} to {steps_now} on resume: the "
                  f"{new.get('optim.schedule')} learning-rate schedule is now spread over {steps_now} steps, "
                  "so the learning rate at the resumed step differs from the one the run last used",
                  file=sys.stderr)
    if distributed.is_main_process():
        run_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(to_yaml(cfg))
    return run_dir


def _best(rows: list[dict], metric: str, mode: str) -> dict | None:
    scored = [r for r in rows if r["split"] == "val" and r.get(metric) is not None]
    pick = min if mode == "min" else max
    return pick(scored, key=lambda r: r[metric]) if scored else None


class Trainer:
    """Everything built from one config: workload, optimizer, mesh, jitted steps."""

    def __init__(self, cfg: DictConfig):
        distributed.maybe_initialize()
        self.cfg = cfg
        programs = programs_for(cfg)  # an identical config's, if one was built in this process: no retracing
        self.workload, self.mesh, self.tx, self.schedule = (programs.workload, programs.mesh, programs.tx,
                                                             programs.schedule)
        self._init_key, self.dropout_key = programs.init_key, programs.dropout_key
        self._create, self._train_step, self._eval_step = programs.create, programs.train_step, programs.eval_step
        self._eval_sets: dict[str, dict] = {}

    def init_state(self) -> TrainState:
        return self._create(self._init_key)

    def abstract_state(self) -> TrainState:
        """:meth:`init_state`'s shapes, dtypes and shardings, computed by tracing alone: what a checkpoint
        restores into (no initialisation program compiled or run)."""
        return jax.eval_shape(self._create, self._init_key)

    def checkpoints(self) -> Checkpoints:
        return Checkpoints(self.cfg.run_dir, self.cfg.train, log=log)

    def evaluate(self, params: Any, split: str, examples: int) -> dict[str, float]:
        if split not in self._eval_sets:
            self._eval_sets[split] = self.workload.eval_set(split, examples)
        return evaluate(self._eval_step, params, self._eval_sets[split], self.cfg.train.eval_batch_size, self.mesh)

    def run(self, on_eval: Callable[[int, dict[str, float]], None] | None = None) -> dict:
        """Train (or resume) in ``cfg.run_dir``, holding its lock throughout (process 0 of a multi-host run).

        ``on_eval(step, val)`` is called after each validation row is written; an exception it raises stops
        training there (the row and the earlier checkpoints kept, no summary written) and propagates.
        """
        self._check_best_metric()
        with RunLock(self.cfg.run_dir) if distributed.is_main_process() else contextlib.nullcontext():
            return self._run(on_eval)

    def _run(self, on_eval: Callable[[int, dict[str, float]], None] | None) -> dict:
        cfg, t = self.cfg, self.cfg.train
        run_dir = prepare_run_dir(cfg)
        started = time.time()
        ckpt = self.checkpoints()
        writer, bar = None, None
        try:
            state = self._starting_state(run_dir, ckpt, self.init_state)
            start = int(state.step)
            if start >= t.steps and (run_dir / "summary.json").exists():
                log(f"{run_dir} is already trained to step {start} (train.steps={t.steps}): nothing to do")
                return json.loads((run_dir / "summary.json").read_text())
            writer = MetricsWriter(run_dir, start) if distributed.is_main_process() else None
            bar = progress_bar(t.steps, start, t.progress)
            last_checked = start
            with deferred_interrupt() as interrupted:  # Ctrl-C lands between steps, never inside a save
                for s in range(start + 1, t.steps + 1):
                    if interrupted():
                        raise KeyboardInterrupt
                    state, metrics = self._train_step(state)
                    bar.update(1)
                    at_eval = s % t.eval_every == 0 or s == t.steps
                    if s % t.log_every == 0 or at_eval:
                        self._check_finite(state, last_checked, s, ckpt)
                        last_checked = s
                        row = {**jax.device_get(metrics), "lr": self.schedule(s - 1)}  # lr used by update s
                        if writer:
                            writer.write(s, "train", row)
                        bar.set_postfix(loss=f"{float(row['loss']):.4g}", refresh=False)
                    if at_eval:
                        val = self.evaluate(state.params, "val", t.eval_examples)
                        if writer:
                            writer.write(s, "val", val)
                        self._report(bar, s, val)
                        if s % t.checkpoint_every == 0 or s == t.steps:
                            ckpt.save(state, val)
                        if on_eval is not None:
                            on_eval(s, val)
        finally:
            if bar is not None:
                bar.close()
            ckpt.wait()
            ckpt.close()
            if writer is not None:
                writer.close()
        return self._summarize(run_dir, state, writer.rows if writer else [], started, start)

    def _starting_state(self, run_dir: Path, ckpt: Checkpoints, fresh: Callable[[], TrainState]) -> TrainState:
        """The newest readable checkpoint; else ``fresh()``, unless the run directory has a history that
        starting over would destroy (metrics, or checkpoints that were all unreadable) and not ``train.restart``."""
        state = ckpt.restore_latest(self.abstract_state())
        if state is not None:
            log(f"resuming {run_dir} from step {int(state.step)}")
            return state
        rows, lost = read_rows(run_dir), ckpt.describe_unreadable()
        if not rows and not lost:
            return fresh()
        history = f"metrics to step {rows[-1]['step']}" if rows else "no metrics"
        missing = f"no readable checkpoint ({lost})" if lost else "no checkpoint"
        if not self.cfg.train.restart:
            raise UserError(f"{run_dir} holds a run that trained ({history}) but has {missing}: refusing to start "
                            "over; set train.restart=true to discard its history and train from step 0")
        log(f"train.restart=true: {run_dir} has {missing}; discarding its {history} and training from step 0")
        for pattern in HISTORY:
            for path in run_dir.glob(pattern):
                if path.is_dir():
                    shutil.rmtree(path)
                else:
                    path.unlink()
        return fresh()

    def _check_best_metric(self) -> None:
        """``train.best_metric`` must be one of the validation metrics (found by tracing, no compute)."""
        t = self.cfg.train
        params = jax.eval_shape(self.workload.init, self._init_key)
        example = jax.eval_shape(lambda: self.workload.eval_set("val", t.eval_batch_size))
        names = sorted(jax.eval_shape(self._eval_step, params, example))
        if t.best_metric not in names:
            raise UserError(f"train.best_metric={t.best_metric!r} is not a validation metric of this task: "
                            f"choose one of {', '.join(names)}")

    def _report(self, bar: Any, step: int, val: dict[str, float]) -> None:
        line = self.val_line(step, val)
        if bar.disable:
            log(line)
        else:
            bar.write(line, file=sys.stderr)

    def val_line(self, step: int, val: dict[str, float]) -> str:
        """``step 10: val loss=0.1 (baseline 0.167) ...``"""
        baseline = self.workload.baseline
        return f"step {step}: val " + " ".join(
            f"{k}={v:.4g}" + (f" (baseline {baseline[k]:.4g})" if k in baseline else "") for k, v in val.items())

    def _check_finite(self, state: TrainState, since: int, now: int, ckpt: Checkpoints) -> None:
        bad = int(state.nonfinite)
        if bad and self.cfg.train.on_nan == "stop":
            ckpt.wait()
            kept = ckpt.steps()
            raise Diverged(
                f"the loss, gradients or updated parameters became NaN/Inf between steps {since} and {now}; "
                "stopped (train.on_nan=stop); "
                f"last good checkpoint: {kept[-1] if kept else 'none'}; lower optim.lr or optim.clip_norm, "
                "or set train.on_nan=skip to drop such updates"
            )

    def _summarize(self, run_dir: Path, state: TrainState, rows: list[dict], started: float, start: int) -> dict:
        t = self.cfg.train
        best = _best(rows, t.best_metric, t.best_mode)
        last = {split: next((r for r in reversed(rows) if r["split"] == split), None) for split in ("train", "val")}
        device = jax.devices()[0]
        summary = {
            "name": self.cfg.name,
            "steps": int(state.step),
            "resumed_from": start or None,
            "final": last,
            "best": best,
            "best_metric": t.best_metric,
            "baseline": self.workload.baseline,
            "param_count": count_params(state.params),
            "skipped_nonfinite_steps": int(state.nonfinite),
            "wall_time_s": round(time.time() - started, 3),
            "device": {"platform": device.platform, "kind": device.device_kind, "count": jax.device_count(),
                       "processes": jax.process_count()},
        }
        if distributed.is_main_process():
            (run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        return summary
