"""Induction heads: train each family at one length, test at longer ones (Gu & Dao 2023, Table 11).

Runs ``seqjax sweep configs/sweeps/induction.yaml`` (one training run per family, trained at L=64), then
scores each run's best checkpoint on fixed test sets of increasing length with
``seqjax eval RUN_DIR task.seq_len=L`` and writes ``results.md`` and ``accuracy_vs_length.png`` here.

Usage:  python experiments/induction_heads/run.py [--lengths 64 128 256 512 1024]
"""

from __future__ import annotations

import argparse
import pathlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from seqjax.sweep import load_sweep, run_sweep  # noqa: E402
from seqjax.train.evaluate import evaluate_run  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[2]
SWEEP = ROOT / "configs" / "sweeps" / "induction.yaml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[64, 128, 256, 512, 1024])
    parser.add_argument("--out", default=str(pathlib.Path(__file__).parent))
    args = parser.parse_args()
    failed = run_sweep(SWEEP)
    if failed:
        raise SystemExit(f"training failed for {[t.name for t in failed]}")
    spec, _ = load_sweep(SWEEP)
    accuracy: dict[str, dict[int, float]] = {}
    for run in sorted(pathlib.Path(spec.out).glob("*/summary.json")):
        family = run.parent.name.split(",")[0].removeprefix("induction_")
        accuracy[family] = {
            length: evaluate_run(str(run.parent), overrides=[f"task.seq_len={length}"])["metrics"]["accuracy"]
            for length in args.lengths
        }
        print(family, accuracy[family], flush=True)
    out = pathlib.Path(args.out)
    lines = ["| model | " + " | ".join(f"L={n}" for n in args.lengths) + " |", "|---|" + "---|" * len(args.lengths)]
    lines += [f"| {f} | " + " | ".join(f"{acc[n]:.3f}" for n in args.lengths) + " |" for f, acc in accuracy.items()]
    (out / "results.md").write_text("Test accuracy (trained at L=64; chance 1/15 = 0.067)\n\n" + "\n".join(lines) + "\n")
    fig, ax = plt.subplots(figsize=(6, 4))
    for family, acc in accuracy.items():
        ax.semilogx(args.lengths, [acc[n] for n in args.lengths], marker="o", label=family, base=2)
    ax.axvline(64, color="gray", ls=":", label="training length")
    ax.set_xlabel("test sequence length")
    ax.set_ylabel("accuracy")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "accuracy_vs_length.png", dpi=120)
    print((out / "results.md").read_text())


if __name__ == "__main__":
    main()
