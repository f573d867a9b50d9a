"""Induction heads: train each family at one length, test at longer ones (Gu & Dao 2023, Table 11).

Runs ``seqjax sweep configs/sweeps/induction.yaml`` (every family trained at L=64, seeds 0, 1, 2; a family's
seeds trained together in one vmapped program), then scores each run's best validation checkpoint on fixed test
sets of increasing length (``seqjax eval RUN_DIR task.seq_len=L``) and writes to ``--out`` (default: here):
``results.json`` (one row per run: model, seed, params, steps, best step, validation accuracy and its value at
each evaluation, the test accuracy at each length, wall time, the ``seqjax train`` command that reproduces it),
``results.md`` (test accuracy, mean ± 95% CI over seeds, per model and length) and ``accuracy_vs_length.png``.
Run directories go to ``<out>/runs/``; a rerun skips the trials already trained and scores them again.

Usage:  python experiments/induction_heads/run.py [--lengths 64 128 256 512 1024] [--out FOLDER] [--quick]

``--quick`` is a smoke test of the same pipeline (it overrides ``--lengths``): one seed of the claims'
models, Mamba and the Transformer (``study.quick_sweep``, ``QUICK_MODELS``), each at its experiment's tiny
size (``seqjax.experiment.tiny``: 6 steps, L=24, one layer of width 8) and trained in this process
(``study.quick_jobs``), tested at L=24 and 48; results under ``--out`` (default
``runs/quick/induction_heads``); it fails unless every row holds finite accuracies.
"""

from __future__ import annotations

import json
import pathlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from seqjax.experiment.evaluate import evaluate_run  # noqa: E402
from seqjax.experiment.report import mean_ci  # noqa: E402
from seqjax.experiment.study import (  # noqa: E402
    check_quick, ci_text, quick_jobs, quick_sweep, score_trial, study_out, study_parser)
from seqjax.experiment.sweep import plan_sweep, run_sweep  # noqa: E402
from seqjax.experiment.tiny import TINY_TASK  # noqa: E402

HERE = pathlib.Path(__file__).resolve().parent
SWEEP = HERE.parent.parent / "configs" / "sweeps" / "induction.yaml"
PLOT = "accuracy_vs_length.png"
QUICK_MODELS = 2  # the sweep's first two, the claims' Mamba and Transformer
QUICK_LENGTH = TINY_TASK["seq_len"]  # --quick: trained at the tiny length, tested at it and twice it


def at_length(runs: list[dict], length: int) -> dict:
    """:func:`~seqjax.experiment.report.mean_ci` of the runs' test accuracy at ``length``."""
    return mean_ci([r["test_accuracy_by_length"][str(length)] for r in runs])


def write(rows: list[dict], lengths: list[int], out: pathlib.Path) -> None:
    """``results.json`` (the rows) and ``results.md`` (test accuracy per model and length, mean ± 95% CI)."""
    (out / "results.json").write_text(json.dumps(rows, indent=2) + "\n")
    train_length = rows[0]["train_length"]
    table = ["| model | params | seeds | " + " | ".join(
        f"L={n}" + (" (train)" if n == train_length else "") for n in lengths) + " |",
        "|---|---|---|" + "---|" * len(lengths)]
    for model in dict.fromkeys(r["model"] for r in rows):
        runs = [r for r in rows if r["model"] == model]
        table.append(f"| {model} | {runs[0]['params']} | {len(runs)} | "
                     + " | ".join(ci_text(at_length(runs, n)) for n in lengths) + " |")
    (out / "results.md").write_text(f"Test accuracy (trained at L={train_length}; chance 1/15 = 0.067), mean ± 95% "
                                    "CI over seeds\n\n" + "\n".join(table) + "\n")


def plot(rows: list[dict], lengths: list[int], path: pathlib.Path) -> None:
    """Mean test accuracy against test length (95% CI bars), one line per model; the training length dotted."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for model in dict.fromkeys(r["model"] for r in rows):
        stats = [at_length([r for r in rows if r["model"] == model], n) for n in lengths]
        ax.errorbar(lengths, [s["mean"] for s in stats], yerr=[s["ci95"] or 0.0 for s in stats], marker="o",
                    capsize=3, label=model)
    ax.set_xscale("log", base=2)
    ax.axvline(rows[0]["train_length"], color="gray", ls=":", label="training length")
    ax.axhline(rows[0]["chance_accuracy"], color="gray", ls="--", label="chance")
    ax.set_xlabel("test sequence length")
    ax.set_ylabel("test accuracy")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = study_parser(__doc__.splitlines()[0], HERE, "a smoke test, every trial at its tiny size "
                                                         "(overrides --lengths)")
    parser.add_argument("--lengths", type=int, nargs="+", default=[64, 128, 256, 512, 1024])
    args = parser.parse_args()
    out = study_out(args, create=True)
    if args.quick:
        args.lengths = [QUICK_LENGTH, 2 * QUICK_LENGTH]
    sweep = quick_sweep(SWEEP, out, models=QUICK_MODELS) if args.quick else SWEEP
    failed = run_sweep(sweep, out=out / "runs", tiny=args.quick, jobs=quick_jobs(args.quick))
    if failed:
        raise SystemExit(f"training failed for {[t.name for t in failed]}")
    plan = plan_sweep(sweep, out=out / "runs", tiny=args.quick)
    rows = []
    for trial, cfg in zip(plan.trials, plan.cfgs):
        row = {"model": cfg.name.removeprefix("induction_"), "seed": cfg.seed, "train_length": cfg.task.seq_len,
               **score_trial(trial)}
        row["test_accuracy_by_length"] = {  # at the training length: score_trial's test accuracy
            str(n): row["test_accuracy"] if n == cfg.task.seq_len else
            evaluate_run(str(trial.run_dir), overrides=[f"task.seq_len={n}"])["metrics"]["accuracy"]
            for n in args.lengths}
        rows.append(row)
        print(json.dumps({k: v for k, v in row.items() if k != "val_accuracy_by_step"}), flush=True)
        write(rows, args.lengths, out)
    plot(rows, args.lengths, out / PLOT)
    print((out / "results.md").read_text())
    if args.quick:
        check_quick(out, len(rows), ("results.md", PLOT))


if __name__ == "__main__":
    main()
