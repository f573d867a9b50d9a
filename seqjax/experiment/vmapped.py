"""Trials trained together: one compiled train step over a leading trial axis.

Trials whose resolved configs differ only in :data:`VMAPPABLE` keys -- the seed and the optimizer's
numbers -- run the same program on different numbers, so :class:`VmappedTrainer` stacks their training
states along a new leading axis (parameters, optimizer state, step, the NaN counter) and runs
:func:`~seqjax.experiment.step.make_train_step` under ``jax.vmap`` with each trial's dropout key (or, on a
CPU, as a loop over the trials inside the same program: :func:`trial_loop`).  The
optimizer is :func:`~seqjax.experiment.optim.make_optimizer` under ``optax.inject_hyperparams``: the
values that differ between the trials (``lr``, ``clip_norm`` -- ``null`` is the largest float32, which
clips no finite gradient --, ``b1``, ``weight_decay``, ...) live in the optimizer state, one per trial.  Parameters are
initialised from each trial's own ``seed`` exactly as :class:`~seqjax.experiment.loop.Trainer` does.

Each trial keeps its own run directory, written by its own ``Trainer``'s pieces (``prepare_run_dir``,
:class:`~seqjax.experiment.writers.MetricsWriter`, :class:`~seqjax.experiment.checkpoints.Checkpoints`,
the summary): its ``config.yaml``, ``metrics.jsonl``, checkpoints (the solo state: the injected
values are dropped on save and put back on restore) and ``summary.json`` are what the trial trained
alone writes, to float tolerance (each trial's state is gathered onto its solo placement before it is
written), so ``seqjax eval``, ``seqjax report`` and ``seqjax train RUN_DIR``
(resuming it alone) work on it unchanged.  Log lines go to ``<run_dir>/train.log``.

Every trial resumes from its own newest checkpoint and carries its own step; a trial that is done,
or that diverged (NaN/Inf under ``train.on_nan=stop``, found at a logging step exactly as alone), is
masked out: its state is frozen (``jnp.where``) while the others go on, and its ``Diverged`` is
returned in its place.

The group runs on :func:`~seqjax.experiment.distributed.group_mesh`: its state is sharded along the
trial axis over the mesh's ``trials`` axis (replicated over ``data``), and each trial's batch over
``data`` (``jax.vmap(..., spmd_axis_name="trials")`` turns the step's batch constraint into
``("trials", "data")``), so a group fills every local device.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import json
import time
import types
from pathlib import Path
from typing import IO, Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from omegaconf import DictConfig, OmegaConf

from seqjax.errors import UserError
from seqjax.experiment import distributed, memory
from seqjax.experiment.checkpoints import Checkpoints
from seqjax.experiment.interrupt import deferred_interrupt
from seqjax.experiment.loop import Trainer, evaluate, flat_config, prepare_run_dir
from seqjax.experiment.optim import make_optimizer
from seqjax.experiment.progress import progress_bar
from seqjax.experiment.run_lock import RunLock
from seqjax.experiment.state import Diverged, TrainState
from seqjax.experiment.step import make_eval_step, make_train_step
from seqjax.experiment.writers import MetricsWriter

VMAPPABLE = ("seed", "optim.lr", "optim.clip_norm", "optim.weight_decay", "optim.b1", "optim.b2", "optim.eps",
             "optim.momentum", "optim.decay", "optim.final_lr_fraction", "optim.ssm_lr")
OWN = ("run_dir",)  # each trial's own, outside the program
LOG = "train.log"
NO_CLIP = float(np.finfo(np.float32).max)  # clip_norm=null: no finite gradient norm reaches it (inf is not finite)


def program_key(cfg: DictConfig) -> dict[str, Any]:
    """What a trial's compiled program depends on: every resolved key except :data:`VMAPPABLE` ones (of
    which only whether ``optim.ssm_lr`` is set and whether ``optim.momentum`` is 0) and ``run_dir``.

    >>> from pathlib import Path
    >>> import seqjax
    >>> from seqjax.experiment.config import load_config
    >>> path = Path(seqjax.__file__).parents[1] / "configs" / "experiments" / "smoke_adding.yaml"
    >>> key = lambda *o: program_key(load_config(path, list(o)))
    >>> key("seed=1", "optim.lr=0.1") == key("optim.clip_norm=null")
    True
    >>> key("model.hidden_size=16") == key()
    False
    """
    flat = flat_config(OmegaConf.to_container(cfg, resolve=True))
    key = {k: v for k, v in flat.items() if k not in VMAPPABLE and k not in OWN}
    key["optim.ssm_lr"] = "set" if flat.get("optim.ssm_lr") is not None else "null"
    key["optim.momentum"] = "0" if flat.get("optim.momentum") == 0 else "not 0"
    return key


def shared_program_problem(cfgs: list[DictConfig]) -> str | None:
    """``None`` when every config has the first one's :func:`program_key`; else what differs, in words."""
    first = program_key(cfgs[0])
    for cfg in cfgs[1:]:
        other = program_key(cfg)
        for k in sorted(first.keys() | other.keys()):
            if first.get(k) != other.get(k):
                return (f"{k} differs between trials ({first.get(k)!r} vs {other.get(k)!r}) and changes the "
                        f"compiled program; only {', '.join(VMAPPABLE)} can vary within a vmapped group")
    return None


def _optim_value(cfg: DictConfig, name: str) -> float:
    value = cfg.optim[name]
    return NO_CLIP if value is None else float(value)


def swept_optim_values(cfgs: list[DictConfig]) -> dict[str, list[float]]:
    """The optimizer values that differ between the trials, one per trial (``clip_norm`` null as :data:`NO_CLIP`)."""
    names = [k.split(".", 1)[1] for k in VMAPPABLE if k.startswith("optim.")]
    values = {n: [_optim_value(c, n) for c in cfgs] for n in names if not (n == "ssm_lr" and cfgs[0].optim.ssm_lr is None)}
    return {n: v for n, v in values.items() if len(set(v)) > 1}


def injected_optimizer(optim_cfg: DictConfig, total_steps: int, param_labels: Any,
                       names: list[str]) -> optax.GradientTransformation:
    """:func:`make_optimizer` for ``optim_cfg`` with the values ``names`` read from the optimizer state.

    The state is an ``optax.InjectStatefulHyperparamsState`` whose ``inner_state`` is the plain chain's.
    """
    fixed = OmegaConf.to_container(optim_cfg, resolve=True)

    def factory(**values: Any) -> optax.GradientTransformation:
        return make_optimizer(types.SimpleNamespace(**{**fixed, **values}), total_steps, param_labels)

    factory.__signature__ = inspect.Signature(  # type: ignore[attr-defined]  # inject_hyperparams binds by name
        [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY) for n in names])
    return optax.inject_hyperparams(factory)(**{n: 0.0 for n in names})  # placeholders: each trial's are in its state


def default_group_size(cfg: DictConfig) -> int:
    """How many trials like ``cfg`` fit together in half the memory of every device (:mod:`~seqjax.experiment.memory`).

    Each device holds the data and its share of the group's trials (the trial axis is sharded over the
    devices), so the size is the device count times what half of one device holds: a multiple of the
    device count, which :func:`~seqjax.experiment.distributed.group_mesh` shards fully over the trial axis.
    """
    need = memory.estimate(cfg)
    per_trial = need["state"] + need["activations"]
    per_device = int((memory.available_bytes() // 2 - need["data"]) // max(per_trial, 1))
    return max(1, jax.device_count() * per_device)


def trial_loop(loop: str, mesh: jax.sharding.Mesh) -> str:
    """How a group's step runs its trials: ``"vmap"`` (one batched program) or ``"map"`` (``jax.lax.map``: the
    solo step once per trial, in a loop inside the same compiled program).

    ``"auto"`` takes ``"map"`` on a CPU whose trials share one device, ``"vmap"`` elsewhere.  XLA:CPU runs the
    batched matmuls of a vmapped recurrence as loops of tiny matmuls, so there a K-trial vmapped LSTM step costs
    ~4x K solo steps (``experiments/benchmarks/README.md``), while the loop costs K solo steps; both share the
    one compilation and process start that make a group fast end to end.  Accelerators, and a trial axis split
    over devices, want the batched program.

    >>> trial_loop("auto", distributed.group_mesh(1))  # one CPU device here
    'map'
    """
    if loop not in ("auto", "vmap", "map"):
        raise UserError(f"trial loop {loop!r}: choose auto, vmap or map")
    if loop != "auto":
        return loop
    one_device_per_group = mesh.shape[distributed.TRIALS] == 1
    return "map" if one_device_per_group and mesh.devices.flat[0].platform == "cpu" else "vmap"


def over_trials(fn: Callable, loop: str, shared: int = 0, spmd_axis_name: str | None = None) -> Callable:
    """``fn`` applied to every trial: its arguments carry a leading trial axis, except the last ``shared``,
    which every trial receives whole; outputs are stacked along a leading trial axis."""
    def run(*args: Any) -> Any:
        mapped, common = args[:len(args) - shared], args[len(args) - shared:]
        one = lambda lane: fn(*lane, *common)  # noqa: E731
        if loop == "map":
            return jax.lax.map(one, mapped)
        return jax.vmap(lambda *lane: one(lane), spmd_axis_name=spmd_axis_name)(*mapped)

    return run


def _stack(trees: list[Any]) -> Any:
    return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def _index(tree: Any, i: jax.Array) -> Any:
    return jax.tree.map(lambda x: jax.lax.dynamic_index_in_dim(x, i, keepdims=False), tree)


@dataclasses.dataclass
class _Lane:
    """One trial of the group: its trainer, run directory's writers and where it stands."""

    trainer: Trainer
    log_file: IO[str]
    ckpt: Checkpoints | None = None
    writer: MetricsWriter | None = None
    start: int = 0
    last_checked: int = 0
    result: dict | Diverged | None = None

    def log(self, message: str) -> None:
        print(message, file=self.log_file, flush=True)


class VmappedTrainer:
    """The trials of ``cfgs`` (one :func:`program_key`) trained in one vmapped program.

    >>> from pathlib import Path
    >>> import seqjax
    >>> from seqjax.experiment.config import load_config
    >>> path = Path(seqjax.__file__).parents[1] / "configs" / "experiments" / "smoke_adding.yaml"
    >>> VmappedTrainer([load_config(path), load_config(path, ["model.hidden_size=4"])])
    Traceback (most recent call last):
    ...
    seqjax.errors.UserError: model.hidden_size differs between trials (8 vs 4) and changes the compiled program; ...
    """

    def __init__(self, cfgs: list[DictConfig], loop: str = "auto"):
        problem = shared_program_problem(cfgs)
        if problem:
            raise UserError(problem)
        self.trainers = [Trainer(cfg) for cfg in cfgs]
        lead = self.trainers[0]
        self.workload, self.train_cfg = lead.workload, lead.cfg.train
        self.mesh = distributed.group_mesh(len(cfgs))
        self._placed = distributed.trial_sharding(self.mesh)  # the group's state, as the train step leaves it
        self._solo = distributed.replicated(lead.mesh)  # one trial's state, as it is alone (and checkpointed)
        values = swept_optim_values(cfgs)
        self.tx = injected_optimizer(lead.cfg.optim, self.train_cfg.steps, self.workload.param_labels, list(values))
        self._values = {n: jnp.asarray(v, jnp.float32) for n, v in values.items()}
        self._dropout_keys = jax.device_put(jnp.stack([t.dropout_key for t in self.trainers]), self._placed)
        self._take = jax.jit(_index, out_shardings=self._solo)  # one trial's state out of the group's
        constrain = distributed.constrain_batch(self.mesh)

        def lane_step(state: TrainState, dropout_key: jax.Array, active: jax.Array) -> tuple[TrainState, dict]:
            new, metrics = make_train_step(self.workload, self.tx, dropout_key, constrain)(state)
            return jax.tree.map(lambda n, o: jnp.where(active, n, o), new, state), metrics

        self.loop = trial_loop(loop, self.mesh)
        self._train_step = jax.jit(over_trials(lane_step, self.loop, spmd_axis_name=distributed.TRIALS),
                                   out_shardings=(self._placed, None), donate_argnums=0)
        self._eval_step = jax.jit(over_trials(make_eval_step(self.workload), self.loop, shared=1))
        self._val_set: dict | None = None

    def _wrap(self, solo: TrainState) -> TrainState:
        """Stacked solo states -> the group's: the optimizer state inside ``inject_hyperparams``' with the values,
        placed as the train step places it (so its first call is its only compilation)."""
        copy = lambda x: jnp.array(x, copy=True)  # noqa: E731  # the train step donates its state's buffers
        injected = optax.InjectStatefulHyperparamsState(
            count=copy(solo.step), hyperparams={n: copy(v) for n, v in self._values.items()}, hyperparams_states={},
            inner_state=solo.opt_state)
        return jax.device_put(solo._replace(opt_state=injected), self._placed)

    def lane_state(self, state: TrainState, i: int) -> TrainState:
        """Trial ``i``'s state as it would be alone (what its checkpoints hold), placed as alone (replicated on the
        data mesh)."""
        return self._take(state._replace(opt_state=state.opt_state.inner_state), jnp.int32(i))

    def init_state(self) -> TrainState:
        return self._wrap(_stack(self._solo_states()))

    def _solo_states(self) -> list[TrainState]:
        """Each trial's initial state, created by its own trainer as alone.  Not ``jax.vmap`` of the creation:
        XLA:CPU never finished the vmapped initialisation of three LSTM trials (every thread idle; solo, each
        takes milliseconds), the hang two sweeps met at a group's start."""
        return [trainer.init_state() for trainer in self.trainers]

    def evaluate(self, params: Any) -> dict[str, np.ndarray]:
        """Every trial's validation metrics: ``{name: [one per trial]}``."""
        t = self.train_cfg
        if self._val_set is None:
            self._val_set = self.workload.eval_set("val", t.eval_examples)
        return evaluate(self._eval_step, params, self._val_set, t.eval_batch_size, self.mesh)

    def run(self) -> list[dict | Diverged]:
        """Train (or resume) every trial in its run directory, holding every lock; per trial its summary,
        or the ``Diverged`` that masked it out."""
        self.trainers[0]._check_best_metric()
        with contextlib.ExitStack() as stack:
            for trainer in self.trainers:
                stack.enter_context(RunLock(trainer.cfg.run_dir))
            return self._run(stack)

    def _open(self, trainer: Trainer, fresh: TrainState, stack: contextlib.ExitStack) -> tuple[_Lane, TrainState]:
        run_dir = prepare_run_dir(trainer.cfg)
        lane = _Lane(trainer, stack.enter_context(open(run_dir / LOG, "a")))
        lane.ckpt = Checkpoints(run_dir, trainer.cfg.train, log=lane.log)
        stack.callback(lane.ckpt.close)
        stack.callback(lane.ckpt.wait)
        state = trainer._starting_state(run_dir, lane.ckpt, lambda: fresh)
        lane.start = lane.last_checked = int(state.step)
        if lane.start >= self.train_cfg.steps and (run_dir / "summary.json").exists():
            lane.log(f"{run_dir} is already trained to step {lane.start}: nothing to do")
            lane.result = json.loads((run_dir / "summary.json").read_text())
        else:
            lane.writer = stack.enter_context(contextlib.closing(MetricsWriter(run_dir, lane.start)))
        return lane, state

    def _run(self, stack: contextlib.ExitStack) -> list[dict | Diverged]:
        t = self.train_cfg
        started = time.time()
        fresh = self._solo_states()
        opened = [self._open(trainer, solo, stack) for trainer, solo in zip(self.trainers, fresh)]
        lanes = [lane for lane, _ in opened]
        state = self._wrap(_stack([s for _, s in opened]))
        step = np.array([lane.start for lane in lanes])
        active = np.array([lane.result is None for lane in lanes]) & (step < t.steps)
        bar = stack.enter_context(progress_bar(t.steps, int(step.min()), t.progress))
        due = lambda s, every: s % every == 0 or s == t.steps  # noqa: E731
        interrupted = stack.enter_context(deferred_interrupt())  # Ctrl-C between steps, never inside a save
        while active.any():
            if interrupted():
                raise KeyboardInterrupt
            state, metrics = self._train_step(state, self._dropout_keys, jnp.asarray(active))
            step += active
            bar.update(1)
            logging = [i for i in np.flatnonzero(active) if due(step[i], t.log_every) or due(step[i], t.eval_every)]
            if logging:
                host, nonfinite = jax.device_get((metrics, state.nonfinite))
                for i in logging:
                    active[i] = self._log_train(lanes[i], int(step[i]), {k: v[i] for k, v in host.items()},
                                                int(nonfinite[i]))
            evaluating = [i for i in np.flatnonzero(active) if due(step[i], t.eval_every)]
            if evaluating:
                val = self.evaluate(state.params)
                for i in evaluating:
                    self._log_val(lanes[i], state, i, int(step[i]), {k: v[i] for k, v in val.items()})
            active &= step < t.steps
        for i, lane in enumerate(lanes):
            if lane.result is None:
                lane.ckpt.wait()
                lane.result = lane.trainer._summarize(Path(lane.trainer.cfg.run_dir), self.lane_state(state, i),
                                                      lane.writer.rows, started, lane.start)
                lane.log(f"done: step {lane.result['steps']} (vmapped with {len(lanes) - 1} other trials)")
        return [lane.result for lane in lanes]

    def _log_train(self, lane: _Lane, step: int, metrics: dict, nonfinite: int) -> bool:
        """The solo loop's finiteness check and ``train`` row; ``False`` when the trial diverged (masked out)."""
        try:
            lane.trainer._check_finite(types.SimpleNamespace(nonfinite=nonfinite), lane.last_checked, step, lane.ckpt)
        except Diverged as e:
            lane.log(f"error: {e}")
            lane.result = e
            return False
        lane.last_checked = step
        lane.writer.write(step, "train", {**metrics, "lr": lane.trainer.schedule(step - 1)})
        return True

    def _log_val(self, lane: _Lane, state: TrainState, i: int, step: int, val: dict) -> None:
        lane.writer.write(step, "val", val)
        lane.log(lane.trainer.val_line(step, val))
        if step % self.train_cfg.checkpoint_every == 0 or step == self.train_cfg.steps:
            lane.ckpt.save(self.lane_state(state, i), val)
