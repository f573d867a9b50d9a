"""Results tables and plots from run directories: ``seqjax report DIR``.

``DIR`` is a sweep's output folder (its ``sweep.yaml`` names the swept keys) or any folder holding run
directories.  Each run contributes its ``summary.json``: the best and final validation value of its
``best_metric``, the task's memoryless baseline, the parameter count and the wall time.  Runs that differ
only in ``seed`` are aggregated as mean ± std (n = number of seeds).  Writes ``results.md``,
``results.csv`` and, when a key was swept, ``results.png`` (metric against the first swept key).
"""

from __future__ import annotations

import csv
import json
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from omegaconf import ListConfig, OmegaConf

from seqjax.errors import UserError, describe

SWEEP_RECORD = "sweep.yaml"


def _runs(root: Path) -> list[Path]:
    return sorted(p.parent for p in root.glob("*/summary.json"))


def _swept_keys(root: Path) -> list[str]:
    """The grid's keys, led by ``name`` when the sweep ran several experiments."""
    record = root / SWEEP_RECORD
    if not record.exists():
        return []
    sweep = OmegaConf.load(record)
    experiments = sweep.get("experiment")
    several = isinstance(experiments, ListConfig) and len(experiments) > 1
    return (["name"] if several else []) + list(sweep.get("grid", {}).keys())


def _read_run(run: Path) -> tuple[dict[str, Any], Any]:
    """A finished run's ``summary.json`` (with its ``best_metric``) and ``config.yaml``; one line if unreadable."""
    try:
        summary, cfg = json.loads((run / "summary.json").read_text()), OmegaConf.load(run / "config.yaml")
        summary["best_metric"]
    except Exception as e:  # json, YAML, a missing file or key: whatever is damaged, say so in one line
        raise UserError(f"{run}: its summary.json or config.yaml cannot be read ({describe(e)}): "
                        "rerun it or move it out of the folder") from None
    return summary, cfg


def collect(root: str | Path) -> tuple[list[str], list[dict[str, Any]]]:
    """One row per run: the swept values, seed, best/final metric, baseline, params, wall time."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"{root} is not a directory: give a sweep output folder or a folder of run directories")
    runs = _runs(root)
    if not runs:
        raise UserError(f"{root} holds no finished runs (no */summary.json): run `seqjax sweep` or `seqjax train` first")
    keys = _swept_keys(root)
    rows = []
    for run in runs:
        summary, cfg = _read_run(run)
        metric = summary["best_metric"]
        rows.append({
            **{k: OmegaConf.select(cfg, k) for k in keys},
            "seed": cfg.get("seed"),
            "metric": metric,
            "best": (summary.get("best") or {}).get(metric),
            "final": ((summary.get("final") or {}).get("val") or {}).get(metric),
            "baseline": summary["baseline"].get(metric),
            "params": summary["param_count"],
            "wall_s": summary["wall_time_s"],
            "run": run.name,
        })
    return keys, rows


def _mean_std(values: list[float]) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.4g}"
    return f"{statistics.mean(values):.4g} ± {statistics.stdev(values):.2g}"


def _sort_key(value: Any) -> tuple:
    """Numbers before text, each in natural order."""
    return (0, value, "") if isinstance(value, (int, float)) else (1, 0, str(value))


def aggregate(keys: list[str], rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Group runs by their swept values; metrics as mean ± std over seeds."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for row in rows:
        groups[tuple(row[k] for k in keys) + (row["metric"],)].append(row)
    table = []
    for _, group in sorted(groups.items(), key=lambda item: [_sort_key(v) for v in item[0]]):
        first = group[0]
        table.append({
            **{k: first[k] for k in keys},
            "n": len(group),
            f"best {first['metric']}": _mean_std([r["best"] for r in group]),
            f"final {first['metric']}": _mean_std([r["final"] for r in group]),
            "baseline": f"{first['baseline']:.4g}" if first["baseline"] is not None else "-",
            "params": first["params"],
            "wall s": _mean_std([r["wall_s"] for r in group]),
        })
    return table


def markdown(table: list[dict[str, Any]]) -> str:
    header = list(table[0])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(row[h]) for h in header) + " |" for row in table]
    return "\n".join(lines) + "\n"


def plot(keys: list[str], rows: list[dict[str, Any]], path: Path) -> None:
    """Best metric against the first swept key, one line per combination of the others (mean ± std)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x_key, others = keys[0], keys[1:]
    lines: dict[tuple, dict[Any, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        if r["best"] is not None:
            lines[tuple(r[k] for k in others)][r[x_key]].append(r["best"])
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, points in lines.items():
        xs = sorted(points)
        means = [statistics.mean(points[x]) for x in xs]
        stds = [statistics.stdev(points[x]) if len(points[x]) > 1 else 0.0 for x in xs]
        name = ", ".join(f"{k}={v}" for k, v in zip(others, label)) or None
        ax.errorbar([str(x) for x in xs], means, yerr=stds, marker="o", capsize=3, label=name)
    values = [r["best"] for r in rows if r["best"] is not None]
    if min(values) > 0 and max(values) / min(values) > 100:
        ax.set_yscale("log")
    baseline = rows[0]["baseline"]
    if baseline is not None:
        ax.axhline(baseline, color="gray", ls="--", label="memoryless baseline")
    ax.set_xlabel(x_key)
    ax.set_ylabel(f"best val {rows[0]['metric']}")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def report(root: str | Path) -> str:
    """Write results.md / results.csv (and results.png when keys were swept) into ``root``; return the table."""
    root = Path(root)
    keys, rows = collect(root)
    table = aggregate(keys, rows)
    text = markdown(table)
    (root / "results.md").write_text(text)
    with open(root / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    if keys:
        plot(keys, rows, root / "results.png")
    return text
