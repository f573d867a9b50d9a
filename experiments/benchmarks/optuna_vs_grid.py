"""Optuna (TPE + successive-halving pruning) against the full grid over the same space, on the adding problem.

The grid ``configs/sweeps/adding_lstm_grid.yaml`` (an LSTM on adding T=50, 6 learning rates x 3 widths,
600 steps each) and the search ``configs/sweeps/search_adding_halving.yaml`` (TPE over the same 18
points, successive-halving pruning from step 200) are run in this process, each into its own folder.
Each side's *budget* is the training steps it spent (a pruned trial counts the steps it ran), and its
*result* the best validation MSE of any of its trials.  The claim (issue 14): the search reaches a
validation MSE within 10% of the grid's best while spending at most a third of the grid's steps.

Run: ``python experiments/benchmarks/optuna_vs_grid.py`` (``--quick``: two points of the space, two trials
and a few steps, to check it runs; ``--out DIR``, default ``runs/benchmarks/optuna_vs_grid``; results in
``<out>/results.json``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

from omegaconf import OmegaConf

from seqjax.experiment.optuna_search import run_search
from seqjax.experiment.sweep import run_sweep
from seqjax.experiment.writers import read_rows

ROOT = Path(__file__).resolve().parents[2]
GRID = ROOT / "configs" / "sweeps" / "adding_lstm_grid.yaml"
SEARCH = ROOT / "configs" / "sweeps" / "search_adding_halving.yaml"
QUICK = ["train.steps=6", "train.eval_every=2", "train.checkpoint_every=6", "train.eval_examples=32",
         "train.test_examples=32"]


def spent(run_dirs: list[Path]) -> tuple[int, float]:
    """(training steps run, best validation MSE) over the run directories."""
    steps, best = 0, float("inf")
    for run_dir in run_dirs:
        rows = read_rows(run_dir)
        steps += max((r["step"] for r in rows if r["split"] == "train"), default=0)
        best = min([best, *(r["mse"] for r in rows if r["split"] == "val")])
    return steps, best


def same_space(grid: Path, search: Path) -> None:
    """The search samples exactly the grid's points: the comparison is over one space."""
    axes = OmegaConf.to_container(OmegaConf.load(grid).grid)
    space = OmegaConf.to_container(OmegaConf.load(search).search.space)
    assert axes == {k: d["choice"] for k, d in space.items()}, (axes, space)


def shrunk(grid: Path, search: Path, out: Path) -> tuple[Path, Path]:
    """Copies of the two sweep files over the first two learning rates and the first width, with two trials."""
    files = []
    for path in (grid, search):
        spec = OmegaConf.load(path)
        spec.experiment = str((path.parent / spec.experiment).resolve())
        keep = {"optim.lr": 2, "model.hidden_size": 1}
        if "grid" in spec:
            spec.grid = {k: list(v)[: keep[k]] for k, v in spec.grid.items()}
        else:
            spec.search.space = {k: {"choice": list(d.choice)[: keep[k]]} for k, d in spec.search.space.items()}
            spec.search.n_trials = 2
        files.append(out / path.name)
        files[-1].write_text(OmegaConf.to_yaml(spec))
    return files[0], files[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few steps per trial, to check the script runs")
    parser.add_argument("--out", type=Path, default=Path("runs/benchmarks/optuna_vs_grid"))
    args = parser.parse_args()
    same_space(GRID, SEARCH)
    shutil.rmtree(args.out, ignore_errors=True)
    args.out.mkdir(parents=True)
    grid, search_file = shrunk(GRID, SEARCH, args.out) if args.quick else (GRID, SEARCH)
    overrides = QUICK if args.quick else []

    start = time.perf_counter()
    failed = run_sweep(grid, quiet=True, overrides=overrides, out=args.out / "grid")
    grid_s = time.perf_counter() - start
    assert not failed, failed
    grid_steps, grid_best = spent(sorted(p.parent for p in (args.out / "grid").glob("*/metrics.jsonl")))

    start = time.perf_counter()
    search = run_search(search_file, quiet=True, overrides=overrides, out=args.out / "search")
    search_s = time.perf_counter() - start
    trials = sorted(search.out.glob("trial-*"))
    search_steps, search_best = spent(trials)
    pruned = sum((t / "pruned.json").exists() for t in trials)

    result = {
        "grid": {"trials": len(list((args.out / "grid").glob("*/metrics.jsonl"))), "steps": grid_steps,
                 "best_val_mse": grid_best, "wall_s": round(grid_s, 1)},
        "search": {"trials": len(trials), "pruned": pruned, "steps": search_steps, "best_val_mse": search_best,
                   "wall_s": round(search_s, 1)},
        "budget_ratio": search_steps / grid_steps,
        "mse_ratio": search_best / grid_best,
    }
    result["pass"] = result["budget_ratio"] <= 1 / 3 and result["mse_ratio"] <= 1.1
    print(f"grid:   {result['grid']['trials']} trials, {grid_steps} steps, best val mse {grid_best:.4g} "
          f"({grid_s:.0f} s)")
    print(f"search: {len(trials)} trials ({pruned} pruned), {search_steps} steps, best val mse {search_best:.4g} "
          f"({search_s:.0f} s)")
    print(f"budget ratio {result['budget_ratio']:.3f} (claim <= 0.333), mse ratio {result['mse_ratio']:.3f} "
          f"(claim <= 1.1): {'PASS' if result['pass'] else 'FAIL'}")
    (args.out / "results.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
