"""Adaptive search: a sweep file's ``search:`` section runs an Optuna study instead of a fixed grid.

::

    experiment: ../experiments/smoke_adding.yaml
    overrides: [model.hidden_size=16]
    search:
      space:                                   # the random axes' syntax (seqjax.experiment.search)
        optim.lr: {loguniform: [1.0e-3, 1.0e-1]}
      n_trials: 6                              # finished (complete or pruned) trials, over all workers and reruns
      objective: val.mse                       # val.<metric>, one of the validation metrics
      direction: minimize                      # or maximize
      sampler: tpe                             # tpe | random | cmaes | grid (grid: every axis a `choice`)
      sampler_args: {n_startup_trials: 4}      # keyword arguments of the Optuna sampler (seed: random_seed)
      pruner: median                           # median | successive_halving | hyperband | none
      pruner_args: {n_startup_trials: 2}       # keyword arguments of the Optuna pruner
      storage: journal:/shared/study.log       # optional, as --storage takes it (which wins); default <out>/optuna.db
    random_seed: 0                             # the sampler's seed (worker i: random_seed + i)

Each trial trains in the worker's process (:class:`~seqjax.experiment.loop.Trainer`) in its own run
directory ``<out>/trial-<number>``; at every ``train.eval_every`` the objective's validation value is
reported to the trial, and a trial the pruner stops leaves ``pruned.json`` (the step and the value) in its
run directory beside its metrics and checkpoints.  The trial's value is its best validation value of the
objective.  The study lives in its storage (:mod:`~seqjax.experiment.study_storage`), named by the sweep
file's stem: rerunning continues it (a trial whose worker died is retried in its own run directory,
resuming from its checkpoint) until ``n_trials`` have finished.  ``jobs`` workers each run
``study.optimize`` in a process of their own.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Optional

from omegaconf import OmegaConf

from seqjax.errors import UserError, check_choice, check_positive, describe
from seqjax.experiment.config import load_config
from seqjax.experiment.loop import Trainer
from seqjax.experiment.report import SWEEP_RECORD
from seqjax.experiment.run_lock import lock_holder
from seqjax.experiment.search import check_random, sample_random
from seqjax.experiment.state import Diverged
from seqjax.experiment.study_storage import open_storage, storage_url
from seqjax.experiment.sweep import TRIAL, SweepConfig, Workers, _override_value, _stop_on_sigterm, check_overrides, \
    load_sweep
from seqjax.experiment.writers import read_rows

SAMPLERS = ("tpe", "random", "cmaes", "grid")
PRUNERS = ("median", "successive_halving", "hyperband", "none")
DIRECTIONS = ("minimize", "maximize")
PRUNED = "pruned.json"


@dataclasses.dataclass
class SearchSpec:
    space: dict[str, Any]
    n_trials: int
    objective: str = "val.loss"
    direction: str = "minimize"
    sampler: str = "tpe"
    sampler_args: dict[str, Any] = dataclasses.field(default_factory=dict)
    pruner: str = "median"
    pruner_args: dict[str, Any] = dataclasses.field(default_factory=dict)
    storage: Optional[str] = None  # recorded in the sweep folder's sweep.yaml; None: <out>/optuna.db

    @property
    def metric(self) -> str:
        return self.objective[len("val."):]


def parse_search(where: str, section: dict[str, Any]) -> SearchSpec:
    """A ``search:`` section, checked: one line naming the bad key or value.

    >>> parse_search("s.yaml", {"space": {"optim.lr": {"loguniform": [1e-3, 1e-1]}}, "n_trials": 4}).sampler
    'tpe'
    >>> parse_search("s.yaml", {"space": {"optim.lr": {"uniform": [0.0, 1.0]}}, "n_trials": 4, "pruner": "meadian"})
    Traceback (most recent call last):
    ...
    seqjax.errors.UserError: s.yaml: unknown search.pruner 'meadian': choose one of ... (did you mean 'median'?)
    """
    allowed = [f.name for f in dataclasses.fields(SearchSpec)]
    for key in section:
        check_choice("search key", key, allowed, where=where)
    if "space" not in section or "n_trials" not in section:
        raise UserError(f"{where}: search needs space (axes as in random:, e.g. "
                        "'optim.lr: {loguniform: [1.0e-4, 1.0e-2]}') and n_trials")
    spec = SearchSpec(**section)
    if not isinstance(spec.n_trials, int) or isinstance(spec.n_trials, bool):
        raise UserError(f"{where}: search.n_trials={spec.n_trials!r} must be a whole number >= 1")
    check_positive("search.n_trials", spec.n_trials, integer=True, where=where)
    if not isinstance(spec.space, dict) or not spec.space:
        raise UserError(f"{where}: search.space must map dotted keys to distributions, got {spec.space!r}")
    check_random(f"{where}: search.space", spec.space, spec.n_trials)
    if not isinstance(spec.objective, str) or not spec.objective.startswith("val.") or not spec.metric:
        raise UserError(f"{where}: search.objective={spec.objective!r} must be val.<metric>, e.g. val.loss")
    check_choice("search.direction", spec.direction, DIRECTIONS, where=where)
    check_choice("search.sampler", spec.sampler, SAMPLERS, where=where)
    check_choice("search.pruner", spec.pruner, PRUNERS, where=where)
    if spec.sampler == "grid" and any(next(iter(d)) != "choice" for d in spec.space.values()):
        raise UserError(f"{where}: search.sampler=grid needs every search.space axis to be a choice, "
                        "e.g. 'optim.lr: {choice: [1.0e-3, 1.0e-2]}'")
    return spec


def make_sampler(spec: SearchSpec, seed: int, where: str = "search") -> Any:
    """The Optuna sampler with ``sampler_args`` and ``seed``; one line when Optuna rejects them."""
    import optuna

    try:
        if spec.sampler == "grid":
            return optuna.samplers.GridSampler({k: d["choice"] for k, d in spec.space.items()}, seed=seed,
                                               **spec.sampler_args)
        return {"tpe": optuna.samplers.TPESampler, "random": optuna.samplers.RandomSampler,
                "cmaes": optuna.samplers.CmaEsSampler}[spec.sampler](seed=seed, **spec.sampler_args)
    except (TypeError, ValueError) as e:
        raise UserError(f"{where}: search.sampler_args {dict(spec.sampler_args)!r} for {spec.sampler}: {e}") from None


def make_pruner(spec: SearchSpec, where: str) -> Any:
    """The Optuna pruner with ``pruner_args``; one line when Optuna rejects them."""
    import optuna

    cls = {"median": optuna.pruners.MedianPruner, "successive_halving": optuna.pruners.SuccessiveHalvingPruner,
           "hyperband": optuna.pruners.HyperbandPruner, "none": optuna.pruners.NopPruner}[spec.pruner]
    try:
        return cls(**spec.pruner_args)
    except (TypeError, ValueError) as e:
        raise UserError(f"{where}: search.pruner_args {dict(spec.pruner_args)!r} for {spec.pruner}: {e}") from None


def suggest(trial: Any, space: dict[str, dict[str, list[Any]]]) -> list[tuple[str, Any]]:
    """One value per axis of ``space`` from the trial's sampler (the distributions of random axes)."""
    pairs = []
    for key, dist in space.items():
        (name, args), = dist.items()
        if name == "choice":
            pairs.append((key, trial.suggest_categorical(key, args)))
        elif name == "int":
            pairs.append((key, trial.suggest_int(key, args[0], args[1])))
        else:
            pairs.append((key, trial.suggest_float(key, args[0], args[1], log=name == "loguniform")))
    return pairs


@dataclasses.dataclass
class Search:
    """One search sweep: its file, spec, experiment, the overrides of every trial and where it lives."""

    path: Path
    sweep: SweepConfig
    spec: SearchSpec
    experiment: Path
    overrides: tuple[str, ...]
    storage: str

    @property
    def out(self) -> Path:
        return Path(self.sweep.out)

    @property
    def study_name(self) -> str:
        return self.path.stem

    def trial_overrides(self, pairs: list[tuple[str, Any]], run_dir: Path) -> list[str]:
        return [*self.sweep.overrides, *self.overrides, *(f"{k}={_override_value(v)}" for k, v in pairs),
                f"seed={self.sweep.seeds[0]}", f"run_dir={run_dir}", "train.progress=false",
                "train.restart=true"]  # a retried trial resumes from its checkpoint, or starts over without one

    def load_study(self, seed: int) -> Any:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        return optuna.create_study(study_name=self.study_name, storage=open_storage(self.storage),
                                   direction=self.spec.direction, sampler=make_sampler(self.spec, seed),
                                   pruner=make_pruner(self.spec, str(self.path)), load_if_exists=True)


def load_search(path: str | Path, overrides: list[str] | tuple[str, ...] = (), out: str | Path | None = None,
                storage: str | None = None) -> Search:
    """Read a search sweep file and check everything (a composed trial config included) before any work."""
    sweep, experiments = load_sweep(path, out)
    where = str(path)
    spec = parse_search(where, sweep.search)
    for part in ("grid", "zip", "random"):
        if getattr(sweep, part):
            raise UserError(f"{where}: a search sweeps search.space only: move {part} axes into search.space "
                            "or fix them in overrides")
    if len(experiments) != 1 or len(sweep.seeds) != 1:
        raise UserError(f"{where}: a search trains one experiment with one seed (got {len(experiments)} "
                        f"experiments, seeds {list(sweep.seeds)})")
    check_overrides(dataclasses.replace(sweep, random=spec.space), overrides)
    search = Search(Path(path), sweep, spec, experiments[0], tuple(overrides),
                    storage_url(storage or spec.storage, sweep.out))
    pairs = sample_random(spec.space, 1, sweep.random_seed)[0]
    try:
        load_config(search.experiment, search.trial_overrides(pairs, search.out / "trial-check"))
    except UserError as e:
        raise UserError(f"{where}: a search trial: {e}") from None
    open_storage(search.storage)
    make_sampler(spec, sweep.random_seed, where)
    make_pruner(spec, where)
    return search


def _objective(search: Search, quiet: bool) -> Callable[[Any], float]:
    import optuna

    spec = search.spec
    pick = min if spec.direction == "minimize" else max

    def objective(trial: Any) -> float:
        pairs = suggest(trial, spec.space)
        twin = same_point(trial)
        if twin is not None:  # training is a function of the config and seed: this point's result is known
            trial.set_user_attr("same_as", twin.number)
            trial.set_user_attr("run_dir", twin.user_attrs["run_dir"])
            _say(quiet, f"[same] trial {trial.number} = trial {twin.number} ({twin.state.name.lower()})")
            if twin.state == optuna.trial.TrialState.PRUNED:
                raise optuna.TrialPruned(f"the same point as trial {twin.number}, which was pruned")
            return twin.value
        run_dir = Path(trial.user_attrs.get("run_dir") or search.out / f"trial-{trial.number:04d}")
        trial.set_user_attr("run_dir", str(run_dir))
        cfg = load_config(search.experiment, search.trial_overrides(pairs, run_dir))

        def on_eval(step: int, val: dict[str, float]) -> None:
            if spec.metric not in val:
                raise UserError(f"{search.path}: search.objective={spec.objective} is not a validation metric: "
                                f"choose one of {', '.join('val.' + k for k in val)}")
            trial.report(float(val[spec.metric]), step)
            if trial.should_prune():
                (run_dir / PRUNED).write_text(json.dumps({"pruned_at_step": step,
                                                          spec.objective: float(val[spec.metric])}) + "\n")
                raise optuna.TrialPruned(f"pruned at step {step} ({spec.objective}={val[spec.metric]:.4g})")

        label = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in pairs)
        run_dir.mkdir(parents=True, exist_ok=True)
        try:
            with open(run_dir / "train.log", "a") as log, contextlib.redirect_stderr(log):
                try:
                    Trainer(cfg).run(on_eval)
                except Exception as e:  # diverged, or a bad objective: in the log, as a trial process writes it
                    if not isinstance(e, optuna.TrialPruned):
                        print(f"error: {describe(e)}", file=log)
                    raise
        except optuna.TrialPruned as e:
            _say(quiet, f"[pruned] {run_dir.name} {label}: {e}")
            raise
        except KeyboardInterrupt:
            trial.set_user_attr("interrupted", True)  # retried in this run directory by the next run
            raise
        values = [r[spec.metric] for r in read_rows(run_dir) if r["split"] == "val" and r.get(spec.metric) is not None]
        value = pick(values) if values else math.nan
        _say(quiet, f"[done] {run_dir.name} {label}: best {spec.objective}={value:.4g}")
        return value

    return objective


def same_point(trial: Any) -> Any:
    """The first finished (complete or pruned) trial of the study with exactly ``trial``'s parameters, or None.

    A trial's training is a pure function of its config and seed, so a point that has been trained once
    needs no second run: samplers over ``choice`` axes (TPE among them) do propose a point again.
    """
    from optuna.trial import TrialState

    finished = trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
    return next((t for t in finished if t.params == trial.params and t.number != trial.number), None)


def _say(quiet: bool, line: str) -> None:
    if not quiet:
        print(line, flush=True)


def retry_dead_trials(study: Any) -> int:
    """Fail the trials whose worker died (running, or interrupted, with no live lock on their run directory)
    and enqueue each again with its run directory, so it resumes from its checkpoint; returns how many."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs.get("retries") for t in trials}
    count = 0
    for t in trials:
        run_dir = t.user_attrs.get("run_dir")
        dead = t.state == TrialState.RUNNING and run_dir and Path(run_dir).exists() and lock_holder(run_dir) is None
        interrupted = t.state == TrialState.FAIL and t.user_attrs.get("interrupted")
        if (dead or interrupted) and t.number not in retried:
            if dead:
                study.tell(t.number, state=TrialState.FAIL)
            study.enqueue_trial(t.params, user_attrs={"run_dir": run_dir, "retries": t.number})
            count += 1
    return count


def _remaining(study: Any, n_trials: int) -> int:
    from optuna.trial import TrialState

    return n_trials - len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED,
                                                                   TrialState.RUNNING)))


def optimize(search: Search, worker: int = 0, quiet: bool = False) -> None:
    """One worker: run trials of the study until ``n_trials`` have finished (or are running elsewhere)."""
    from optuna.study import MaxTrialsCallback
    from optuna.trial import TrialState

    study = search.load_study(search.sweep.random_seed + worker)
    remaining = _remaining(study, search.spec.n_trials)
    if remaining > 0:
        done = MaxTrialsCallback(search.spec.n_trials, states=(TrialState.COMPLETE, TrialState.PRUNED,
                                                               TrialState.RUNNING))
        study.optimize(_objective(search, quiet), n_trials=remaining, callbacks=[done], catch=(Diverged,))


def prepare_search(path: str | Path, *, quiet: bool = False, overrides: list[str] | tuple[str, ...] = (),
                   out: str | Path | None = None, storage: str | None = None) -> Search:
    """Check the search (:func:`load_search`), record it in ``<out>/sweep.yaml`` and retry the trials whose
    worker died (:func:`retry_dead_trials`); nothing is trained."""
    search = load_search(path, overrides, out, storage)
    search.out.mkdir(parents=True, exist_ok=True)
    record = dataclasses.replace(search.sweep, experiment=[str(search.experiment.resolve())],
                                 overrides=[*search.sweep.overrides, *overrides],
                                 search={**search.sweep.search, "storage": storage or search.spec.storage,
                                         "study_name": search.study_name})  # storage None: <out>/optuna.db
    (search.out / SWEEP_RECORD).write_text(OmegaConf.to_yaml(OmegaConf.structured(record)))
    study = search.load_study(search.sweep.random_seed)
    retried = retry_dead_trials(study)
    _say(quiet, f"search {search.study_name}: {len(study.trials)} trials in {search.storage}"
                f"{f' ({retried} retried)' if retried else ''}; {max(0, _remaining(study, search.spec.n_trials))} "
                f"to run; out {search.out}")
    return search


def run_search(path: str | Path, *, jobs: int = 1, quiet: bool = False, overrides: list[str] | tuple[str, ...] = (),
               out: str | Path | None = None, storage: str | None = None) -> Search:
    """Check the search, record it in ``<out>/sweep.yaml``, retry dead trials (:func:`prepare_search`), then
    run ``jobs`` workers (one in this process when ``jobs`` is 1) until the study has ``n_trials`` finished
    trials."""
    search = prepare_search(path, quiet=quiet, overrides=overrides, out=out, storage=storage)
    if jobs <= 1:
        with _stop_on_sigterm():
            optimize(search, quiet=quiet)
        return search
    workers = Workers()
    argv = [str(path), *overrides, "--out", str(search.out), "--storage", search.storage]

    def run_worker(i: int) -> int:
        cmd = [sys.executable, "-c", TRIAL, str(os.getpid()), "sweep", *argv, "--worker", str(i)]
        with open(search.out / f"worker-{i}.log", "a") as log:
            return workers.run(cmd, log)

    with _stop_on_sigterm(), ThreadPoolExecutor(max_workers=jobs) as pool:
        try:
            codes = list(pool.map(run_worker, range(jobs)))
        except BaseException:  # Ctrl-C, SIGTERM: take the workers down with the runner
            workers.stop()
            raise
    failed = [i for i, rc in enumerate(codes) if rc != 0]
    if failed:
        raise UserError(f"search workers {failed} failed: see {search.out}/worker-<i>.log")
    return search
