"""Sweeps on a SLURM cluster through submitit: ``seqjax sweep FILE --launcher slurm``.

The sweep is checked as the local launcher checks it (every trial's config composed and validated),
then submitted as one job array (``executor.batch()``), one array task per unit of work:

* a grid trial that runs alone: its ``seqjax train`` process, output in its ``train.log``, exactly as
  the local launcher runs it (:func:`~seqjax.experiment.sweep.run_trial`);
* a vmapped group (:func:`~seqjax.experiment.sweep.vmapped_groups`): one program for the group's
  pending trials (:func:`~seqjax.experiment.sweep.run_group`);
* an Optuna worker of a sweep with a ``search:`` section (:func:`~seqjax.experiment.optuna_search.optimize`)
  -- ``--jobs`` of them, all on one study, so its storage must be one that every node
  reaches: the default SQLite file in the sweep folder on one node or a shared filesystem with working
  locks, ``--storage journal:PATH`` on a shared filesystem, or a database server's URL.

Each task's callable has a ``checkpoint`` method, so when SLURM preempts the job or its time runs out
(``--signal=USR2`` 90 s before the end, which submitit catches) submitit requeues the same callable, and
the trial resumes from its last checkpoint (``seqjax train`` on an existing run directory does).  A
requeued Optuna worker first retries the trials whose worker died
(:func:`~seqjax.experiment.optuna_search.retry_dead_trials`).  Submitit's pickles and logs go to
``<out>/slurm/``; which array task trains which trial is recorded in ``<out>/slurm/jobs.json``
(:mod:`~seqjax.experiment.slurm_jobs`), which ``seqjax sweep FILE --status`` reads.

Rerunning the submit command skips finished trials (``summary.json``) and submits the rest again; it
refuses, in one line, while a pending trial's array task is still in ``squeue`` or a process holds its
run directory.  By default the command waits until no task of the array is left in the queue.

submitit is imported only here, and only when a sweep is submitted (the optional ``slurm`` extra).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import shutil
import time
from pathlib import Path
from typing import Any

from seqjax.errors import UserError
from seqjax.experiment.config import load_config
from seqjax.experiment.optuna_search import load_search, optimize, prepare_search, retry_dead_trials
from seqjax.experiment.slurm_jobs import SLURM_DIR, queue_states, read_jobs, record_jobs
from seqjax.experiment.sweep import Trial, Workers, check_not_running, plan_sweep, run_group, run_trial

POLL_S = 2.0  # how often a waiting submit command asks squeue


@dataclasses.dataclass(frozen=True)
class SlurmOptions:
    """The array's resources: ``--slurm.*`` on the command line (``time`` in minutes; ``extra``: further
    sbatch options, ``{"qos": "high"}`` for ``--qos=high``)."""

    partition: str | None = None
    time: int = 60
    gpus_per_task: int = 0
    cpus_per_task: int = 1
    array_parallelism: int = 16
    extra: dict[str, str] = dataclasses.field(default_factory=dict)


class Requeueable:
    """submitit's checkpointing protocol: on preemption or timeout the same callable is submitted again
    (its work resumes from the run directories' checkpoints, so there is no state to save)."""

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(self, *args, **kwargs)


@dataclasses.dataclass(frozen=True)
class TrialsTask(Requeueable):
    """One array task of a grid: a trial alone (its ``seqjax train`` process) or a vmapped group.

    Its trials run with ``train.restart=true``: one preempted before its first checkpoint was written
    starts over instead of refusing (a trial with a readable checkpoint resumes from it regardless)."""

    trials: tuple[Trial, ...]
    vmapped: bool

    @classmethod
    def of(cls, trials: list[Trial], vmapped: bool) -> "TrialsTask":
        restart = [dataclasses.replace(t, overrides=(*t.overrides, "train.restart=true")) for t in trials]
        return cls(tuple(restart), vmapped)

    def __call__(self) -> list[str]:
        """Train; the names of the trials that failed."""
        if self.vmapped:
            cfgs = [load_config(t.experiment, [*t.overrides, "train.progress=false"]) for t in self.trials]
            return [t.name for t in run_group(list(self.trials), cfgs, quiet=False)]
        trial, = self.trials
        return [trial.name] if run_trial(trial, False, Workers()) != 0 else []


@dataclasses.dataclass(frozen=True)
class WorkerTask(Requeueable):
    """One array task of an Optuna search: worker ``worker`` of the study."""

    path: str
    overrides: tuple[str, ...]
    out: str
    storage: str
    worker: int

    def __call__(self) -> None:
        search = load_search(self.path, self.overrides, self.out, self.storage)
        if int(os.environ.get("SLURM_RESTART_COUNT", "0")) > 0:  # requeued: the trial it was on is dead
            retry_dead_trials(search.load_study(search.sweep.random_seed + self.worker))
        optimize(search, worker=self.worker)


def check_slurm() -> Any:
    """The submitit module, once ``sbatch`` is on ``PATH``; one line otherwise."""
    if shutil.which("sbatch") is None:
        raise UserError("--launcher slurm: no sbatch on PATH: run on a SLURM login node (or start the local "
                        "cluster: bash scripts/slurm-local.sh start), or drop --launcher slurm to run here")
    try:
        import submitit
    except ImportError:
        raise UserError("--launcher slurm needs submitit: pip install seqjax[slurm]") from None
    return submitit


def _executor(submitit: Any, out: Path, name: str, options: SlurmOptions, count: int) -> Any:
    executor = submitit.SlurmExecutor(folder=out / SLURM_DIR)
    resources = {"gpus_per_task": options.gpus_per_task} if options.gpus_per_task else {}
    executor.update_parameters(job_name=f"seqjax-{name}", time=options.time, cpus_per_task=options.cpus_per_task,
                               partition=options.partition, array_parallelism=min(options.array_parallelism, count),
                               additional_parameters=dict(options.extra), **resources)
    return executor


def _submit(submitit: Any, out: Path, name: str, options: SlurmOptions, tasks: list[Any]) -> list[str]:
    """Submit ``tasks`` (callables) as one array; their array task ids, in order."""
    executor = _executor(submitit, out, name, options, len(tasks))
    try:
        with contextlib.redirect_stderr(io.StringIO()), executor.batch():  # submitit prints sbatch's errors
            jobs = [executor.submit(task) for task in tasks]
    except submitit.core.utils.UncompletedJobError as e:  # sbatch's own error, e.g. an unknown partition
        said = "; ".join(line.strip().removeprefix("sbatch: error: ") for line in str(e).splitlines() if line.strip())
        raise UserError(f"sbatch refused the array: {said}: check --slurm.partition and --slurm.opt (sinfo lists "
                        "the partitions)") from None
    return [job.job_id for job in jobs]


def _check_not_queued(path: str | Path, out: Path, labels: list[str]) -> None:
    """One line when an array task recorded for one of ``labels`` is still in ``squeue``."""
    recorded, queue = read_jobs(out), queue_states()
    for label in labels:
        job = recorded.get(label)
        if job in queue:
            raise UserError(f"{path}: {label} is still in the SLURM queue as job {job} ({queue[job]}): wait for "
                            f"it (seqjax sweep {path} --status) or cancel it (scancel {job}), then rerun")


def submit_sweep(path: str | Path, options: SlurmOptions, *, overrides: list[str] | tuple[str, ...] = (),
                 out: str | Path | None = None, vmap: bool | None = None, group_size: int | None = None,
                 storage: str | None = None, search: bool = False, workers: int = 1) -> tuple[Path, dict[str, str]]:
    """Submit the sweep's pending work as one job array; its folder and ``{trial or worker-<i>: job id}``
    (empty when every trial is done).  ``search``: the file has a ``search:`` section, run by ``workers``
    array tasks."""
    submitit = check_slurm()
    name = Path(path).stem
    if search:
        found = prepare_search(path, overrides=overrides, out=out, storage=storage)
        root = found.out
        labels = [f"worker-{i}" for i in range(workers)]
        _check_not_queued(path, root, sorted({*labels, *(k for k in read_jobs(root) if k.startswith("worker-"))}))
        tasks = [WorkerTask(str(path), tuple(overrides), str(root), found.storage, i) for i in range(workers)]
        jobs = dict(zip(labels, _submit(submitit, root, name, options, tasks)))
    else:
        plan = plan_sweep(path, overrides=overrides, out=out, vmap=vmap, group_size=group_size)
        root, trials = Path(plan.spec.out), plan.trials
        print(f"sweep {name}: {len(trials)} trials, {len(trials) - len(plan.pending)} already done; out {root}",
              flush=True)
        _check_not_queued(path, root, [t.name for t in plan.pending])
        check_not_running(path, plan.pending)
        units = [TrialsTask.of([trials[i] for i in todo], vmapped=True) for todo in plan.pending_groups()]
        units += [TrialsTask.of([trials[i]], vmapped=False) for i in plan.pending_alone()]
        ids = _submit(submitit, root, name, options, units) if units else []
        jobs = {t.name: job for unit, job in zip(units, ids) for t in unit.trials}
    record_jobs(root, jobs)
    return root, jobs


def wait_for(jobs: dict[str, str]) -> None:
    """Return once none of ``jobs``' array tasks is left in ``squeue`` (finished, failed or cancelled)."""
    ids = set(jobs.values())
    while ids & set(queue_states()):
        time.sleep(POLL_S)
