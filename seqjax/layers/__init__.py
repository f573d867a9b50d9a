"""Flax modules: recurrent layers (and, as they land, conv/TCN, SSM, Mamba, attention)."""

from seqjax.layers.recurrent import Bidirectional, Recurrent, StackedRNN, StreamingError
from seqjax.layers.conv import CausalConv
from seqjax.layers.tcn import TCN, TemporalBlock
from seqjax.layers.ssm import S4, S4D, SSMBlock
from seqjax.layers.mamba import MambaBlock
from seqjax.layers.residual import ResidualStack
from seqjax.layers.transformer import SelfAttention, Transformer, TransformerBlock

__all__ = ["Bidirectional", "Recurrent", "StackedRNN", "StreamingError",
           "CausalConv", "TCN", "TemporalBlock", "S4", "S4D", "SSMBlock", "MambaBlock", "ResidualStack",
           "SelfAttention", "Transformer", "TransformerBlock"]
