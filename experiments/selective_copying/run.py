"""Selective copying (Gu & Dao 2023, Table 1) at CPU scale: Mamba (S6), S4D, LSTM and Transformer over seeds.

Runs ``seqjax sweep configs/sweeps/selective_copy.yaml --no-vmap --jobs 1`` (one ``seqjax train`` process
per run, one at a time: a vmapped group of the LSTM's seeds hung at its start once here), scores each run's
best validation checkpoint on the fixed test split with ``seqjax eval`` and writes ``results.json`` (one row
per run: model, seed, params, steps, best step, validation and test accuracy, the validation accuracy at each
evaluation, wall time, the ``seqjax train`` command that reproduces it) and ``results.md`` (test accuracy,
mean ± 95% CI over seeds) to ``--out`` (default: here); run directories go to ``<out>/runs/``.  A rerun skips
the trials already trained (the sweep's rule) and scores them again.

Usage:  python experiments/selective_copying/run.py [--sweep FILE] [--out FOLDER] [--quick]

``--quick`` is a smoke test of the same pipeline: every trial trained for 2 steps at L=8, M=4 on tiny batches,
results under ``--out`` (default ``runs/quick/selective_copying``); it fails unless every row holds finite
accuracies.
"""

from __future__ import annotations

import json
import math
import pathlib
import sys

from seqjax.experiment.evaluate import evaluate_run
from seqjax.experiment.report import mean_ci
from seqjax.experiment.study import study_out, study_parser
from seqjax.experiment.sweep import Trial, plan_sweep, run_sweep

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent
SWEEP = ROOT / "configs" / "sweeps" / "selective_copy.yaml"
QUICK_OVERRIDES = ["task.seq_len=8", "task.num_tokens=4", "train.steps=2", "train.eval_every=2",
                   "train.checkpoint_every=2", "train.batch_size=4", "train.eval_examples=8", "train.test_examples=8",
                   "train.eval_batch_size=8", "optim.warmup_steps=1"]


def score(trial: Trial, seed: int) -> dict:
    """One result row: the trial's summary, its best validation checkpoint's test accuracy and its command."""
    summary = json.loads((trial.run_dir / "summary.json").read_text())
    rows = [json.loads(line) for line in (trial.run_dir / "metrics.jsonl").read_text().splitlines()]
    test = evaluate_run(str(trial.run_dir))
    command = " ".join(["seqjax train", str(trial.experiment.resolve().relative_to(ROOT)),
                        *(o.replace(f"{ROOT}/", "") for o in trial.overrides)])
    return {"model": summary["name"].removeprefix("selective_copy_"), "seed": seed,
            "params": summary["param_count"], "steps": summary["steps"], "best_step": test["step"],
            "val_accuracy": summary["best"]["accuracy"], "test_accuracy": test["metrics"]["accuracy"],
            "val_accuracy_by_step": {r["step"]: r["accuracy"] for r in rows if r["split"] == "val"},
            "test_examples": test["examples"], "chance_accuracy": test["baseline"]["accuracy"],
            "wall_s": summary["wall_time_s"], "command": command}


def write(rows: list[dict], out: pathlib.Path) -> None:
    """``results.json`` (the rows) and ``results.md`` (test accuracy per model, mean ± 95% CI over seeds)."""
    (out / "results.json").write_text(json.dumps(rows, indent=2) + "\n")
    table = ["| model | params | steps | seeds | test accuracy (mean ± 95% CI) | per seed |",
             "|---|---|---|---|---|---|"]
    for model in dict.fromkeys(r["model"] for r in rows):
        runs = [r for r in rows if r["model"] == model]
        stats = mean_ci([r["test_accuracy"] for r in runs])
        ci = f" ± {stats['ci95']:.3f}" if stats["ci95"] is not None else ""
        seeds = " / ".join(f"{r['test_accuracy']:.3f}" for r in runs)
        table.append(f"| {model} | {runs[0]['params']} | {runs[0]['steps']} | {len(runs)} | {stats['mean']:.3f}{ci} "
                     f"| {seeds} |")
    (out / "results.md").write_text("\n".join(table) + "\n")


def main() -> None:
    parser = study_parser(__doc__.splitlines()[0], HERE, f"a smoke test at a tiny size: {QUICK_OVERRIDES}")
    parser.add_argument("--sweep", type=pathlib.Path, default=SWEEP, help="the sweep file (default: %(default)s)")
    args = parser.parse_args()
    out = study_out(args, create=True)
    overrides = QUICK_OVERRIDES if args.quick else []
    failed = run_sweep(args.sweep, overrides=overrides, out=out / "runs", vmap=False)
    if failed:
        raise SystemExit(f"training failed for {[t.name for t in failed]}")
    plan = plan_sweep(args.sweep, overrides=overrides, out=out / "runs")
    rows = []
    for trial, cfg in zip(plan.trials, plan.cfgs):
        rows.append(score(trial, cfg.seed))
        print(json.dumps(rows[-1]), flush=True)
    write(rows, out)
    print((out / "results.md").read_text())
    if args.quick:
        check_quick(out, len(plan.trials))


def check_quick(out: pathlib.Path, trials: int) -> None:
    """The smoke test's assertion: both outputs exist and ``results.json`` holds a finite row per trial."""
    rows = json.loads((out / "results.json").read_text())
    finite = all(math.isfinite(r[k]) for r in rows for k in ("val_accuracy", "test_accuracy", "wall_s"))
    if not ((out / "results.md").is_file() and len(rows) == trials and finite):
        sys.exit(f"--quick: {out} lacks results.md, or results.json lacks a finite row per trial")


if __name__ == "__main__":
    main()
