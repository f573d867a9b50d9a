"""Bai et al. (2018) Table 1, synthetic rows, at CPU scale: adding problem T=600 and copy memory T=1000.

RNN, LSTM, GRU and TCN at matched parameter counts (adding: ~70K, TCN 8 levels x 24 channels, k=8; copy: ~13K,
TCN 8 levels x 10 channels, k=8), Adam lr 2e-3, clipping at global norm 1, 3 seeds each.  Runs the sweeps
``configs/sweeps/bai_table1_adding.yaml`` and ``configs/sweeps/bai_table1_copy.yaml`` with ``--no-vmap`` (one
``seqjax train`` process per run, one at a time: the adding TCN's three seeds as one vmapped group logged no
step in 5 minutes here, about as long as one seed alone takes for all its 500 steps), scores each run's best
validation checkpoint on the fixed test split with ``seqjax eval``, and writes ``results.json`` (one row per
run: model, task, T, seed, params, steps, best step, best and final validation loss, test loss, the task's
baseline, the validation loss at each evaluation, wall time, the ``seqjax train`` command that reproduces it)
and ``results.md`` (test loss, mean ± 95% CI over seeds) to
``--out`` (default: here); run directories go to ``<out>/runs/``.  A rerun skips the trials already trained
(the sweep's rule) and scores them again.

Usage:  python experiments/bai_table1/run.py [--out FOLDER] [--quick]

``--quick`` is a smoke test of the same pipeline: one seed per model (``study.quick_sweep``), each at its
experiment's tiny size (``seqjax.experiment.tiny``: 6 steps, T=24, one layer of width 8) and trained in this
process (``study.quick_jobs``), results under
``--out`` (default ``runs/quick/bai_table1``); it fails unless every row holds finite losses.
"""

from __future__ import annotations

import json
import pathlib

from omegaconf import DictConfig

from seqjax.experiment.evaluate import evaluate_run
from seqjax.experiment.report import mean_ci
from seqjax.experiment.study import check_quick, ci_text, quick_jobs, quick_sweep, study_out, study_parser, trial_command
from seqjax.experiment.sweep import Trial, plan_sweep, run_sweep

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent
SWEEPS = {"adding": ROOT / "configs" / "sweeps" / "bai_table1_adding.yaml",
          "copy": ROOT / "configs" / "sweeps" / "bai_table1_copy.yaml"}
LOSS = {"adding": "MSE", "copy": "cross-entropy"}  # what each task's loss is


def score(trial: Trial, cfg: DictConfig, task: str) -> dict:
    """One result row: the trial's summary, its best validation checkpoint's test loss and its command."""
    summary = json.loads((trial.run_dir / "summary.json").read_text())
    rows = [json.loads(line) for line in (trial.run_dir / "metrics.jsonl").read_text().splitlines()]
    test = evaluate_run(str(trial.run_dir))
    return {"model": cfg.model.name, "task": task, "T": cfg.task.seq_len, "seed": cfg.seed,
            "params": summary["param_count"], "steps": summary["steps"], "batch_size": cfg.train.batch_size,
            "best_step": test["step"], "best_val_loss": summary["best"]["loss"],
            "final_val_loss": summary["final"]["val"]["loss"], "test_loss": test["metrics"]["loss"],
            "baseline_loss": test["baseline"]["loss"], "test_examples": test["examples"],
            "val_loss_by_step": {r["step"]: r["loss"] for r in rows if r["split"] == "val"},
            "wall_s": summary["wall_time_s"], "command": trial_command(trial)}


def write(rows: list[dict], out: pathlib.Path) -> None:
    """``results.json`` (the rows) and ``results.md`` (test loss per task and model, mean ± 95% CI over seeds)."""
    (out / "results.json").write_text(json.dumps(rows, indent=2) + "\n")
    table = ["| task | T | model | params | steps | seeds | test loss (mean ± 95% CI) | baseline | per seed |",
             "|---|---|---|---|---|---|---|---|---|"]
    for task, model in dict.fromkeys((r["task"], r["model"]) for r in rows):
        runs = [r for r in rows if r["task"] == task and r["model"] == model]
        seeds = " / ".join(f"{r['test_loss']:.3g}" for r in runs)
        loss = ci_text(mean_ci([r["test_loss"] for r in runs]), significant=True)
        table.append(f"| {task} ({LOSS[task]}) | {runs[0]['T']} | {model.upper()} | {runs[0]['params']} | "
                     f"{runs[0]['steps']} | {len(runs)} | {loss} | "
                     f"{runs[0]['baseline_loss']:.3g} | {seeds} |")
    (out / "results.md").write_text("\n".join(table) + "\n")


def main() -> None:
    parser = study_parser(__doc__.splitlines()[0], HERE, "a smoke test, every trial at its tiny size")
    args = parser.parse_args()
    out = study_out(args, create=True)
    rows = []
    for task, sweep in SWEEPS.items():
        sweep = quick_sweep(sweep, out) if args.quick else sweep
        failed = run_sweep(sweep, out=out / "runs" / task, vmap=False, tiny=args.quick, jobs=quick_jobs(args.quick))
        if failed:
            raise SystemExit(f"training failed for {[t.name for t in failed]}")
        plan = plan_sweep(sweep, out=out / "runs" / task, tiny=args.quick)
        for trial, cfg in zip(plan.trials, plan.cfgs):
            rows.append(score(trial, cfg, task))
            print(json.dumps({k: v for k, v in rows[-1].items() if k != "val_loss_by_step"}), flush=True)
        write(rows, out)
    print((out / "results.md").read_text())
    if args.quick:
        check_quick(out, len(rows), finite=("best_val_loss", "test_loss", "wall_s"))


if __name__ == "__main__":
    main()
