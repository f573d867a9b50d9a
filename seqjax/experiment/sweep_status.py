"""``seqjax sweep FILE --status``: each trial's state, read from the sweep directory, whichever launcher ran it.

A trial is

* ``done``: its run directory has ``summary.json``;
* ``pruned``: an Optuna search pruned it (``pruned.json``: the step);
* ``running``: a process holds its run-directory lock (:mod:`~seqjax.experiment.run_lock`), or its SLURM
  array task is running (``<out>/slurm/jobs.json`` and ``squeue``, :mod:`~seqjax.experiment.slurm_jobs`);
* ``pending``: its SLURM array task is queued (or requeued), or nothing has recorded a failure: not
  started yet, or stopped (a cancelled job, a killed process) and resumed by the next run;
* ``failed``: its ``train.log`` ends on an ``error:`` line (a crash, a divergence, a bad config).

The grid's trials are listed in the sweep's order; a search's are its ``trial-<number>`` run directories.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from seqjax.experiment.run_lock import lock_holder
from seqjax.experiment.slurm_jobs import queue_states, read_jobs
from seqjax.experiment.sweep import SUMMARY, expand, load_sweep

PRUNED = "pruned.json"  # what an Optuna search writes into a pruned trial's run directory
LOG = "train.log"
QUEUED = ("PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "CONFIGURING", "SUSPENDED", "RESIZING")


@dataclasses.dataclass(frozen=True)
class TrialStatus:
    name: str
    state: str  # pending | running | done | failed | pruned
    job: str  # its SLURM array task id, or "-"
    detail: str  # the error line, the pruning step, the lock's PID or the queue state


def _last_error(run_dir: Path) -> str | None:
    log = run_dir / LOG
    if not log.exists():
        return None
    errors = [line for line in log.read_text(errors="replace").splitlines() if line.startswith("error")]
    return errors[-1][:200] if errors else None


def trial_status(name: str, run_dir: Path, job: str | None, queue: dict[str, str]) -> TrialStatus:
    """The state of the trial trained in ``run_dir`` by array task ``job`` (if any), ``queue`` being
    :func:`~seqjax.experiment.slurm_jobs.queue_states`."""
    shown = job or "-"
    if (run_dir / SUMMARY).exists():
        return TrialStatus(name, "done", shown, "")
    if (run_dir / PRUNED).exists():
        step = json.loads((run_dir / PRUNED).read_text()).get("pruned_at_step")
        return TrialStatus(name, "pruned", shown, f"at step {step}")
    holder = lock_holder(run_dir)
    queued = queue.get(job) if job else None
    if holder is not None or queued == "RUNNING":
        return TrialStatus(name, "running", shown, f"PID {holder}" if holder else "SLURM job RUNNING")
    if queued is not None:
        return TrialStatus(name, "pending", shown, f"SLURM job {queued}")
    error = _last_error(run_dir)
    if error is not None:
        return TrialStatus(name, "failed", shown, error)
    return TrialStatus(name, "pending", shown, "started, unfinished" if run_dir.exists() else "not started")


def sweep_status(path: str | Path, out: str | Path | None = None) -> list[TrialStatus]:
    """One :class:`TrialStatus` per trial of the sweep file at ``path`` (``out`` replaces the file's)."""
    spec, experiments = load_sweep(path, out)
    root = Path(spec.out)
    if spec.search:
        runs = [(p.name, p) for p in sorted(root.glob("trial-*")) if p.is_dir()]
    else:
        runs = [(t.name, t.run_dir) for t in expand(spec, experiments)]
    jobs, queue = read_jobs(root), queue_states()
    return [trial_status(name, run_dir, jobs.get(name), queue) for name, run_dir in runs]


def status_table(statuses: list[TrialStatus]) -> str:
    """The statuses as an aligned table (one line per trial) and a count per state."""
    rows = [("trial", "state", "job", "detail"), *((s.name, s.state, s.job, s.detail) for s in statuses)]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r[:3], widths)) + ("  " + r[3] if r[3] else "") for r in rows]
    counts: dict[str, int] = {}
    for s in statuses:
        counts[s.state] = counts.get(s.state, 0) + 1
    lines.append(", ".join(f"{n} {state}" for state, n in counts.items()) or "no trials")
    return "\n".join(line.rstrip() for line in lines) + "\n"
