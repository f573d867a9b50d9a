"""The adding-problem claims, checked against the committed results: claim / published / ours / PASS-FAIL.

Test MSE of each run's best validation checkpoint, mean over seeds, against the baseline 1/6 (predicting 1):

TCN-paper variant (both markers anywhere; T = 10 ... 200):

1. the vanilla RNN learns short dependencies (folklore, Bengio et al. 1994: 10-20 steps): its mean below
   ``SOLVED`` x baseline at T <= 25;
2. and not long ones: its mean above ``NEAR`` x baseline at T >= 100;
3. the gated cells learn every length here (Hochreiter & Schmidhuber 1997 solve T = 100 and more; Bai et al.
   2018's GRU solves T = 600): GRU's and LSTM's means below ``SOLVED`` x baseline at every T.

uRNN variant (one marker in each half; Arjovsky et al. 2016, Fig. 2, read qualitatively, T = 100 ... 750):

4. the tanh RNN does not beat the baseline at any T: its mean above ``NEAR`` x baseline;
5. the LSTM does, at every T: its mean below ``BEATS`` x baseline.

The GRU of the uRNN variant (not in the paper) is reported, not checked.

Usage:  python experiments/adding_length/check.py [--out FOLDER] [--quick]

Reads ``<out>/results.json`` (default: this folder).  Exits 1 when a claim fails, except with ``--quick``
(the smoke test's 6-step models are not expected to hold the claims; it checks that the pipeline runs).
"""

from __future__ import annotations

import pathlib
import sys
from typing import Callable

from seqjax.experiment.study import Claim, cell_stats, check_main

HERE = pathlib.Path(__file__).resolve().parent
SOLVED = 0.1  # "learns it": mean test MSE below this fraction of the baseline
NEAR = 0.75  # "stays at the baseline": above this fraction
BEATS = 0.5  # "beats the baseline": below this fraction
SHORT, LONG = 25, 100  # claims 1, 2: the folklore's short and long dependencies


def claims(rows: list[dict]) -> list[Claim]:
    """Claims 1-5 of the module docstring, over the lengths each variant holds (a variant absent: none)."""
    stats = {cell: s["mean"] for cell, s in cell_stats(rows, ("variant", "model", "T"), "test_mse").items()}
    baseline = rows[0]["chance_mse"]

    def check(claim: str, published: str, variant: str, models: tuple[str, ...], lengths: set[int],
              holds: Callable[[float], bool] | None) -> list[Claim]:
        """The claim that ``holds(mean / baseline)`` for each model at each of ``lengths`` (None: reported)."""
        lengths = sorted(T for T in lengths if all((variant, m, T) in stats for m in models))
        if not lengths:
            return []
        ours = "; ".join(f"{m} " + " / ".join(f"{stats[variant, m, T]:.2g}" for T in lengths) for m in models)
        return [Claim(f"{claim}, T = {' / '.join(map(str, lengths))}", published, ours,
                      all(holds(stats[variant, m, T] / baseline) for m in models for T in lengths) if holds else None)]

    lengths = {variant: {T for v, _, T in stats if v == variant} for variant, *_ in stats}
    tcn, urnn = lengths.get("tcn", set()), lengths.get("urnn", set())
    return [
        *check(f"TCN variant: RNN learns T <= {SHORT} (< {SOLVED} x baseline)", "10-20 steps", "tcn", ("rnn",),
               {T for T in tcn if T <= SHORT}, lambda r: r < SOLVED),
        *check(f"TCN variant: RNN at the baseline for T >= {LONG} (> {NEAR} x baseline)", "fails beyond 10-20",
               "tcn", ("rnn",), {T for T in tcn if T >= LONG}, lambda r: r > NEAR),
        *check(f"TCN variant: GRU and LSTM learn every T (< {SOLVED} x baseline)", "solved", "tcn", ("gru", "lstm"),
               tcn, lambda r: r < SOLVED),
        *check(f"uRNN variant: tanh RNN never beats the baseline (> {NEAR} x baseline)", "at the baseline", "urnn",
               ("rnn",), urnn, lambda r: r > NEAR),
        *check(f"uRNN variant: LSTM beats the baseline at every T (< {BEATS} x baseline)", "beats it", "urnn",
               ("lstm",), urnn, lambda r: r < BEATS),
        *check("uRNN variant: GRU (not in the paper)", "-", "urnn", ("gru",), urnn, None),
    ]


if __name__ == "__main__":
    sys.exit(check_main(__doc__.splitlines()[0], HERE, claims))
