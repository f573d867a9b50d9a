"""Published claims against this study's committed measurements (``results.json`` of ``run.py``): PASS / FAIL.

Usage:  python experiments/vanishing_gradients/check.py [--out experiments/vanishing_gradients] [--quick]

Reads ``results.json`` from ``--out`` (default: here; with ``--quick`` ``runs/quick/vanishing_gradients``, where
``run.py --quick`` writes).  Exit code 1 if a claim fails, except with ``--quick``, whose tiny sizes decide nothing.
"""

from __future__ import annotations

import pathlib

import numpy as np

from seqjax.experiment.study import check_main

import run  # this folder's run.py: python puts the script's folder on sys.path


def horizon(g: np.ndarray) -> int | None:
    """The memory horizon of a signal indexed by time (``run.py``'s definition)."""
    return run.horizon(run.relative(g))


def claims(raw: dict) -> list[tuple[str, str, str, bool]]:
    """``(claim, published, ours, passed)`` per claim."""
    init = {k: np.asarray(v) for k, v in raw["init_float64"].items()}
    rnn = {float(k.split("=")[1]): v[::-1] / v[-1] for k, v in init.items() if "||W_h||" in k}
    d = np.arange(len(next(iter(rnn.values()))))
    bound_ok = all((r <= s ** d * (1 + 1e-6)).all() for s, r in rnn.items())
    small = {s: r[-1] for s, r in rnn.items() if s < 1}
    explode = {s: float(r.max()) for s, r in rnn.items()}
    h_rnn, h_lstm = horizon(init["rnn ||W_h||=1.0"]), horizon(init["lstm (default init)"])
    trained = {k: horizon(np.asarray(v)) for k, v in raw["trained"].items()}
    clip = {k: np.asarray(v, dtype=float) for k, v in raw["clipping_losses"].items()}
    off, on = (clip[k] for k in clip)
    diverged_off = int((~np.isfinite(off).all(axis=1)).sum())
    diverged_on = int((~np.isfinite(on).all(axis=1)).sum())
    return [
        ("‖dh_T/dh_t‖ ≤ ‖W_h‖₂^(T-t) (tanh RNN)", "Pascanu et al. 2013, bound", f"holds at every distance "
         f"for s in {sorted(rnn)}: {bound_ok}", bound_ok),
        ("‖W_h‖₂ < 1 is sufficient for vanishing", "Pascanu et al. 2013", ", ".join(
            f"s={s}: {v:.1e} at d={d[-1]}" for s, v in small.items()), all(v < 1e-3 for v in small.values())),
        ("‖W_h‖₂ > 1 is necessary, not sufficient, for explosion", "Pascanu et al. 2013",
         "largest ratio to distance 0: " + ", ".join(f"s={s}: {v:.2g}" for s, v in explode.items()),
         all(v <= 1 for s, v in explode.items() if s <= 1) and any(v > 1 for s, v in explode.items() if s > 1)
         and any(v <= 1 for s, v in explode.items() if s > 1)),
        ("a vanilla RNN's signal lasts 10-20 steps", "Bengio et al. 1994; DL book 10.7",
         f"horizon at s=1: {h_rnn} at init, {trained['rnn trained']} trained",
         all(h is not None and 10 <= h <= 20 for h in (h_rnn, trained["rnn trained"]))),
        ("the LSTM's cell path keeps the signal longer", "Hochreiter & Schmidhuber 1997",
         f"horizon: LSTM {h_lstm} vs RNN {h_rnn} at init; trained LSTM {trained['lstm trained']} vs RNN "
         f"{trained['rnn trained']}", h_lstm is not None and h_rnn is not None and h_lstm > h_rnn
         and (trained["lstm trained"] is None or trained["lstm trained"] > (trained["rnn trained"] or 0))),
        ("norm clipping prevents divergence when gradients explode", "Pascanu et al. 2013",
         f"non-finite runs: {diverged_off}/{len(off)} without, {diverged_on}/{len(on)} with clipping",
         diverged_off > 0 and diverged_on == 0),
    ]


if __name__ == "__main__":
    raise SystemExit(check_main(__doc__.splitlines()[0], pathlib.Path(__file__).resolve().parent, claims))
