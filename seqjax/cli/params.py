"""``seqjax params [--hidden-size H] [--input-size I] [--output-size O] [--json]``.

The seed's table of the three recurrent cells at equal width: gates, cell state and parameter count, each
parameter count both by its closed form and measured (:func:`seqjax.count_params` of the initialised cell);
the gates and the cell state are read off the initialised cell too (the blocks of ``W_h``, the carry).
Exit code 1 if a measured count differs from its closed form.
"""

from __future__ import annotations

import argparse
import json
from typing import Any, Callable, NamedTuple

from seqjax.errors import UserError


class Family(NamedTuple):
    """A cell family: how to build it, and its parameter count in closed form."""

    build: Callable[[int], Any]  # hidden_size -> Cell
    formula: str
    closed_form: Callable[[int, int], int]  # (H, I) -> count


# RNN:  W_h [H, H], W_x [I, H], b [H]                          ->  H(H + I + 1)
def rnn_count(H: int, I: int) -> int:  # noqa: E741
    return H * (H + I + 1)


# GRU (Cho et al. 2014): three blocks r, z, n of W_h, W_x, b   ->  3H(H + I + 1)
def gru_cho_count(H: int, I: int) -> int:  # noqa: E741
    return 3 * H * (H + I + 1)


# GRU (reset-after, cuDNN / PyTorch): Cho's, plus the candidate's recurrent bias b_hn [H]  ->  3H(H + I + 1) + H
def gru_reset_after_count(H: int, I: int) -> int:  # noqa: E741
    return 3 * H * (H + I + 1) + H


# LSTM: four blocks i, f, g, o of W_h, W_x, b                  ->  4H(H + I + 1)
def lstm_count(H: int, I: int) -> int:  # noqa: E741
    return 4 * H * (H + I + 1)


# readout y = W_o h + b_o: W_o [H, O], b_o [O]                  ->  O(H + 1)
def readout_count(H: int, O: int) -> int:  # noqa: E741
    return O * (H + 1)


def families() -> dict[str, Family]:
    from seqjax.cells import gru, lstm, rnn

    return {
        "rnn": Family(rnn, "H(H+I+1)", rnn_count),
        "gru (cho)": Family(lambda H: gru(H, variant="cho"), "3H(H+I+1)", gru_cho_count),
        "gru (reset_after, default)": Family(gru, "3H(H+I+1) + H", gru_reset_after_count),
        "lstm": Family(lstm, "4H(H+I+1)", lstm_count),
    }


def table(hidden_size: int, input_size: int, output_size: int = 1) -> list[dict[str, Any]]:
    """One row per cell: gates (blocks of ``W_h`` but the candidate), cell state, closed-form and measured counts.

    >>> [(r["cell"], r["gates"], r["cell_state"], r["measured"], r["match"]) for r in table(4, 2)]
    ... # doctest: +NORMALIZE_WHITESPACE
    [('rnn', 0, False, 28, True), ('gru (cho)', 2, False, 84, True),
     ('gru (reset_after, default)', 2, False, 88, True), ('lstm', 3, True, 112, True)]
    """
    import jax

    from seqjax.cells import readout_init
    from seqjax.cells.diagnostics import count_params

    H, I, O = hidden_size, input_size, output_size  # noqa: E741
    rows = []
    for name, family in families().items():
        cell = family.build(H)
        params = cell.init(jax.random.key(0), I)
        measured, closed = count_params(params), family.closed_form(H, I)
        rows.append({
            "cell": name, "gates": params["w_h"].shape[1] // H - 1,
            "cell_state": hasattr(cell.initial_carry((1,)), "c"), "formula": family.formula,
            "closed_form": closed, "measured": measured, "match": measured == closed,
            "with_readout": measured + count_params(readout_init(jax.random.key(1), H, O)),
            "with_readout_closed_form": closed + readout_count(H, O),
        })
    return rows


def markdown(rows: list[dict[str, Any]], hidden_size: int, input_size: int, output_size: int) -> str:
    lines = [f"H = {hidden_size}, I = {input_size}, readout O = {output_size} (+ O(H+1))", "",
             "| cell | gates | cell state | formula | closed form | measured | match | with readout |",
             "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['cell']} | {r['gates']} | {'yes' if r['cell_state'] else 'no'} | {r['formula']} | "
              f"{r['closed_form']} | {r['measured']} | {'yes' if r['match'] else 'NO'} | {r['with_readout']} |"
              for r in rows]
    return "\n".join(lines)


def _params(args: argparse.Namespace) -> int:
    for flag, value in (("--hidden-size", args.hidden_size), ("--input-size", args.input_size),
                        ("--output-size", args.output_size)):
        if value < 1:
            raise UserError(f"{flag} must be a positive integer, got {value}")
    rows = table(args.hidden_size, args.input_size, args.output_size)
    print(json.dumps(rows) if args.json else markdown(rows, args.hidden_size, args.input_size, args.output_size))
    return 0 if all(r["match"] and r["with_readout"] == r["with_readout_closed_form"] for r in rows) else 1


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("params", help="gates, cell state and parameter count (closed form and measured) "
                                             "of RNN / GRU / LSTM at equal width")
    p.add_argument("--hidden-size", type=int, default=128, help="H, the width of every cell (default 128)")
    p.add_argument("--input-size", type=int, default=64, help="I, the input features (default 64)")
    p.add_argument("--output-size", type=int, default=1, help="O, the readout's outputs (default 1)")
    p.add_argument("--json", action="store_true", help="print the rows as JSON instead of a markdown table")
    p.set_defaults(func=_params)
