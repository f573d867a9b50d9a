"""The induction-heads claims, checked against the committed results: claim / published / ours / PASS-FAIL.

Gu & Dao (2023, Table 11), trained at length 256 and tested at 2^6 ... 2^20: Mamba 100% at every test length;
attention with absolute positions (MHA-Abs) 100 / 58.6 / 26.6% at 1x / 2x / 4x its training length.  At CPU
scale (``run.py``; trained at L=64; test accuracy of each run's best validation checkpoint, mean over seeds):

1. Mamba generalises: its mean >= ``SOLVED`` at every tested length (one claim per length);
2. attention with absolute (sinusoidal) positions learns the task: its mean >= ``LEARNED`` at the training length;
3. and fails to extrapolate: its mean at 4x the training length at most ``FALLS`` times its mean at 1x
   (the paper's 26.6 / 100).

Every other model (rotary attention, S4D, the LSTM, the linear recurrences) and the Transformer at 2x are
reported without a claim, at the training length and at the longest tested length.

Usage:  python experiments/induction_heads/check.py [--out FOLDER] [--quick]

Reads ``<out>/results.json`` (default: this folder).  Exits 1 when a claim fails, except with ``--quick``
(the smoke test's 4-step models are not expected to hold the claims; it checks that the pipeline runs).
"""

from __future__ import annotations

import pathlib
import sys

from seqjax.experiment.report import mean_ci
from seqjax.experiment.study import Claim, check_main, ci_text

HERE = pathlib.Path(__file__).resolve().parent
SOLVED = 0.99  # claim 1: Mamba's mean test accuracy at each length (the paper: 100%)
LEARNED = 0.95  # claim 2: the absolute-position Transformer's mean at the training length (the paper: 100%)
FALLS = 0.5  # claim 3: its mean at 4x over its mean at 1x (the paper: 26.6 / 100)


def claims(rows: list[dict]) -> list[Claim]:
    """Claims 1-3 of the module docstring, then the reported rows."""
    train = rows[0]["train_length"]
    lengths = sorted(int(n) for n in rows[0]["test_accuracy_by_length"])

    def stats(model: str, length: int) -> dict:
        return mean_ci([r["test_accuracy_by_length"][str(length)] for r in rows if r["model"] == model])

    out = [Claim(f"Mamba >= {SOLVED} at L={n} ({n // train}x)", "100", ci_text(stats("mamba", n)),
                 stats("mamba", n)["mean"] >= SOLVED) for n in lengths]
    one, four = stats("transformer", train), (stats("transformer", 4 * train) if 4 * train in lengths else None)
    out.append(Claim(f"Transformer (absolute) >= {LEARNED} at L={train} (1x)", "100", ci_text(one),
                     one["mean"] >= LEARNED))
    if four is not None:
        out.append(Claim(f"Transformer (absolute) at 4x <= {FALLS} x its 1x", "26.6 vs 100",
                         f"{ci_text(four)} vs {one['mean']:.3f}", four["mean"] <= FALLS * one["mean"]))
    if 2 * train in lengths:
        out.append(Claim("Transformer (absolute) at 2x: reported only", "58.6", ci_text(stats("transformer", 2 * train)),
                         None))
    for model in dict.fromkeys(r["model"] for r in rows):
        if model not in ("mamba", "transformer"):
            out.append(Claim(f"{model} at 1x / {lengths[-1] // train}x: reported only", "-",
                             f"{ci_text(stats(model, train))} / {ci_text(stats(model, lengths[-1]))}", None))
    return out


if __name__ == "__main__":
    sys.exit(check_main(__doc__.splitlines()[0], HERE, claims))
