"""``seqjax stream RUN_DIR [--input FILE] [--chunk N] [--step S]``: a trained causal model, one token at a time.

Reads one input per line from stdin (or ``--input FILE``) as it arrives -- a token id (``5``) for a
token model, a feature vector as a JSON list (``[0.3, 1.0]``) otherwise -- and writes each prediction
as a JSON line the moment it is computed (flushed)::

    {"t": 0, "output": [...], "argmax": 3}      (argmax for classification heads)

With ``--chunk N`` it reads ``N`` inputs, runs them as one chunk (the parallel form from the carried
state) and writes their ``N`` lines; a shorter last chunk runs at the end of the input.  At the end it
prints to stderr the per-token latency (median and p99; with ``--chunk``, each chunk's time over its
tokens) and the state's size in bytes.  A bad line, a non-causal model, or a Transformer stream past
its KV cache (``model.max_len``) stops with one line and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import IO, Iterator

import numpy as np

from seqjax.errors import UserError


def _inputs(stream: IO[str], session) -> Iterator[np.ndarray]:
    """Each non-blank line as a ``[1]`` id or a ``[1, d_in]`` vector, read as it arrives."""
    for number, line in enumerate(iter(stream.readline, ""), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError:
            value = None
        if session.vocab is not None:
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < session.vocab:
                raise UserError(f"input line {number}: {line.strip()[:40]!r} is not a token id in [0, "
                                f"{session.vocab}): write one integer per line")
            yield np.asarray([value], np.int32)
        else:
            ok = isinstance(value, list) and len(value) == session.input_dim and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
            if not ok:
                raise UserError(f"input line {number}: {line.strip()[:40]!r} is not a feature vector of "
                                f"{session.input_dim} numbers: write a JSON list per line, e.g. "
                                f"{json.dumps([0.0] * session.input_dim)}")
            yield np.asarray([value], np.float32)


def _write(t: int, y: np.ndarray, classify: bool) -> None:
    line = {"t": t, "output": [float(v) for v in y]}
    if classify:
        line["argmax"] = int(np.argmax(y))
    print(json.dumps(line), flush=True)


def _batches(inputs: Iterator[np.ndarray], chunk: int | None) -> Iterator[np.ndarray]:
    """Single inputs (``chunk=None``), or ``chunk`` of them stacked on the time axis (the last one shorter)."""
    if chunk is None:
        yield from inputs
        return
    pending: list[np.ndarray] = []
    for x in inputs:
        pending.append(x)
        if len(pending) == chunk:
            yield np.stack(pending, axis=1)
            pending = []
    if pending:
        yield np.stack(pending, axis=1)


def stream(session, source: IO[str], chunk: int | None = None) -> dict:
    """Stream ``source`` through ``session``, writing each prediction; returns the latency and state report."""
    import jax

    from seqjax.experiment.session import state_bytes

    classify = session.kind.startswith("classify")
    state = session.init_state(1)
    example = np.zeros((1,) if session.vocab is not None else (1, session.input_dim),
                       np.int32 if session.vocab is not None else np.float32)
    jax.block_until_ready(session.step(state, example))  # compile before the first token arrives
    if chunk is not None:
        jax.block_until_ready(session.chunk(state, np.repeat(example[:, None], chunk, axis=1)))
    t, per_token = 0, []
    for x in _batches(_inputs(source, session), chunk):
        started = time.perf_counter()
        if chunk is None:
            state, y = session.step(state, x)
            ys = np.asarray(y)[:, None]
        else:
            state, y = session.chunk(state, x)
            ys = np.asarray(y)
        elapsed = time.perf_counter() - started
        per_token += [elapsed / ys.shape[1]] * ys.shape[1]
        for y_t in ys[0]:
            _write(t, y_t, classify)
            t += 1
    ms = np.asarray(per_token) * 1e3
    return {"tokens": t, "median_ms": float(np.median(ms)) if t else None,
            "p99_ms": float(np.percentile(ms, 99)) if t else None, "state_bytes": state_bytes(state),
            "capacity": session.capacity}


def _stream(args: argparse.Namespace) -> int:
    from seqjax.experiment.session import load

    if args.chunk is not None and args.chunk < 1:
        raise UserError(f"--chunk must be a positive number of tokens, got {args.chunk}")
    session = load(args.run_dir, step=args.step)
    if args.input is None:
        report = stream(session, sys.stdin, args.chunk)
    else:
        with open(args.input) as source:
            report = stream(session, source, args.chunk)
    bound = "constant" if report["capacity"] is None else f"a KV cache of {report['capacity']} positions"
    latency = ("no tokens" if not report["tokens"] else
               f"{report['tokens']} tokens, per-token latency median {report['median_ms']:.3f} ms, "
               f"p99 {report['p99_ms']:.3f} ms" + (f" (chunks of {args.chunk})" if args.chunk else ""))
    print(f"stream: {latency}; state {report['state_bytes']} bytes ({bound})", file=sys.stderr)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    st = subparsers.add_parser("stream", help="stream inputs through a trained causal model, one prediction a token")
    st.add_argument("run_dir", help="a run directory written by `seqjax train`")
    st.add_argument("--input", default=None, help="read inputs from FILE instead of stdin (one per line)")
    st.add_argument("--chunk", type=int, default=None, help="run N inputs at a time in the parallel form")
    st.add_argument("--step", type=int, default=None, help="a checkpoint step instead of the best one")
    st.set_defaults(func=_stream)
