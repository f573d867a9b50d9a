"""Flax modules: recurrent layers (and, as they land, conv/TCN, SSM, Mamba, attention)."""

from seqjax.layers.recurrent import Bidirectional, Recurrent, StackedRNN, StreamingError

__all__ = ["Bidirectional", "Recurrent", "StackedRNN", "StreamingError"]
