"""``seqjax bench [rnn|lstm|gru|tcn|s4d|mamba|all] [--device cpu|gpu] [--json] [--quick]``."""

from __future__ import annotations

import argparse
import json

import jax

from seqjax.errors import UserError


def register(subparsers: argparse._SubParsersAction) -> None:
    from seqjax.benchmarks.suite import MODELS

    p = subparsers.add_parser(
        "bench",
        help="time training steps and forward passes against Flax linen, PyTorch and the GEMM limit",
        description="Time a full training step (forward, backward, Adam) and a forward pass of each model, "
        "seqjax beside Flax linen and PyTorch, interleaved in one process; print tokens/s, the ratio "
        "seqjax/peer and peak memory.",
    )
    p.add_argument("model", nargs="?", default="all", choices=(*MODELS, "all"))
    p.add_argument("--device", default="cpu", choices=("cpu", "gpu"))
    p.add_argument("--json", action="store_true", help="print the rows as JSON instead of a table")
    p.add_argument("--quick", action="store_true", help="tiny shapes, 2 repeats (a smoke test, not a measurement)")
    p.add_argument("--repeats", type=int, default=None, help="timed rounds per figure (default 5; 2 with --quick)")
    p.add_argument("--no-torch", action="store_true", help="leave PyTorch out (also when it is not installed)")
    p.set_defaults(func=run)


def _device(kind: str) -> jax.Device:
    try:
        return jax.devices(kind)[0]
    except RuntimeError:
        raise UserError(f"no {kind.upper()} visible to JAX; run with --device cpu or install a {kind} jaxlib") from None


def run(args: argparse.Namespace) -> int:
    from seqjax.benchmarks import peers, suite

    repeats = args.repeats or (2 if args.quick else 5)
    if repeats < 1:
        raise UserError(f"--repeats must be at least 1, got {repeats}")
    models = suite.MODELS if args.model == "all" else (args.model,)
    use_torch = not args.no_torch and peers.torch_available()
    with jax.default_device(_device(args.device)):
        rows = suite.run_suite(models, quick=args.quick, device=args.device, repeats=repeats, torch=use_torch)
    if args.json:
        print(json.dumps([r.as_dict() for r in rows], indent=1))
    else:
        print(suite.format_table(rows))
        if use_torch:
            print(f"torch threads: {peers.torch_threads()} (= the CPU cores JAX uses)")
    return 0
