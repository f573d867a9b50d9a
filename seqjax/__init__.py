"""seqjax: a JAX/Flax research framework for sequence models."""

from seqjax import cells
from seqjax.cells.base import Cell
from seqjax.cells.lstm import LSTMCarry, lstm
from seqjax.cells.gru import gru
from seqjax.cells import make_cell, readout, readout_init, scan
from seqjax.cells.rnn import rnn
from seqjax.cells.diagnostics import count_params

__version__ = "0.1.0"

__all__ = [
    "Cell", "LSTMCarry", "cells", "count_params", "gru", "lstm", "make_cell",
    "readout", "readout_init", "rnn", "scan",
]
