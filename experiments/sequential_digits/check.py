"""The sequential-digits claims, checked against the committed results: claim / published / ours / PASS-FAIL.

Bai et al. (2018, Table 1) on sequential MNIST: TCN 99.0, GRU 96.2, LSTM 87.2, RNN 21.5 (permuted: 97.2, 87.3,
85.7, 25.3).  On the 64-step digits (``run.py``) we check the shape of those results, not their values:

1. the gated models (LSTM, GRU) and the TCN beat the vanilla RNN, plain and permuted (mean test accuracy);
2. every model is well above chance (10 classes): mean test accuracy > 3x the majority-class rate.

Usage:  python experiments/sequential_digits/check.py [--out FOLDER] [--quick]

Reads ``<out>/results.json`` (default: this folder).  Exits 1 when a claim fails, except with ``--quick``
(the smoke test's 2-step models are not expected to hold the claims; it checks that the pipeline runs).
"""

from __future__ import annotations

import pathlib
import sys

from seqjax.experiment.report import mean_ci
from seqjax.experiment.study import check_main

HERE = pathlib.Path(__file__).resolve().parent
PUBLISHED = {  # Bai et al. 2018, Table 1: test accuracy (%) on sequential / permuted MNIST
    (False, "tcn"): 99.0, (False, "gru"): 96.2, (False, "lstm"): 87.2, (False, "rnn"): 21.5,
    (True, "tcn"): 97.2, (True, "gru"): 87.3, (True, "lstm"): 85.7, (True, "rnn"): 25.3,
}


def claims(rows: list[dict]) -> list[tuple[str, str, str, bool]]:
    """``(claim, published, ours, holds)`` for each claim over the result rows."""
    def acc(model: str, permute: bool) -> float:
        return mean_ci([r["test_accuracy"] for r in rows if r["model"] == model and r["permuted"] == permute])["mean"]

    out = []
    for permute in (False, True):
        variant = "permuted" if permute else "sequential"
        rnn = acc("rnn", permute)
        for model in ("lstm", "gru", "tcn"):
            ours = acc(model, permute)
            out.append((f"{variant}: {model.upper()} beats the vanilla RNN",
                        f"{PUBLISHED[(permute, model)]} vs {PUBLISHED[(permute, 'rnn')]} (MNIST)",
                        f"{ours:.3f} vs {rnn:.3f}", ours > rnn))
        chance = max(r["chance_accuracy"] for r in rows)
        for model in ("rnn", "lstm", "gru", "tcn"):
            ours = acc(model, permute)
            out.append((f"{variant}: {model.upper()} well above chance (> 3 x {chance:.3f})",
                        f"{PUBLISHED[(permute, model)]} vs 10 (MNIST)", f"{ours:.3f}", ours > 3 * chance))
    return out


if __name__ == "__main__":
    sys.exit(check_main(__doc__.splitlines()[0], HERE, claims))
