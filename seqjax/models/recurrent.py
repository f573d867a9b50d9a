"""Recurrent backbones (``rnn``, ``lstm``, ``gru``) for the registry."""

from __future__ import annotations

import dataclasses
from typing import Optional

import flax.linen as nn

from seqjax.cells import ACTIVATIONS, GRU_VARIANTS, make_cell
from seqjax.errors import UserError
from seqjax.initializers import RECURRENT_INITS
from seqjax.layers import StackedRNN
from seqjax.models.checks import check_at_least, check_choice
from seqjax.models.precision import check_precision, compute_dtype, param_dtype
from seqjax.models.registry import register_backbone
from seqjax.scan import BPTT_MODES, MERGE_MODES


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
    bptt: str = "fused"  # or "autodiff" (JAX's transpose of the scan; supports jax.jvp)
    activation: str = "tanh"  # rnn only
    forget_bias: float = 1.0  # lstm only
    variant: str = "reset_after"  # gru only: "reset_after" or "cho"
    recurrent_init: str = "orthogonal"
    spectral_norm: Optional[float] = None
    dtype: Optional[str] = None  # compute dtype (seqjax.models.precision); unset: param_dtype
    param_dtype: str = "float32"

    def __post_init__(self) -> None:
        name = "recurrent model"
        for key in ("hidden_size", "num_layers", "unroll"):
            check_at_least(name, key, getattr(self, key), 1)
        check_precision(name, self)
        if self.hidden_sizes is not None and (not self.hidden_sizes or min(self.hidden_sizes) < 1):
            raise UserError(f"{name}: hidden_sizes={self.hidden_sizes} must be a non-empty list of positive widths")
        for key, allowed in [("merge", MERGE_MODES), ("bptt", BPTT_MODES), ("activation", ACTIVATIONS),
                             ("variant", GRU_VARIANTS), ("recurrent_init", RECURRENT_INITS)]:
            check_choice(name, key, getattr(self, key), allowed)
        if not 0.0 <= self.dropout < 1.0:
            raise UserError(f"{name}: dropout={self.dropout} must be in [0, 1)")
        if self.spectral_norm is not None and not self.spectral_norm > 0:
            raise UserError(f"{name}: spectral_norm={self.spectral_norm} must be positive (sigma_max of W_h)")


_CELL_ONLY = {"rnn": ("activation",), "lstm": ("forget_bias",), "gru": ("variant",)}


def _build(name: str):
    def build(opts: RecurrentOptions) -> nn.Module:
        widths = list(opts.hidden_sizes) if opts.hidden_sizes else [opts.hidden_size] * opts.num_layers
        extra = {k: getattr(opts, k) for k in _CELL_ONLY[name]}
        cells = tuple(
            make_cell(name, w, recurrent=opts.recurrent_init, spectral_norm=opts.spectral_norm,
                      dtype=compute_dtype(opts), param_dtype=param_dtype(opts), **extra)
            for w in widths
        )
        return StackedRNN(
            cells=cells, bidirectional=opts.bidirectional, merge=opts.merge, dropout=opts.dropout,
            unroll=opts.unroll, remat=opts.remat, learned_init=opts.learned_init, bptt=opts.bptt,
        )

    return build


for _name in ("rnn", "lstm", "gru"):
    register_backbone(_name, RecurrentOptions, causal=lambda o: not o.bidirectional)(_build(_name))
