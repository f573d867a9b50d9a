"""The ListOps claims, checked against the committed results: claim / published / ours / PASS-FAIL.

Long Range Arena (Tay et al. 2021, Table 1; S4D: Gu et al. 2022) at 500-2000 tokens, test accuracy: the
Transformer 36.37%, S4D about 60.5%.  At CPU scale (``run.py``: reduced lengths, far shorter training; test
accuracy of each run's best validation checkpoint, mean over seeds):

1. the time-invariant SSM beats attention: S4D's mean above the Transformer's, their 95% intervals disjoint
   (``seqjax.experiment.study.ci_interval``);
2. S4D reaches LRA's level: its mean at least ``NEAR`` x 60.5%.

The LSTM and Mamba are reported beside them, with every model's margin over the label prior (what a
memoryless model scores), not checked.

Usage:  python experiments/listops/check.py [--out FOLDER] [--quick]

Reads ``<out>/results.json`` (default: this folder).  Exits 1 when a claim fails, except with ``--quick``
(the smoke test's 6-step models are not expected to hold the claims; it checks that the pipeline runs).
"""

from __future__ import annotations

import pathlib
import sys

from seqjax.experiment.study import Claim, cell_stats, check_main, ci_interval, ci_text

HERE = pathlib.Path(__file__).resolve().parent
PUBLISHED = {"transformer": 0.3637, "s4d": 0.605}  # LRA ListOps test accuracy at 500-2000 tokens
NEAR = 0.9  # claim 2: S4D's mean at least this fraction of the published 60.5%


def claims(rows: list[dict]) -> list[Claim]:
    """Claims 1 and 2 of the module docstring, then the other models and the label prior (reported)."""
    stats = {model: s for (model,), s in cell_stats(rows, ("model",)).items()}
    s4d, attention = stats["s4d"], stats["transformer"]
    published = f"{PUBLISHED['s4d']:.3f} vs {PUBLISHED['transformer']:.3f}"
    out = [Claim("S4D above the Transformer, 95% intervals disjoint", published,
                 f"{ci_text(s4d)} vs {ci_text(attention)}", ci_interval(attention)[1] < ci_interval(s4d)[0]),
           Claim(f"S4D near LRA's level: mean >= {NEAR} x {PUBLISHED['s4d']}", f"{PUBLISHED['s4d']:.3f}",
                 ci_text(s4d), s4d["mean"] >= NEAR * PUBLISHED["s4d"])]
    prior = rows[0]["chance_accuracy"]
    out += [Claim(f"{model}: test accuracy (label prior {prior:.3f})", f"{PUBLISHED[model]:.3f}"
                  if model in PUBLISHED else "-", ci_text(s), None) for model, s in stats.items()]
    return out


if __name__ == "__main__":
    sys.exit(check_main(__doc__.splitlines()[0], HERE, claims))
