"""seqjax: a JAX/Flax research framework for sequence models."""

from seqjax import cells
from seqjax.cells.base import Cell
from seqjax.cells.lstm import LSTMCarry, lstm
from seqjax.cells.gru import gru
from seqjax.cells import make_cell, readout, readout_init, scan
from seqjax.cells.rnn import rnn
from seqjax.cells.diagnostics import count_params

__version__ = "0.1.0"


def load(run_dir: str, step: int | None = None):
    """A streaming :class:`~seqjax.experiment.session.Session` on a run directory's best (or ``step``'s) checkpoint."""
    from seqjax.experiment.session import load as load_session  # imported on use: the rest of seqjax stays light

    return load_session(run_dir, step)

__all__ = [
    "Cell", "LSTMCarry", "cells", "count_params", "gru", "load", "lstm", "make_cell",
    "readout", "readout_init", "rnn", "scan",
]
