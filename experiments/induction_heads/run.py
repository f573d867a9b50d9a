"""Induction heads: train each family at one length, test at longer ones (Gu & Dao 2023, Table 11).

Runs ``seqjax sweep configs/sweeps/induction.yaml`` (one training run per family, trained at L=64), then
scores each run's best checkpoint on fixed test sets of increasing length with
``seqjax eval RUN_DIR task.seq_len=L`` and writes ``results.md`` and ``accuracy_vs_length.png`` here.

Usage:  python experiments/induction_heads/run.py [--lengths 64 128 256 512 1024] [--quick]

``--quick`` is a smoke test of the same pipeline (it overrides ``--lengths``): every trial trained for 2 steps
at L=16 on tiny batches, tested at L=32; its runs and results go under ``--out`` (default
``runs/quick/induction_heads``).
"""

from __future__ import annotations

import pathlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from seqjax.experiment.sweep import load_sweep, run_sweep  # noqa: E402
from seqjax.experiment.evaluate import evaluate_run  # noqa: E402
from seqjax.experiment.study import study_out, study_parser  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[2]
SWEEP = ROOT / "configs" / "sweeps" / "induction.yaml"
TRAIN_LENGTH = 64  # task.seq_len of the sweep's experiments
QUICK_TRAIN_LENGTH, QUICK_LENGTHS = 16, [32]  # --quick: trained at 16, tested at 32
QUICK_OVERRIDES = [f"task.seq_len={QUICK_TRAIN_LENGTH}", "train.steps=2", "train.eval_every=2",
                   "train.checkpoint_every=2", "train.batch_size=4", "train.eval_examples=8",
                   "train.test_examples=8", "train.eval_batch_size=8", "optim.warmup_steps=1"]


def main() -> None:
    parser = study_parser(__doc__.splitlines()[0], pathlib.Path(__file__).parent,
                          "a smoke test at a tiny size (overrides --lengths)")
    parser.add_argument("--lengths", type=int, nargs="+", default=[64, 128, 256, 512, 1024])
    args = parser.parse_args()
    train_length = TRAIN_LENGTH
    if args.quick:
        args.lengths, train_length = QUICK_LENGTHS, QUICK_TRAIN_LENGTH
    out = study_out(args, create=True)
    sweep_out = out / "runs" if args.quick else None  # the sweep file's out otherwise
    overrides = QUICK_OVERRIDES if args.quick else []
    failed = run_sweep(SWEEP, overrides=overrides, out=sweep_out)
    if failed:
        raise SystemExit(f"training failed for {[t.name for t in failed]}")
    spec, _ = load_sweep(SWEEP, sweep_out)
    accuracy: dict[str, dict[int, float]] = {}
    for run in sorted(pathlib.Path(spec.out).glob("*/summary.json")):
        family = run.parent.name.split(",")[0].removeprefix("induction_")
        accuracy[family] = {
            length: evaluate_run(str(run.parent), overrides=[f"task.seq_len={length}"])["metrics"]["accuracy"]
            for length in args.lengths
        }
        print(family, accuracy[family], flush=True)
    lines = ["| model | " + " | ".join(f"L={n}" for n in args.lengths) + " |", "|---|" + "---|" * len(args.lengths)]
    lines += [f"| {f} | " + " | ".join(f"{acc[n]:.3f}" for n in args.lengths) + " |" for f, acc in accuracy.items()]
    (out / "results.md").write_text(f"Test accuracy (trained at L={train_length}; chance 1/15 = 0.067)\n\n"
                                    + "\n".join(lines) + "\n")
    fig, ax = plt.subplots(figsize=(6, 4))
    for family, acc in accuracy.items():
        ax.semilogx(args.lengths, [acc[n] for n in args.lengths], marker="o", label=family, base=2)
    ax.axvline(train_length, color="gray", ls=":", label="training length")
    ax.set_xlabel("test sequence length")
    ax.set_ylabel("accuracy")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "accuracy_vs_length.png", dpi=120)
    print((out / "results.md").read_text())


if __name__ == "__main__":
    main()
