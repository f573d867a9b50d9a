"""Recurrent cells as bundles of pure functions (``rnn``, ``lstm``, ``gru``), their hand-derived
backward passes, and the scan that drives them over time."""

from __future__ import annotations

from typing import Any, Callable

from seqjax.cells.base import Cell, readout, readout_init
from seqjax.cells.gru import GRU_VARIANTS, gru
from seqjax.cells.lstm import LSTMCarry, lstm
from seqjax.cells.rnn import ACTIVATIONS, rnn
from seqjax.errors import check_choice

__all__ = ["ACTIVATIONS", "CELLS", "Cell", "GRU_VARIANTS", "LSTMCarry", "gru", "lstm", "make_cell",
           "readout", "readout_init", "rnn", "scan"]

CELLS: dict[str, Callable[..., Cell]] = {"rnn": rnn, "lstm": lstm, "gru": gru}


def make_cell(name: str, hidden_size: int, **options: Any) -> Cell:
    """Build a cell by name (``"rnn"``, ``"lstm"``, ``"gru"``) with its options.

    >>> import jax, jax.numpy as jnp
    >>> cell = make_cell("rnn", 4, activation="tanh")
    >>> params = cell.init(jax.random.key(0), 3)
    >>> carry, h = cell.step(params, cell.initial_carry((2,)), jnp.ones((2, 3)))
    >>> h.shape
    (2, 4)
    >>> make_cell("elman", 4)
    Traceback (most recent call last):
    ...
    seqjax.errors.UserError: unknown cell 'elman': choose one of 'rnn', 'lstm', 'gru'
    """
    check_choice("cell", name, CELLS)
    try:
        return CELLS[name](hidden_size, **options)
    except TypeError as e:  # an unknown keyword option
        raise ValueError(f"unknown option for cell {name!r}: {e}") from None
