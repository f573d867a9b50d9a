"""Hyperparameter sweeps: a search space of dotted overrides x seeds over one experiment config.

A sweep file (``configs/sweeps/*.yaml``)::

    experiment: ../experiments/adding_lstm.yaml   # relative to this file; a list sweeps over experiments
    overrides: [train.steps=400]                  # applied to every trial
    grid:                                         # the Cartesian product of these values
      model.hidden_size: [32, 64]
      optim.lr: [1.0e-3, 3.0e-3]
    seeds: [0, 1]                                 # each grid point once per seed (sets `seed`)
    out: runs/sweeps/adding_lr                    # default runs/sweeps/<file stem>

Beside ``grid``: ``zip`` axes that vary together and ``random`` axes drawn ``samples`` times from
``random_seed`` (:mod:`~seqjax.experiment.search`); a random trial's name carries ``sample=<i>``.
A ``search:`` section instead runs an adaptive Optuna study (:mod:`~seqjax.experiment.optuna_search`).

A list of experiments (e.g. one per model family, whose options differ) is one more grid dimension;
each trial keeps its experiment's ``name``, which ``seqjax report`` shows as a column.

Every trial's config is composed and validated before the first one starts.  Trials whose configs
differ only in the seed and the optimizer's numbers (:func:`~seqjax.experiment.vmapped.program_key`)
are trained together in this process, one vmapped program per group of at most ``group_size``
(default: what half the memory of all the devices holds, :func:`~seqjax.experiment.vmapped.default_group_size`);
``vmap=True`` (``--vmap``) insists on it and fails in one line naming the key that prevents it,
``vmap=False`` (``--no-vmap``) turns it off, and by default a trial with no partner runs alone.  Each
other trial is one ``seqjax train`` process.  Every trial has its own run directory (``<out>/<trial>``),
written as the trial alone writes it, so a crash in one trial process loses nothing of the others; re-running the sweep skips finished trials (``summary.json`` present) and resumes
unfinished ones from their latest checkpoint.  ``seqjax report <out>`` tabulates the results.

The trial processes die with the runner.  On Linux each one, first thing, asks the kernel for SIGTERM
when the runner's pool thread that started it dies, however the runner dies (``prctl(PR_SET_PDEATHSIG)``
in the child itself, as a ``preexec_fn`` is unsafe in a threaded process; the pool threads live until
every trial has finished); a runner stopped by Ctrl-C or SIGTERM terminates them and starts no more.
A re-run refuses to start, in one line naming the PID, while a process (an orphaned worker of an
earlier run, or a ``seqjax train`` by hand) still holds a pending trial's run-directory lock
(:mod:`~seqjax.experiment.run_lock`).

``seqjax sweep FILE KEY=VALUE ...`` (``run_sweep(path, overrides=[...])``) adds dotted overrides to every
trial, after the file's ``overrides``, e.g. ``train.steps=4`` for a smoke run; a key the grid sweeps,
``seed`` and ``run_dir`` are set per trial and cannot be overridden.  The overrides become part of each
trial's config, so re-run an unfinished sweep with the same ones, or give it its own ``out``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any, Iterator, Optional

from omegaconf import ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from seqjax.errors import UserError, describe
from seqjax.experiment.config import load_config, omegaconf_message, read_mapping
from seqjax.experiment.report import SWEEP_RECORD
from seqjax.experiment.run_lock import lock_holder
from seqjax.experiment.search import check_random, check_zip, points
from seqjax.experiment.tiny import tiny_overrides

SUMMARY = "summary.json"


@dataclasses.dataclass
class SweepConfig:
    experiment: Any = "???"  # a path, or a list of paths
    overrides: list[str] = dataclasses.field(default_factory=list)
    grid: dict[str, list[Any]] = dataclasses.field(default_factory=dict)
    zip: dict[str, list[Any]] = dataclasses.field(default_factory=dict)  # equal-length lists, varied together
    random: dict[str, Any] = dataclasses.field(default_factory=dict)  # key: {uniform|loguniform|int|choice: args}
    samples: int = 0  # draws of the random axes
    random_seed: int = 0
    seeds: list[int] = dataclasses.field(default_factory=lambda: [0])
    out: Optional[str] = None
    search: dict[str, Any] = dataclasses.field(default_factory=dict)  # adaptive search: optuna_search.py


@dataclasses.dataclass(frozen=True)
class Trial:
    name: str
    experiment: Path
    overrides: tuple[str, ...]
    run_dir: Path


def load_sweep(path: str | Path, out: str | Path | None = None) -> tuple[SweepConfig, list[Path]]:
    """Read and type-check a sweep file; returns the spec and the experiment files' paths.

    ``out`` replaces the file's output folder.
    """
    path = Path(path)
    if not path.exists():
        raise UserError(f"sweep file {str(path)!r} not found: check the path")
    raw = read_mapping(path)
    if isinstance(raw._get_node("grid"), ListConfig):
        raise UserError(f"{path}: grid must map each dotted key to its values, got a list: "
                        "e.g. 'grid: {optim.lr: [1.0e-3, 3.0e-3]}'")
    try:
        spec = OmegaConf.merge(OmegaConf.structured(SweepConfig), raw)
        spec = OmegaConf.to_object(spec)
    except OmegaConfBaseException as e:
        raise UserError(f"{path}: {omegaconf_message(e)}; "
                        f"allowed keys: {', '.join(f.name for f in dataclasses.fields(SweepConfig))}") from None
    if not spec.seeds:
        raise UserError(f"{path}: seeds is empty: give at least one seed, e.g. 'seeds: [0]'")
    for key, values in spec.grid.items():
        if not values:
            raise UserError(f"{path}: grid.{key} has no values: give a non-empty list")
    check_zip(str(path), spec.zip)
    check_random(str(path), spec.random, spec.samples)
    for key in set(spec.grid) & set(spec.zip) | (set(spec.grid) | set(spec.zip)) & set(spec.random):
        raise UserError(f"{path}: {key} is swept twice (in more than one of grid, zip, random): keep one")
    spec.out = str(out) if out is not None else spec.out or str(Path("runs") / "sweeps" / path.stem)
    experiments = spec.experiment if isinstance(spec.experiment, list) else [spec.experiment]
    if not experiments or spec.experiment == "???":
        raise UserError(f"{path}: experiment is not set: name an experiment file (or a list of them)")
    if not all(isinstance(e, str) for e in experiments):
        raise UserError(f"{path}: experiment={spec.experiment!r} must be a path or a list of paths, "
                        "e.g. 'experiment: ../experiments/adding_lstm.yaml'")
    return spec, [path.parent / e for e in experiments]


def _override_value(value: Any) -> str:
    """A value as a command-line override writes it (``null``, ``true``: YAML's words)."""
    return "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def _label(key: str, value: Any, drawn: bool) -> str:
    """``lr=0.001``: the key's last part and the value (a drawn float to 4 significant digits)."""
    text = f"{value:.4g}" if drawn and isinstance(value, float) else str(value)
    return f"{key.split('.')[-1]}={text.replace('/', '_').replace(' ', '')}"


def swept_keys(spec: SweepConfig) -> list[str]:
    """The keys the search space sets: grid, then zip, then random ones."""
    return [*spec.grid, *spec.zip, *spec.random]


def check_overrides(spec: SweepConfig, overrides: list[str] | tuple[str, ...]) -> None:
    """Command-line overrides for every trial: KEY=VALUE, and no key that each trial sets itself."""
    for override in overrides:
        key = override.split("=", 1)[0]
        if "=" not in override or not key:
            raise UserError(f"command line: override {override!r} is not KEY=VALUE, e.g. train.steps=100")
        if key in swept_keys(spec):
            raise UserError(f"command line: {key} is swept by the grid, zip or random axes: edit the sweep file "
                            "to change its values")
        if key in ("seed", "run_dir"):
            raise UserError(f"command line: {key} is set per trial (seeds, and <out>/<trial>); "
                            "edit the sweep's seeds or out instead")


def expand(spec: SweepConfig, experiments: list[Path], overrides: list[str] | tuple[str, ...] = (),
           tiny: bool = False) -> list[Trial]:
    """Experiments x the search space's points (:func:`~seqjax.experiment.search.points`) x ``seeds``, in a
    stable order.

    A trial's overrides, the later winning: the file's ``overrides``; with ``tiny`` (a smoke test of the sweep),
    its experiment's :func:`~seqjax.experiment.tiny.tiny_overrides`; ``overrides`` (checked by
    :func:`check_overrides`); the point of the search space; the seed.
    """
    check_overrides(spec, overrides)
    trials = []
    for experiment in experiments:
        prefix = [experiment.stem] if len(experiments) > 1 else []
        smallest = tiny_overrides(experiment) if tiny else []
        for index, pairs in enumerate(points(spec.grid, spec.zip, spec.random, spec.samples, spec.random_seed)):
            point = [f"{k}={_override_value(v)}" for k, v in pairs]
            label = [_label(k, v, k in spec.random) for k, v in pairs]
            label += [f"sample={index % spec.samples}"] if spec.random else []
            for seed in spec.seeds:
                name = ",".join([*prefix, *label, f"seed={seed}"])
                run_dir = Path(spec.out) / name
                trial_overrides = (*spec.overrides, *smallest, *overrides, *point, f"seed={seed}", f"run_dir={run_dir}")
                trials.append(Trial(name, experiment, trial_overrides, run_dir))
    return trials


TRIAL = """\
import ctypes, os, signal, sys
if sys.platform.startswith("linux"):
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    if os.getppid() != int(sys.argv[1]):  # the runner died before the request took effect
        sys.exit(1)
from seqjax.cli import main
sys.exit(main(sys.argv[2:]))
"""  # a trial process: ask the kernel for SIGTERM when the runner's thread that started it dies, then train


class Workers:
    """The trial processes running now; :meth:`stop` terminates them and starts no more."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._live: set[subprocess.Popen] = set()
        self._stopped = False

    def run(self, cmd: list[str], log: IO[str]) -> int:
        """Run ``cmd`` with its output in ``log``; its exit code (``-SIGTERM`` if stopped before it started)."""
        with self._lock:
            if self._stopped:
                return -signal.SIGTERM
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
            self._live.add(proc)
        try:
            return proc.wait()
        finally:
            with self._lock:
                self._live.discard(proc)

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            for proc in self._live:
                proc.terminate()


def run_trial(trial: Trial, quiet: bool, workers: Workers) -> int:
    """Train ``trial`` in a ``seqjax train`` process of ``workers``, its output in its ``train.log``; its exit code."""
    trial.run_dir.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-c", TRIAL, str(os.getpid()), "train", str(trial.experiment), *trial.overrides,
           "train.progress=false"]
    with open(trial.run_dir / "train.log", "a") as log:
        rc = workers.run(cmd, log)
    if not quiet:
        print(f"[{'done' if rc == 0 else f'FAILED rc={rc}'}] {trial.name}  (log: {trial.run_dir / 'train.log'})",
              flush=True)
    return rc


def run_inline(trial: Trial, cfg: Any, quiet: bool) -> int:
    """Train ``trial`` in this process (``jobs=0``: a debugger or a profiler sees it), its output in its
    ``train.log`` as a trial process writes it; 0, or 1 if it failed (its error line in the log)."""
    from seqjax.experiment.loop import Trainer
    from seqjax.experiment.memory import check_fits

    trial.run_dir.mkdir(parents=True, exist_ok=True)
    with open(trial.run_dir / "train.log", "a") as log, contextlib.redirect_stdout(log), \
            contextlib.redirect_stderr(log):
        try:
            check_fits(cfg)
            Trainer(cfg).run()
            rc = 0
        except Exception as e:  # the trial fails alone, as a trial process would
            print(f"error: {describe(e)}")
            rc = 1
    if not quiet:
        status = "done" if rc == 0 else "FAILED"
        print(f"[{status}] {trial.name}  (in this process; log: {trial.run_dir / 'train.log'})", flush=True)
    return rc


def vmapped_groups(cfgs: list[Any], vmap: bool | None = None, group_size: int | None = None) -> list[list[int]]:
    """The indices of the trials trained together, group by group (the others run alone).

    ``vmap=None``: trials sharing a :func:`~seqjax.experiment.vmapped.program_key` with another trial;
    ``True``: every trial, or one line naming the key that prevents it; ``False``: none.
    """
    from seqjax.experiment.vmapped import default_group_size, program_key, shared_program_problem

    if vmap is False or not cfgs:
        return []
    if vmap:
        problem = shared_program_problem(cfgs)
        if problem:
            raise UserError(f"--vmap: {problem}")
    programs: dict[str, list[int]] = {}
    for i, cfg in enumerate(cfgs):
        programs.setdefault(repr(sorted(program_key(cfg).items())), []).append(i)
    groups = []
    for members in programs.values():
        if len(members) > 1 or vmap:
            size = group_size or default_group_size(cfgs[members[0]])
            groups += [members[start:start + size] for start in range(0, len(members), size)]
    return groups


def run_group(trials: list[Trial], cfgs: list[Any], quiet: bool) -> list[Trial]:
    """Train ``trials`` in one vmapped program; returns the failed ones (diverged, or the group's error)."""
    from seqjax.experiment.vmapped import LOG, VmappedTrainer

    try:
        results: list[Any] = VmappedTrainer(cfgs).run()
    except Exception as e:  # the group's trials fail together, as a trial process would alone
        for trial in trials:
            trial.run_dir.mkdir(parents=True, exist_ok=True)
            with open(trial.run_dir / LOG, "a") as log:
                print(f"error: {describe(e)}", file=log)
        results = [e] * len(trials)
    failed = [t for t, r in zip(trials, results) if isinstance(r, BaseException)]
    if not quiet:
        for trial, result in zip(trials, results):
            status = "done" if not isinstance(result, BaseException) else f"FAILED {type(result).__name__}"
            print(f"[{status}] {trial.name}  (vmapped with {len(trials) - 1} others; log: {trial.run_dir / LOG})",
                  flush=True)
    return failed


@dataclasses.dataclass
class SweepPlan:
    """A checked grid sweep: its trials, their composed configs and which trials share a vmapped group."""

    spec: SweepConfig
    trials: list[Trial]
    cfgs: list[Any]
    groups: list[list[int]]  # :func:`vmapped_groups`

    @property
    def pending(self) -> list[Trial]:
        """The trials without a summary (unfinished, failed or not started)."""
        return [t for t in self.trials if not (t.run_dir / SUMMARY).exists()]

    def pending_groups(self) -> list[list[int]]:
        """Each vmapped group's pending members (groups with none left out)."""
        pending = set(self.pending)
        return [todo for todo in ([i for i in members if self.trials[i] in pending] for members in self.groups) if todo]

    def pending_alone(self) -> list[int]:
        """The pending trials that belong to no vmapped group (one process each)."""
        grouped = {i for members in self.groups for i in members}
        pending = set(self.pending)
        return [i for i, t in enumerate(self.trials) if t in pending and i not in grouped]


def plan_sweep(path: str | Path, *, overrides: list[str] | tuple[str, ...] = (), out: str | Path | None = None,
               vmap: bool | None = None, group_size: int | None = None, tiny: bool = False) -> SweepPlan:
    """Compose and validate every trial's config, group them (:func:`vmapped_groups`) and record the sweep
    in ``<out>/sweep.yaml`` (what ``seqjax report`` reads); nothing is trained.  ``tiny``: see :func:`expand`."""
    spec, experiments = load_sweep(path, out)
    if spec.search:
        raise UserError(f"{path} has a search section: run it with seqjax.experiment.optuna_search.run_search "
                        "(what `seqjax sweep` does)")
    trials = expand(spec, experiments, overrides, tiny)
    cfgs = []
    for trial in trials:  # validate everything before any work starts
        try:
            cfgs.append(load_config(trial.experiment, [*trial.overrides, "train.progress=false"]))
        except UserError as e:
            raise UserError(f"{path}: trial {trial.name}: {e}") from None
    groups = vmapped_groups(cfgs, vmap, group_size)
    root = Path(spec.out)
    root.mkdir(parents=True, exist_ok=True)
    record = dataclasses.replace(spec, experiment=[str(e.resolve()) for e in experiments],
                                 overrides=[*spec.overrides, *overrides])
    (root / SWEEP_RECORD).write_text(OmegaConf.to_yaml(OmegaConf.structured(record)))
    return SweepPlan(spec, trials, cfgs, groups)


def run_sweep(path: str | Path, *, jobs: int = 1, dry_run: bool = False, quiet: bool = False,
              overrides: list[str] | tuple[str, ...] = (), out: str | Path | None = None,
              vmap: bool | None = None, group_size: int | None = None, tiny: bool = False) -> list[Trial]:
    """Validate every trial, then run those without a summary; returns the failed trials.  The trials outside
    vmapped groups run ``jobs`` at a time, each in a ``seqjax train`` process, or with ``jobs=0`` one after
    another in this process (:func:`run_inline`).

    ``overrides`` are added to every trial (see :func:`check_overrides`); ``out`` replaces the file's;
    ``vmap`` and ``group_size``: see :func:`vmapped_groups`; ``tiny``: every trial at its experiment's tiny
    size (:func:`expand`).
    """
    plan = plan_sweep(path, overrides=overrides, out=out, vmap=vmap, group_size=group_size, tiny=tiny)
    trials, groups, pending = plan.trials, plan.groups, plan.pending
    if not quiet:
        print(f"sweep {Path(path).stem}: {len(trials)} trials, {len(trials) - len(pending)} already done; "
              f"out {plan.spec.out}", flush=True)
    group_of = {i: g for g, members in enumerate(groups) for i in members}
    if dry_run:
        for i, t in enumerate(trials):
            together = f"  # vmapped group {group_of[i] + 1} of {len(groups)}" if i in group_of else ""
            print("seqjax train", t.experiment, " ".join(t.overrides) + together)
        return []
    check_not_running(path, pending)
    failed = []
    with _stop_on_sigterm():
        for todo in plan.pending_groups():
            failed += run_group([trials[i] for i in todo], [plan.cfgs[i] for i in todo], quiet)
    if jobs == 0:
        return failed + [trials[i] for i in plan.pending_alone() if run_inline(trials[i], plan.cfgs[i], quiet) != 0]
    alone = [trials[i] for i in plan.pending_alone()]
    workers = Workers()
    with _stop_on_sigterm(), ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        try:
            codes = list(pool.map(lambda t: run_trial(t, quiet, workers), alone))
        except BaseException:  # Ctrl-C, SIGTERM: take the running trials down with the runner
            workers.stop()
            raise
    return failed + [t for t, rc in zip(alone, codes) if rc != 0]


def check_not_running(path: str | Path, pending: list[Trial]) -> None:
    """One line naming the PID when a live process still trains a pending trial (its lock, tested, not taken)."""
    for trial in pending:
        holder = lock_holder(trial.run_dir)
        if holder is not None:
            raise UserError(f"{path}: trial {trial.name} is still being trained by PID {holder} (a worker of an "
                            f"earlier run of this sweep?): wait for it to finish, or stop it (kill {holder}), "
                            "then re-run the sweep")


@contextlib.contextmanager
def _stop_on_sigterm() -> Iterator[None]:
    """While the sweep runs (from the main thread), SIGTERM raises ``SystemExit`` so the trials are stopped."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
