"""``seqjax export RUN_DIR OUT [--chunk N] [--batch B] [--step S] [--platforms cpu,cuda]``.

Writes the trained causal model's step function (and, with ``--chunk N``, its ``N``-token chunk function)
with its parameters as serialized StableHLO plus a JSON manifest (:mod:`seqjax.experiment.export`);
:mod:`seqjax.export_loader` runs them with jax and numpy only.
"""

from __future__ import annotations

import argparse
import json
import sys

from seqjax.errors import UserError


def _export(args: argparse.Namespace) -> int:
    from seqjax.experiment.export import export_session
    from seqjax.experiment.session import load

    for flag, value in (("--chunk", args.chunk), ("--batch", args.batch)):
        if value is not None and value < 1:
            raise UserError(f"{flag} must be a positive integer, got {value}")
    session = load(args.run_dir, step=args.step)
    platforms = args.platforms.split(",") if args.platforms else None
    manifest = export_session(session, args.out, chunk=args.chunk, batch=args.batch, platforms=platforms)
    print(json.dumps({"out": args.out, "files": manifest["files"], "state_bytes": manifest["state"]["bytes"]}))
    print(f"exported to {args.out}: load it with `from seqjax.export_loader import load`", file=sys.stderr)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    ex = subparsers.add_parser("export", help="write a trained causal model's step/chunk functions (StableHLO)")
    ex.add_argument("run_dir", help="a run directory written by `seqjax train`")
    ex.add_argument("out", help="the directory to write (manifest.json, step.stablehlo, ...)")
    ex.add_argument("--chunk", type=int, default=None, help="also export the chunk function for N tokens")
    ex.add_argument("--batch", type=int, default=1, help="the batch size the functions take (default 1)")
    ex.add_argument("--step", type=int, default=None, help="a checkpoint step instead of the best one")
    ex.add_argument("--platforms", default=None, help="comma-separated jax platforms (default: this backend)")
    ex.set_defaults(func=_export)
