"""Optuna (TPE + successive-halving or Hyperband pruning) against the full grid over the same space, on the adding problem.

The grid ``configs/sweeps/adding_lstm_grid.yaml`` (an LSTM on adding T=50, 6 learning rates x 3 widths,
600 steps each) and each search (``--search FILE ...``; default ``configs/sweeps/search_adding_halving.yaml``
and ``configs/sweeps/search_adding_hyperband.yaml``: TPE over the same 18 points, successive-halving or
Hyperband pruning from step 200; ``search_adding_hyperband_box.yaml``: the same over the box the grid spans)
are run in this process, each into its own folder.
Each side's *budget* is the training steps it spent (a pruned trial counts the steps it ran), and its
*result* the best validation MSE of any of its trials.  The claim (issue 14): the search reaches a
validation MSE within 10% of the grid's best while spending at most a third of the grid's steps.

Run: ``python experiments/benchmarks/optuna_vs_grid.py`` (``--quick``: two points of the space, two trials
and a few steps, to check it runs; ``--out DIR``, default ``runs/benchmarks/optuna_vs_grid``; results in
``<out>/results.json``, one entry per search; every trial's validation curve in ``<out>/trials.json``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path
from typing import Callable

from omegaconf import DictConfig, OmegaConf

from seqjax.experiment.optuna_search import run_search
from seqjax.experiment.sweep import run_sweep
from seqjax.experiment.writers import read_rows

ROOT = Path(__file__).resolve().parents[2]
GRID = ROOT / "configs" / "sweeps" / "adding_lstm_grid.yaml"
SEARCHES = [ROOT / "configs" / "sweeps" / f"search_adding_{pruner}.yaml" for pruner in ("halving", "hyperband")]
QUICK = ["train.steps=6", "train.eval_every=2", "train.checkpoint_every=6", "train.eval_examples=32",
         "train.test_examples=32"]


def spent(runs: list[dict]) -> tuple[int, float]:
    """(training steps run, best validation MSE) over the runs of :func:`curves`."""
    return sum(r["steps"] for r in runs), min(r["best_val_mse"] for r in runs if r["best_val_mse"] is not None)


def curves(run_dirs: list[Path], axes: list[str]) -> list[dict]:
    """Each run's swept values, steps run, best validation MSE, pruning step and validation curve."""
    out = []
    for run_dir in run_dirs:
        cfg, rows = OmegaConf.load(run_dir / "config.yaml"), read_rows(run_dir)
        pruned = run_dir / "pruned.json"
        out.append({"run": run_dir.name, **{k: OmegaConf.select(cfg, k) for k in axes},
                     "steps": max((r["step"] for r in rows if r["split"] == "train"), default=0),
                     "best_val_mse": min((r["mse"] for r in rows if r["split"] == "val"), default=None),
                     "pruned_at_step": json.loads(pruned.read_text())["pruned_at_step"] if pruned.exists() else None,
                     "val_mse_curve": [[r["step"], r["mse"]] for r in rows if r["split"] == "val"]})
    return out


def same_space(grid: Path, search: Path) -> None:
    """The search samples the grid's space: each axis either the grid's points themselves (``choice``) or the
    range they span (``loguniform``, ``uniform``, ``int`` from the grid's lowest to its highest value)."""
    axes = OmegaConf.to_container(OmegaConf.load(grid).grid)
    space = OmegaConf.to_container(OmegaConf.load(search).search.space)
    assert set(axes) == set(space), (axes, space)
    for key, points in axes.items():
        (name, args), = space[key].items()
        assert args == points if name == "choice" else args == [min(points), max(points)], (key, points, space[key])


def copied(path: Path, folder: Path, edit: Callable[[DictConfig], None]) -> Path:
    """The sweep file ``path`` after ``edit``, under the same file name in ``folder`` (the study is named by the
    file's stem, and Optuna's Hyperband assigns trials to brackets by a hash of that name), its experiment's
    path made absolute."""
    spec = OmegaConf.load(path)
    spec.experiment = str((path.parent / spec.experiment).resolve())
    edit(spec)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / path.name).write_text(OmegaConf.to_yaml(spec))
    return folder / path.name


def shrink(spec: DictConfig) -> None:
    """The first two learning rates and the first width of the space (for a range: the range they span; one
    point, a choice of it), with two trials."""
    keep = {"optim.lr": 2, "model.hidden_size": 1}
    if "grid" in spec:
        spec.grid = {k: list(v)[: keep[k]] for k, v in spec.grid.items()}
        return
    grid = OmegaConf.load(GRID).grid
    for key, dist in spec.search.space.items():
        (name, args), = dist.items()
        points = list(grid[key])[: keep[key]]
        ranged = name != "choice" and len(points) > 1  # one point: a range would be empty
        spec.search.space[key] = {name: [min(points), max(points)]} if ranged else {"choice": points}
    spec.search.n_trials = 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few steps per trial, to check the script runs")
    parser.add_argument("--out", type=Path, default=Path("runs/benchmarks/optuna_vs_grid"))
    parser.add_argument("--search", type=Path, nargs="+", default=SEARCHES, help="the search sweep files")
    parser.add_argument("--seeds", type=int, default=5, help="sampler seeds per search (0, 1, ...; --quick: 1)")
    args = parser.parse_args()
    for path in args.search:
        same_space(GRID, path)
    shutil.rmtree(args.out, ignore_errors=True)
    args.out.mkdir(parents=True)
    grid, searches, seeds = GRID, args.search, range(args.seeds)
    if args.quick:
        grid, seeds = copied(GRID, args.out, shrink), range(1)
        searches = [copied(path, args.out, shrink) for path in args.search]
    overrides = QUICK if args.quick else []

    start = time.perf_counter()
    failed = run_sweep(grid, quiet=True, overrides=overrides, out=args.out / "grid")
    grid_s = time.perf_counter() - start
    assert not failed, failed
    axes = list(OmegaConf.load(GRID).grid)
    grid_runs = curves(sorted(p.parent for p in (args.out / "grid").glob("*/metrics.jsonl")), axes)
    grid_steps, grid_best = spent(grid_runs)
    result = {"grid": {"file": str(GRID.relative_to(ROOT)), "trials": len(grid_runs), "steps": grid_steps,
                       "best_val_mse": grid_best, "wall_s": round(grid_s, 1)}, "searches": []}
    trials_json = {"grid": grid_runs}
    print(f"grid:   {len(grid_runs)} trials, {grid_steps} steps, best val mse {grid_best:.4g} ({grid_s:.0f} s)")

    for path, search_file in zip(args.search, searches):
        for seed in seeds:
            folder = args.out / path.stem / f"seed{seed}"
            start = time.perf_counter()
            seeded = copied(search_file, folder, lambda spec: setattr(spec, "random_seed", seed))
            search = run_search(seeded, quiet=True, overrides=overrides, out=folder / "trials")
            search_s = time.perf_counter() - start
            trials = curves(sorted(search.out.glob("trial-*")), axes)
            steps, best = spent(trials)
            pruned = sum(t["pruned_at_step"] is not None for t in trials)
            side = {"file": str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path),
                    "pruner": OmegaConf.load(path).search.pruner, "random_seed": seed, "trials": len(trials),
                    "pruned": pruned, "steps": steps, "best_val_mse": best, "wall_s": round(search_s, 1),
                    "budget_ratio": steps / grid_steps, "mse_ratio": best / grid_best}
            side["pass"] = side["budget_ratio"] <= 1 / 3 and side["mse_ratio"] <= 1.1
            result["searches"].append(side)
            trials_json[f"{path.stem} seed {seed}"] = trials
            print(f"{path.stem} (seed {seed}): {len(trials)} trials ({pruned} pruned), {steps} steps, best val mse "
                  f"{best:.4g} ({search_s:.0f} s); budget ratio {side['budget_ratio']:.3f} (claim <= 0.333), mse "
                  f"ratio {side['mse_ratio']:.3f} (claim <= 1.1): {'PASS' if side['pass'] else 'FAIL'}", flush=True)
        runs = [s for s in result["searches"] if s["file"] == side["file"]]
        print(f"{path.stem}: {sum(s['pass'] for s in runs)} of {len(runs)} seeds pass", flush=True)
    (args.out / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "trials.json").write_text(json.dumps(trials_json) + "\n")


if __name__ == "__main__":
    main()
