"""Sequential and permuted 8x8 digits: vanilla RNN, LSTM, GRU and TCN over seeds (Bai et al. 2018, Table 1, small).

scikit-learn's bundled digits read one pixel per step (64 steps) and classified at the last step, in reading
order and in one fixed random order (``task.permute=true``).  Each model trains through the standard trainer
from its shipped config (``configs/experiments/digits_{rnn,lstm,gru,tcn}.yaml``: RNN / LSTM / GRU hidden 64,
TCN 5 levels x 32 channels k=3; Adam 3e-3, clip 1.0, batch 64) with ``seed = data_seed = s``, and is scored
with ``seqjax eval`` (best validation checkpoint, the fixed 359-image test split).

Usage:  python experiments/sequential_digits/run.py [--steps 400] [--seeds 0 1 2] [--quick]

Writes ``results.json`` (one row per run: model, permuted, seed, test accuracy and cross-entropy, params, wall
time) and ``results.md`` (mean ± 95% CI over seeds) to ``--out`` (default: here); run directories go to
``<out>/runs/``.  ``--quick`` is a smoke test of the same pipeline: widths 8, 2 steps, one seed, 8 test images,
results under ``--out`` (default ``runs/quick/sequential_digits``).
"""

from __future__ import annotations

import json
import pathlib
import shutil
import time

from seqjax.experiment.config import load_config
from seqjax.experiment.evaluate import evaluate_run
from seqjax.experiment.loop import Trainer
from seqjax.experiment.report import mean_ci
from seqjax.experiment.study import study_out, study_parser

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent
MODELS = ("rnn", "lstm", "gru", "tcn")
QUICK = dict(steps=2, seeds=[0])  # --quick, with these overrides:
QUICK_OVERRIDES = ["model.hidden_size=8", "train.batch_size=4", "train.eval_examples=8", "train.test_examples=8",
                   "train.eval_batch_size=8"]
QUICK_TCN = ["model.channels=8", "model.levels=1"]


def train_one(model: str, permute: bool, seed: int, steps: int, out: pathlib.Path, quick: bool) -> dict:
    run_dir = out / "runs" / f"{model}_{'permuted' if permute else 'plain'}_s{seed}"
    shutil.rmtree(run_dir, ignore_errors=True)  # a fresh run every time: the command reproduces the table
    every = max(steps // 4, 1)  # validate and checkpoint 4 times; the best validation checkpoint is scored
    overrides = [f"task.permute={str(permute).lower()}", f"seed={seed}", f"data_seed={seed}", f"train.steps={steps}",
                 f"train.eval_every={every}", f"train.checkpoint_every={every}", "train.progress=false",
                 f"run_dir={run_dir}"]
    if quick:
        overrides += QUICK_TCN if model == "tcn" else QUICK_OVERRIDES[:1]
        overrides += QUICK_OVERRIDES[1:]
    cfg = load_config(ROOT / "configs" / "experiments" / f"digits_{model}.yaml", overrides)
    started = time.time()
    summary = Trainer(cfg).run()
    test = evaluate_run(str(run_dir))
    return {"model": model, "permuted": permute, "seed": seed, "steps": steps, "params": summary["param_count"],
            "best_step": test["step"], "test_accuracy": test["metrics"]["accuracy"], "test_ce": test["metrics"]["ce"],
            "test_examples": test["examples"], "chance_accuracy": test["baseline"]["accuracy"],
            "wall_s": round(time.time() - started, 1)}


def write(rows: list[dict], out: pathlib.Path) -> None:
    (out / "results.json").write_text(json.dumps(rows, indent=2) + "\n")
    table = ["| model | params | sequential digits: test accuracy | permuted digits: test accuracy | seeds |",
             "|---|---|---|---|---|"]
    for model in MODELS:
        cells = []
        for permute in (False, True):
            stats = mean_ci([r["test_accuracy"] for r in rows if r["model"] == model and r["permuted"] == permute])
            cells.append("-" if stats["mean"] is None else
                         f"{stats['mean']:.3f}" + (f" ± {stats['ci95']:.3f}" if stats["ci95"] is not None else ""))
        params = next((r["params"] for r in rows if r["model"] == model), "-")
        seeds = len({r["seed"] for r in rows if r["model"] == model})
        table.append(f"| {model.upper()} | {params} | {cells[0]} | {cells[1]} | {seeds} |")
    (out / "results.md").write_text("\n".join(table) + "\n")


def main() -> None:
    parser = study_parser(__doc__.splitlines()[0], HERE, f"a smoke test at a tiny size: {QUICK}")
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    if args.quick:
        vars(args).update(QUICK)
    out = study_out(args, create=True)
    rows = []
    for seed in args.seeds:
        for permute in (False, True):
            for model in MODELS:
                rows.append(train_one(model, permute, seed, args.steps, out, args.quick))
                print(json.dumps(rows[-1]), flush=True)
                write(rows, out)


if __name__ == "__main__":
    main()
