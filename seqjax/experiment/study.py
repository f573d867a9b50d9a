"""What every study under ``experiments/`` shares: its command line and its claim check.

A study is two scripts beside its README: ``run.py`` trains and writes raw results to a folder, ``check.py``
reads them and prints, claim by claim, the published value, ours and PASS/FAIL.  Both take ``--out FOLDER``
(default: the study's own folder, where the committed results live) and ``--quick`` (a smoke test at a tiny
size; its default folder is ``runs/quick/<study>``, so a quick run never overwrites committed results, and
``check.py --quick`` reports without failing, since tiny models are not expected to hold the claims).

A study that trains sweeps runs them from :func:`sweep_study` (its whole ``main``), or scores them with
:func:`sweep_rows` (one row per trial: its own columns, then :func:`score_trial`'s) and checks its ``--quick``
run with :func:`check_quick`; :func:`cell_stats` gives the :func:`~seqjax.experiment.report.mean_ci` statistics
of each cell of a table, which :func:`ci_text` and :func:`ci_interval` present.

>>> import pathlib
>>> parser = study_parser("A study.", pathlib.Path("experiments/adding"))
>>> args = parser.parse_args(["--quick"])
>>> str(study_out(args))
'runs/quick/adding'
>>> str(study_out(parser.parse_args([])))
'experiments/adding'
>>> ci_text({"mean": 0.5, "ci95": 0.25}), ci_text({"mean": 0.5, "ci95": None}), ci_interval({"mean": 0.5, "ci95": 0.25})
('0.500 ± 0.250', '0.500', (0.25, 0.75))
>>> ci_text({"mean": 0.000123456, "ci95": 0.0000456}, significant=True)
'0.000123 ± 4.6e-05'
>>> report_claims([("LSTM beats the RNN", "87 vs 21", "0.91 vs 0.40", True)], quick=False)
claim              published ours         verdict
LSTM beats the RNN 87 vs 21  0.91 vs 0.40 PASS
every claim holds
0
"""

from __future__ import annotations

import argparse
import json
import math
import pathlib
import sys
from typing import Callable, NamedTuple

from omegaconf import DictConfig, OmegaConf

from seqjax.experiment.evaluate import evaluate_run
from seqjax.experiment.report import mean_ci
from seqjax.experiment.sweep import Trial, plan_sweep, run_sweep

ROOT = pathlib.Path(__file__).resolve().parents[2]  # the repository: commands in result rows are relative to it


class Claim(NamedTuple):
    """One published claim checked against our results."""

    claim: str
    published: str
    ours: str
    holds: bool | None  # None: reported, not checked


def study_parser(description: str, folder: pathlib.Path, quick_help: str = "a smoke test at a tiny size"
                 ) -> argparse.ArgumentParser:
    """A parser with the study's ``--out`` and ``--quick`` (``folder``: the study's folder); add the rest."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--out", type=pathlib.Path, default=None,
                        help=f"results folder (default: {folder}; with --quick runs/quick/{folder.name})")
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.set_defaults(study_folder=folder)
    return parser


def study_out(args: argparse.Namespace, create: bool = False) -> pathlib.Path:
    """The results folder ``args`` name (see the module docstring), made if ``create``."""
    folder: pathlib.Path = args.study_folder
    out = args.out or (pathlib.Path("runs/quick") / folder.name if args.quick else folder)
    if create:
        out.mkdir(parents=True, exist_ok=True)
    return out


def report_claims(claims: list[Claim] | list[tuple[str, str, str, bool | None]], quick: bool) -> int:
    """Print the claims as a table (verdict ``-`` for one only reported); the exit code: 1 if one fails, unless
    ``quick``."""
    rows = [Claim(*c) for c in claims]
    header = Claim("claim", "published", "ours", True)
    widths = [max(len(getattr(r, f)) for r in (header, *rows)) for f in ("claim", "published", "ours")]
    for r in (header, *rows):
        verdict = "verdict" if r is header else "-" if r.holds is None else "PASS" if r.holds else "FAIL"
        print(" ".join(f"{getattr(r, f):{w}}" for f, w in zip(("claim", "published", "ours"), widths)), verdict)
    failed = sum(r.holds is False for r in rows)
    print(f"{failed} claim(s) failed" if failed else "every claim holds")
    return 1 if failed and not quick else 0


def check_main(description: str, folder: pathlib.Path, claims: Callable[[list[dict]], list[Claim]]) -> int:
    """A study's ``check.py``: ``claims`` of the rows in ``<out>/results.json``, printed; the exit code."""
    args = study_parser(description, folder, "read run.py --quick's results; never fail").parse_args()
    return report_claims(claims(json.loads((study_out(args) / "results.json").read_text())), args.quick)


def cell_stats(rows: list[dict], keys: tuple[str, ...], metric: str = "test_accuracy") -> dict[tuple, dict]:
    """Per cell (the rows sharing their values of ``keys``, keyed by those values in first-seen order):
    :func:`~seqjax.experiment.report.mean_ci` of the cell's ``metric``.

    >>> rows = [{"model": "a", "seed": 0, "acc": 0.5}, {"model": "b", "seed": 0, "acc": 1.0},
    ...         {"model": "a", "seed": 1, "acc": 0.7}]
    >>> {cell: round(s["mean"], 3) for cell, s in cell_stats(rows, ("model",), "acc").items()}
    {('a',): 0.6, ('b',): 1.0}
    """
    values: dict[tuple, list[float]] = {}
    for r in rows:
        values.setdefault(tuple(r[k] for k in keys), []).append(r[metric])
    return {cell: mean_ci(v) for cell, v in values.items()}


def ci_text(stats: dict, significant: bool = False) -> str:
    """``mean ± h`` of :func:`~seqjax.experiment.report.mean_ci`'s statistics, 3 decimals, or with ``significant``
    3 significant digits and 2 for ``h`` (losses spanning decades); one value: the mean."""
    mean, h = (".3g", ".2g") if significant else (".3f", ".3f")
    return f"{stats['mean']:{mean}}" + (f" ± {stats['ci95']:{h}}" if stats["ci95"] is not None else "")


def ci_interval(stats: dict) -> tuple[float, float]:
    """The 95% interval ``[mean - h, mean + h]`` (one value: the point)."""
    h = stats["ci95"] or 0.0
    return stats["mean"] - h, stats["mean"] + h


def score_trial(trial: Trial, metric: str = "accuracy") -> dict:
    """A trained sweep trial's result columns: its summary (parameters, steps, the ``metric`` of its best
    validation evaluation and at each evaluation, wall time), the test ``metric`` of its best validation
    checkpoint (``seqjax eval``), the task's memoryless baseline of it (``chance_<metric>``) and the ``seqjax
    train`` command that reproduces it."""
    summary = json.loads((trial.run_dir / "summary.json").read_text())
    rows = [json.loads(line) for line in (trial.run_dir / "metrics.jsonl").read_text().splitlines()]
    test = evaluate_run(str(trial.run_dir))
    return {"params": summary["param_count"], "steps": summary["steps"], "best_step": test["step"],
            f"val_{metric}": summary["best"][metric], f"test_{metric}": test["metrics"][metric],
            f"val_{metric}_by_step": {r["step"]: r[metric] for r in rows if r["split"] == "val"},
            "test_examples": test["examples"], f"chance_{metric}": test["baseline"][metric],
            "wall_s": summary["wall_time_s"], "command": trial_command(trial)}


def trial_command(trial: Trial) -> str:
    """The ``seqjax train`` command that reproduces ``trial``, its paths relative to the repository."""
    return " ".join(["seqjax train", str(trial.experiment.resolve().relative_to(ROOT)),
                     *(o.replace(f"{ROOT}/", "") for o in trial.overrides)])


def sweep_rows(sweep: pathlib.Path, out: pathlib.Path, overrides: list[str], columns: Callable[[DictConfig], dict],
               vmap: bool | None = None, tiny: bool = False, metric: str = "accuracy") -> list[dict]:
    """Train the sweep's trials (``run_sweep``; runs under ``out``; ``tiny``: each at its experiment's tiny size
    and in this process, as a ``--quick`` run does) and score each: ``columns(cfg)`` (the study's own columns,
    from the trial's config), then :func:`score_trial`'s of ``metric``; each row printed as it comes."""
    failed = run_sweep(sweep, overrides=overrides, out=out, vmap=vmap, tiny=tiny, jobs=quick_jobs(tiny))
    if failed:
        raise SystemExit(f"training failed for {[t.name for t in failed]}")
    plan = plan_sweep(sweep, overrides=overrides, out=out, tiny=tiny)
    rows = []
    for trial, cfg in zip(plan.trials, plan.cfgs):
        rows.append({**columns(cfg), **score_trial(trial, metric)})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def sweep_study(description: str, folder: pathlib.Path, sweeps: dict[str, pathlib.Path],
                columns: Callable[[DictConfig], dict], write: Callable[[list[dict], pathlib.Path], None],
                outputs: tuple[str, ...] = ("results.md",), quick_models: int | None = None,
                metric: str = "accuracy") -> None:
    """The ``main`` of a study that trains sweeps: its command line (:func:`study_parser`), each sweep trained and
    scored by :func:`sweep_rows` under ``<out>/runs/<key>`` (``--quick``: its :func:`quick_sweep` of
    ``quick_models`` at the tiny size), ``write(rows, out)`` after each, ``results.md`` printed, and a
    ``--quick`` run checked (:func:`check_quick`: ``outputs`` written, the ``metric`` finite)."""
    args = study_parser(description, folder).parse_args()
    out = study_out(args, create=True)
    rows: list[dict] = []
    for key, sweep in sweeps.items():
        sweep = quick_sweep(sweep, out, models=quick_models) if args.quick else sweep
        rows += sweep_rows(sweep, out / "runs" / key, [], columns, tiny=args.quick, metric=metric)
        write(rows, out)
    print((out / "results.md").read_text())
    if args.quick:
        check_quick(out, len(rows), outputs, finite=(f"val_{metric}", f"test_{metric}", "wall_s"))


def quick_jobs(quick: bool) -> int:
    """``run_sweep``'s ``jobs`` for a study: a ``--quick`` run's seconds-long trials train in this process
    (``jobs=0``: no process start-up per trial), the study's own one trial process at a time."""
    return 0 if quick else 1


def quick_sweep(sweep: pathlib.Path, out: pathlib.Path, models: int | None = None) -> pathlib.Path:
    """A ``--quick`` copy of ``sweep``, written to ``<out>/quick_<name>``: its first seed, each swept key (grid and
    zip axes) at its first value, its first ``models`` experiments (all by default; a study keeps those its claims
    name: ``tests/test_shipped_configs.py`` trains every experiment at the tiny size), their paths made absolute.
    A smoke test then trains one point of the search space per model, not the study's grid.

    >>> import tempfile
    >>> path = quick_sweep(ROOT / "configs/sweeps/bai_table1_adding.yaml", pathlib.Path(tempfile.mkdtemp()), 2)
    >>> spec = OmegaConf.to_container(OmegaConf.load(path))
    >>> [pathlib.Path(e).name for e in spec["experiment"]], spec["seeds"]
    (['adding600_tcn.yaml', 'adding600_gru.yaml'], [0])
    >>> OmegaConf.load(quick_sweep(ROOT / "configs/sweeps/adding_lr.yaml", pathlib.Path(tempfile.mkdtemp()))).grid
    {'optim.lr': [0.001], 'model.hidden_size': [32]}
    """
    spec = OmegaConf.load(sweep)
    experiments = [spec.experiment] if isinstance(spec.experiment, str) else list(spec.experiment)
    spec.experiment = [str((sweep.parent / e).resolve()) for e in experiments[:models]]
    spec.seeds = list(spec.get("seeds", [0]))[:1]
    for axis in ("grid", "zip"):
        if axis in spec:
            spec[axis] = {key: list(values)[:1] for key, values in spec[axis].items()}
    path = out / f"quick_{sweep.name}"
    OmegaConf.save(spec, path)
    return path


def check_quick(out: pathlib.Path, trials: int, outputs: tuple[str, ...] = ("results.md",),
                finite: tuple[str, ...] = ("val_accuracy", "test_accuracy", "wall_s")) -> None:
    """A ``--quick`` run's assertion: ``outputs`` exist in ``out`` and ``results.json`` holds a row per trial
    whose ``finite`` columns are finite."""
    rows = json.loads((out / "results.json").read_text())
    finite = all(math.isfinite(r[k]) for r in rows for k in finite)
    if not (all((out / name).is_file() for name in outputs) and len(rows) == trials and finite):
        sys.exit(f"--quick: {out} lacks one of {list(outputs)}, or results.json lacks a finite row per trial")
