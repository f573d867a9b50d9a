"""Selective copying (Gu & Dao 2023, Table 1) at CPU scale: Mamba (S6), S4D, LSTM and Transformer over seeds.

Runs ``seqjax sweep configs/sweeps/selective_copy.yaml --no-vmap --jobs 1`` (one ``seqjax train`` process
per run, one at a time: a vmapped group of the LSTM's seeds hung at its start once here), scores each run's
best validation checkpoint on the fixed test split with ``seqjax eval`` and writes ``results.json`` (one row
per run: model, seed, params, steps, best step, validation and test accuracy, the validation accuracy at each
evaluation, wall time, the ``seqjax train`` command that reproduces it) and ``results.md`` (test accuracy,
mean ± 95% CI over seeds) to ``--out`` (default: here); run directories go to ``<out>/runs/``.  A rerun skips
the trials already trained (the sweep's rule) and scores them again.

Usage:  python experiments/selective_copying/run.py [--sweep FILE] [--out FOLDER] [--quick]

``--quick`` is a smoke test of the same pipeline: one seed of the sweep's first two models, the claims' Mamba
and S4D in ``selective_copy.yaml`` (``study.quick_sweep``, ``QUICK_MODELS``), each at its
experiment's tiny size (``seqjax.experiment.tiny``: 6 steps, L=24, one layer of width 8) and trained in this
process (``study.quick_jobs``), results under
``--out`` (default ``runs/quick/selective_copying``); it fails unless every row holds finite accuracies.
"""

from __future__ import annotations

import json
import pathlib

from seqjax.experiment.report import mean_ci
from seqjax.experiment.study import check_quick, ci_text, quick_sweep, study_out, study_parser, sweep_rows

HERE = pathlib.Path(__file__).resolve().parent
SWEEP = HERE.parent.parent / "configs" / "sweeps" / "selective_copy.yaml"
QUICK_MODELS = 2  # the first two of a sweep: selective_copy.yaml's Mamba and S4D, the claims' models


def write(rows: list[dict], out: pathlib.Path) -> None:
    """``results.json`` (the rows) and ``results.md`` (test accuracy per model, mean ± 95% CI over seeds)."""
    (out / "results.json").write_text(json.dumps(rows, indent=2) + "\n")
    table = ["| model | params | steps | seeds | test accuracy (mean ± 95% CI) | per seed |",
             "|---|---|---|---|---|---|"]
    for model in dict.fromkeys(r["model"] for r in rows):
        runs = [r for r in rows if r["model"] == model]
        seeds = " / ".join(f"{r['test_accuracy']:.3f}" for r in runs)
        table.append(f"| {model} | {runs[0]['params']} | {runs[0]['steps']} | {len(runs)} "
                     f"| {ci_text(mean_ci([r['test_accuracy'] for r in runs]))} | {seeds} |")
    (out / "results.md").write_text("\n".join(table) + "\n")


def main() -> None:
    parser = study_parser(__doc__.splitlines()[0], HERE, "a smoke test, every trial at its tiny size")
    parser.add_argument("--sweep", type=pathlib.Path, default=SWEEP, help="the sweep file (default: %(default)s)")
    args = parser.parse_args()
    out = study_out(args, create=True)
    sweep = quick_sweep(args.sweep, out, models=QUICK_MODELS) if args.quick else args.sweep
    rows = sweep_rows(sweep, out / "runs", [], lambda cfg: {"model": cfg.name.removeprefix("selective_copy_"),
                                                            "seed": cfg.seed}, vmap=False, tiny=args.quick)
    write(rows, out)
    print((out / "results.md").read_text())
    if args.quick:
        check_quick(out, len(rows))


if __name__ == "__main__":
    main()
