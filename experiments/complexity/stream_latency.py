"""Per-token streaming latency at a late position over an early one, positions interleaved in one run.

For each family (registry-built, width 64, two layers, as ``run.py``) a :class:`seqjax.experiment.session.Session`
is prefilled by chunks to position ``early`` and to position ``late``; then, repeat after repeat, ``tokens``
single steps are timed from each of the two states in turn (the state is not advanced, so each timing stays at
its position) and the median per-token time is taken per position.  A constant-state family must give
``late / early <= 1.2``.  The Transformer is measured twice: with one KV cache of ``late + 1`` positions for
both (a cache preallocated at ``max_len``: every step attends over all of it, masked, so its cost follows
``max_len``, not the position), and with the cache sized to each context (``max_len = position + 1``: the cost
grows with the context, as the complexity study's streaming column measured it).

    python experiments/complexity/stream_latency.py            # writes stream_latency.md beside this file
    python experiments/complexity/stream_latency.py --quick --out /tmp/q
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from seqjax.experiment.session import Session, state_bytes
from seqjax.models.registry import build_backbone, get_backbone
from seqjax.models.sequence_model import PerStepHead, SequenceModel

WIDTH, LAYERS, D_IN = 64, 2, 8
FAMILIES = {
    "rnn": dict(hidden_size=WIDTH, num_layers=LAYERS),
    "lstm": dict(hidden_size=WIDTH, num_layers=LAYERS),
    "gru": dict(hidden_size=WIDTH, num_layers=LAYERS),
    "s4d": dict(d_model=WIDTH, n_layers=LAYERS, state_size=64),
    "mamba": dict(d_model=WIDTH, n_layers=LAYERS),
    "transformer": dict(d_model=WIDTH, n_heads=4, n_layers=LAYERS),
}
CONSTANT = ("rnn", "lstm", "gru", "s4d", "mamba")
PREFILL = 512  # chunk length of the prefill


def _session(name: str, **extra: int) -> Session:
    opts = get_backbone(name).options(**FAMILIES[name], **extra)
    model = SequenceModel(build_backbone(name, opts), PerStepHead(D_IN))
    return Session.create(model, jnp.zeros((1, 4, D_IN)))


def _prefilled(session: Session, position: int):
    """The state after ``position`` tokens."""
    state = session.init_state(1)
    xs = jax.random.normal(jax.random.key(0), (1, position, D_IN))
    for start in range(0, position, PREFILL):
        state, _ = session.chunk(state, xs[:, start:start + PREFILL])
    return jax.block_until_ready(state)


def _per_token_us(runs: list[tuple[Session, object]], tokens: int, repeats: int) -> list[float]:
    """Median per-token time (µs) of ``session.step(state, x)`` for each ``(session, state)``, interleaved."""
    x = jnp.ones((1, D_IN))
    for session, state in runs:  # compile
        jax.block_until_ready(session.step(state, x))
    times: list[list[float]] = [[] for _ in runs]
    for _ in range(repeats):
        for i, (session, state) in enumerate(runs):
            started = time.perf_counter()
            for _ in range(tokens):
                out = session.step(state, x)
            jax.block_until_ready(out)
            times[i].append((time.perf_counter() - started) / tokens * 1e6)
    return [statistics.median(t) for t in times]


def measure(early: int, late: int, tokens: int, repeats: int, families: list[str]) -> list[dict]:
    rows = []
    for name in families:
        if name == "transformer":
            shared = _session(name, max_len=late + 1)
            variants = [("transformer (one cache of max_len = late + 1)", shared, shared),
                        ("transformer (cache sized to the context)", _session(name, max_len=early + 1), shared)]
        else:
            session = _session(name)
            variants = [(name, session, session)]
        for label, at_early, at_late in variants:
            states = [_prefilled(at_early, early), _prefilled(at_late, late)]
            us = _per_token_us([(at_early, states[0]), (at_late, states[1])], tokens, repeats)
            rows.append({"family": label, "early_us": us[0], "late_us": us[1], "ratio": us[1] / us[0],
                         "state_bytes": [state_bytes(s) for s in states],
                         "constant": name in CONSTANT})
            print(f"{label}: {us[0]:.1f} us at {early}, {us[1]:.1f} us at {late}: ratio {us[1] / us[0]:.2f}",
                  flush=True)
    return rows


def table(rows: list[dict], early: int, late: int) -> str:
    lines = [f"| family | µs/token at {early} | µs/token at {late} | ratio | state bytes ({early}, {late}) |",
             "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['family']} | {r['early_us']:.1f} | {r['late_us']:.1f} | {r['ratio']:.2f} | "
                     f"{r['state_bytes'][0]}, {r['state_bytes'][1]} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--early", type=int, default=64)
    parser.add_argument("--late", type=int, default=8192)
    parser.add_argument("--tokens", type=int, default=50, help="steps timed per position per repeat")
    parser.add_argument("--repeats", type=int, default=41)
    parser.add_argument("--quick", action="store_true", help="a smoke test: tiny positions, two families")
    parser.add_argument("--out", default=str(Path(__file__).parent), help="where stream_latency.md goes")
    args = parser.parse_args()
    families = list(FAMILIES)
    if args.quick:
        args.early, args.late, args.tokens, args.repeats, families = 8, 64, 5, 2, ["lstm", "transformer"]
    rows = measure(args.early, args.late, args.tokens, args.repeats, families)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    header = (f"Per-token streaming latency, batch 1, width {WIDTH}, {LAYERS} layers, float32, "
              f"{jax.default_backend()}, JAX {jax.__version__}; positions interleaved, median of {args.repeats} "
              f"repeats of {args.tokens} steps (`python experiments/complexity/stream_latency.py`).\n\n")
    (out / "stream_latency.md").write_text(header + table(rows, args.early, args.late))
    bad = [r["family"] for r in rows if r["constant"] and r["ratio"] > 1.2]
    print(f"constant-state families over 1.2x: {', '.join(bad) or 'none'}")
    if not args.quick and bad:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
