"""The ``seqjax`` command line: ``seqjax train | eval | sweep | bench | report | stream | export | params``.

Each subcommand lives in its own module exposing ``register(subparsers)``, which
adds its parser and sets ``func(args) -> int``; list the module in ``COMMANDS``.
A :class:`~seqjax.errors.UserError` (or ``FileNotFoundError``) raised before any
work starts, and a bad command line (:class:`OneLineParser`), become one line on
stderr and exit code 2.  A command's ``KEY=VALUE`` overrides may come before, between or after its options.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import typing

from seqjax import __version__
from seqjax.errors import UserError
from seqjax.experiment.compilation_cache import use_compilation_cache
from seqjax.experiment.runtime import keep_freed_memory

COMMANDS: list[str] = [f"seqjax.cli.{name}" for name in ("train", "eval", "sweep", "report", "bench", "stream", "export", "params")]  # modules with register(subparsers)


class OneLineParser(argparse.ArgumentParser):
    """argparse with one-line errors: ``error: seqjax bench: argument model: invalid choice ...`` and exit 2
    (argparse's own prints the usage block first).  Subcommand parsers inherit the class."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"error: {self.prog}: {message.splitlines()[0]} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="seqjax",
        description="seqjax: train and study sequence models (RNN, LSTM, GRU, TCN, S4, Mamba, Transformer) "
        "from config files.",
    )
    parser.add_argument("--version", action="version", version=f"seqjax {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMANDS:
        importlib.import_module(module).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    keep_freed_memory()  # before JAX starts its threads; SEQJAX_MALLOC=system opts out
    use_compilation_cache()  # before the first compilation; SEQJAX_COMPILATION_CACHE=off opts out
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)  # KEY=VALUE overrides may also follow the options
    stray = [w for w in extra if w.startswith("-") or "=" not in w or not hasattr(args, "overrides")]
    if stray:
        parser.error(f"unrecognized arguments: {' '.join(stray)}")
    if extra:
        args.overrides = [*args.overrides, *extra]
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except (UserError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())  # also: python -m seqjax.cli (seqjax/cli/__main__.py)
