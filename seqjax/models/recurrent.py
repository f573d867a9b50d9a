"""Recurrent backbones (``rnn``, ``lstm``, ``gru``) for the registry."""

from __future__ import annotations

import dataclasses
from typing import Optional

import flax.linen as nn

from seqjax.cells import make_cell
from seqjax.layers import StackedRNN
from seqjax.models.registry import register_backbone


@dataclasses.dataclass
class RecurrentOptions:
    """Options of a recurrent stack.

    ``hidden_sizes`` gives per-layer widths; when it is unset, ``num_layers``
    layers of ``hidden_size`` are used.
    """

    hidden_size: int = 128
    num_layers: int = 1
    hidden_sizes: Optional[list[int]] = None
    bidirectional: bool = False
    merge: str = "concat"
    dropout: float = 0.0
    learned_init: bool = False
    unroll: int = 1
    remat: bool = False
    activation: str = "tanh"  # rnn only
    forget_bias: float = 1.0  # lstm only
    variant: str = "reset_after"  # gru only: "reset_after" or "cho"
    recurrent_init: str = "orthogonal"
    spectral_norm: Optional[float] = None


_CELL_ONLY = {"rnn": ("activation",), "lstm": ("forget_bias",), "gru": ("variant",)}


def _build(name: str):
    def build(opts: RecurrentOptions) -> nn.Module:
        widths = list(opts.hidden_sizes) if opts.hidden_sizes else [opts.hidden_size] * opts.num_layers
        extra = {k: getattr(opts, k) for k in _CELL_ONLY[name]}
        cells = tuple(
            make_cell(name, w, recurrent=opts.recurrent_init, spectral_norm=opts.spectral_norm, **extra)
            for w in widths
        )
        return StackedRNN(
            cells=cells, bidirectional=opts.bidirectional, merge=opts.merge, dropout=opts.dropout,
            unroll=opts.unroll, remat=opts.remat, learned_init=opts.learned_init,
        )

    return build


for _name in ("rnn", "lstm", "gru"):
    register_backbone(_name, RecurrentOptions, causal=lambda o: not o.bidirectional)(_build(_name))
