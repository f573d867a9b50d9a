"""The encoder–decoder bottleneck: sequence reversal over increasing source lengths, with and without attention.

Without attention the decoder sees the source only through the fixed-size context ``c = h_T``
(Sutskever et al. 2014), so accuracy falls as the source grows; additive attention (Bahdanau et
al. 2015) reads every encoder output at every step and holds up.  Both models are identical
otherwise: bidirectional LSTM encoder (64 per direction), LSTM decoder (128), embeddings 32,
Adam 3e-3, batch 64, the same number of steps; each trains through the standard trainer
(``configs/experiments/seq2seq_reverse{,_attention}.yaml``) and is scored with ``seqjax eval``
(greedy decoding, best validation checkpoint, fixed test set).

Usage:  python experiments/seq2seq_bottleneck/run.py [--lengths 5 10 20 40] [--steps 1500] [--quick]

Run directories go to ``<out>/runs/``.  ``--quick`` is a smoke test of the same pipeline (it overrides
``--lengths``, ``--steps`` and ``--batch``): both models at source length 4, widths 8-16, 2 steps on batches
of 4, scored on 8 examples; results under ``--out`` (default ``runs/quick/seq2seq_bottleneck``).
"""

from __future__ import annotations

import json
import pathlib
import shutil
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from seqjax.experiment.config import load_config  # noqa: E402
from seqjax.experiment.evaluate import evaluate_run  # noqa: E402
from seqjax.experiment.loop import Trainer  # noqa: E402
from seqjax.experiment.study import study_out, study_parser  # noqa: E402

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent
CONFIGS = {"none": "seq2seq_reverse.yaml", "bahdanau": "seq2seq_reverse_attention.yaml"}
MODEL = ["model.embed_size=32", "model.encoder_cell=lstm", "model.encoder_hidden_size=64",
         "model.encoder_bidirectional=true", "model.decoder_cell=lstm", "model.decoder_hidden_size=128",
         "model.attention_size=64"]
EXAMPLES = ["train.eval_examples=256", "train.test_examples=512"]
QUICK = dict(lengths=[4], steps=2, batch=4)  # --quick, with these overrides after MODEL and EXAMPLES:
QUICK_OVERRIDES = ["model.embed_size=8", "model.encoder_hidden_size=8", "model.decoder_hidden_size=16",
                   "model.attention_size=8", "train.eval_examples=8", "train.test_examples=8",
                   "train.eval_batch_size=8"]


def train_one(length: int, attention: str, steps: int, batch: int, out: pathlib.Path = HERE,
              extra: list[str] = ()) -> dict:
    run_dir = out / "runs" / f"{attention}_L{length}"
    shutil.rmtree(run_dir, ignore_errors=True)  # a fresh run every time: the command reproduces the table
    every = max(steps // 4, 1)
    overrides = [*MODEL, f"task.min_len={length}", f"task.max_len={length}", "task.num_symbols=10",
                 f"train.steps={steps}", f"train.batch_size={batch}", f"train.eval_every={every}",
                 f"train.checkpoint_every={every}", *EXAMPLES, "train.progress=false", *extra, f"run_dir={run_dir}"]
    cfg = load_config(ROOT / "configs" / "experiments" / CONFIGS[attention], overrides)
    started = time.time()
    summary = Trainer(cfg).run()
    test = evaluate_run(str(run_dir))["metrics"]
    return {"length": length, "attention": attention, "steps": steps, "params": summary["param_count"],
            "wall_s": round(time.time() - started, 1), **{k: test[k] for k in ("exact_match", "token_accuracy")}}


def write(rows: list[dict], out: pathlib.Path) -> None:
    by = {(r["length"], r["attention"]): r for r in rows}
    lengths = sorted({r["length"] for r in rows})
    table = ["| source length | no attention: exact match | no attention: token acc. | attention: exact match "
             "| attention: token acc. |", "|---|---|---|---|---|"]
    for L in lengths:
        cells = []
        for att in ("none", "bahdanau"):
            r = by.get((L, att))
            cells += [f"{r['exact_match']:.3f}", f"{r['token_accuracy']:.3f}"] if r else ["-", "-"]
        table.append(f"| {L} | " + " | ".join(cells) + " |")
    (out / "results.md").write_text("\n".join(table) + "\n")
    (out / "results.json").write_text(json.dumps(rows, indent=2) + "\n")
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.8))
    for ax, metric in zip(axes, ("token_accuracy", "exact_match")):
        for att, label in (("none", "no attention (c = h_T)"), ("bahdanau", "additive attention")):
            pts = [(L, by[(L, att)][metric]) for L in lengths if (L, att) in by]
            ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=label)
        ax.set_xscale("log", base=2)
        ax.set_xticks(lengths, [str(L) for L in lengths])
        ax.set_xlabel("source length")
        ax.set_ylabel(metric.replace("_", " ") + " (test, greedy)")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.suptitle("Reversal: the fixed-size context degrades with length; attention holds up")
    fig.tight_layout()
    fig.savefig(out / "accuracy_vs_length.png", dpi=120)


def main() -> None:
    parser = study_parser(__doc__.splitlines()[0], HERE, f"a smoke test at a tiny size: {QUICK}")
    parser.add_argument("--lengths", type=int, nargs="+", default=[5, 10, 20, 40])
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()
    if args.quick:
        vars(args).update(QUICK)
    out = study_out(args, create=True)
    extra = QUICK_OVERRIDES if args.quick else []
    rows = []
    for length in args.lengths:
        for attention in ("none", "bahdanau"):
            rows.append(train_one(length, attention, args.steps, args.batch, out, extra))
            print(json.dumps(rows[-1]), flush=True)
            write(rows, out)


if __name__ == "__main__":
    main()
