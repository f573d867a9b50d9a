"""The SLURM jobs of a sweep: which array task trains which trial (``<out>/slurm/jobs.json``), and what
``squeue`` says of them now.

``seqjax sweep --launcher slurm`` records, per trial of a grid (or per worker of an Optuna search, as
``worker-<i>``), the id of the array task that trains it (``12_3``: array job 12, task 3); a rerun adds
the new ids over the old ones.  ``squeue`` lists the jobs still known to the controller (pending,
running, requeued, completing); a job missing from it has ended, however it ended.  Nothing here needs
submitit.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

SLURM_DIR = "slurm"  # <out>/slurm: submitit's pickles and logs, and JOBS
JOBS = "jobs.json"


def read_jobs(out: str | Path) -> dict[str, str]:
    """``{trial name (or worker-<i>): array task id}`` as last recorded in ``out``; empty if none."""
    path = Path(out) / SLURM_DIR / JOBS
    return json.loads(path.read_text()) if path.exists() else {}


def record_jobs(out: str | Path, jobs: dict[str, str]) -> None:
    """Add ``jobs`` to ``out``'s record, replacing the ids of trials submitted again."""
    path = Path(out) / SLURM_DIR / JOBS
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**read_jobs(out), **jobs}, indent=2, sort_keys=True) + "\n")


def queue_states() -> dict[str, str]:
    """``{job id: state}`` of every job ``squeue`` lists, one entry per array task (``12_3``); empty when
    there is no ``squeue`` on ``PATH`` or the controller does not answer."""
    if shutil.which("squeue") is None:
        return {}
    try:
        proc = subprocess.run(["squeue", "--noheader", "--array", "--format=%i %T"], capture_output=True,
                              text=True, timeout=60)
    except subprocess.TimeoutExpired:
        return {}
    if proc.returncode != 0:
        return {}
    return dict(line.split(maxsplit=1) for line in proc.stdout.splitlines() if line.strip())
