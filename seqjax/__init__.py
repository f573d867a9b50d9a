"""seqjax: a JAX/Flax research framework for sequence models."""

from seqjax import cells, scan
from seqjax.cells import Cell, LSTMCarry, gru, lstm, make_cell, rnn
from seqjax.diagnostics import count_params
from seqjax.readout import readout, readout_init

__version__ = "0.1.0"

__all__ = [
    "Cell", "LSTMCarry", "cells", "count_params", "gru", "lstm", "make_cell",
    "readout", "readout_init", "rnn", "scan",
]
