"""The ``transformer`` backbone (:mod:`seqjax.layers.transformer`): decoder-only (causal) or encoder form."""

from __future__ import annotations

import dataclasses
from typing import Optional

import flax.linen as nn

from seqjax.errors import UserError
from seqjax.layers.transformer import POSITIONS, Transformer
from seqjax.models.precision import check_precision, dtypes
from seqjax.models.registry import register_backbone


@dataclasses.dataclass
class TransformerOptions:
    """``n_layers`` pre-norm blocks of width ``d_model`` with ``n_heads`` heads and an MLP of ``mlp_ratio * d_model``.

    ``causal=true``: the decoder-only form for per-step tasks, streamable with a KV cache of
    ``max_len`` positions; ``causal=false``: the encoder form (bidirectional attention), for
    last-step classification/regression.
    """

    d_model: int = 64
    n_heads: int = 4
    n_layers: int = 2
    mlp_ratio: int = 4
    dropout: float = 0.0
    positions: str = "sinusoidal"  # sinusoidal | rotary
    causal: bool = True
    max_len: int = 1024  # KV-cache length of the step form
    dtype: Optional[str] = None  # compute dtype (seqjax.models.precision); unset: param_dtype
    param_dtype: str = "float32"

    def __post_init__(self) -> None:
        check_precision("transformer", self)
        if self.positions not in POSITIONS:
            raise UserError(f"model.positions={self.positions!r} is unknown: choose one of {', '.join(POSITIONS)}")
        if self.n_heads < 1 or self.d_model % self.n_heads:
            raise UserError(f"model.d_model={self.d_model} must be a multiple of model.n_heads={self.n_heads}")
        if self.positions == "rotary" and (self.d_model // self.n_heads) % 2:
            raise UserError(f"rotary positions need an even head size, got d_model/n_heads = "
                            f"{self.d_model // self.n_heads}: change d_model or n_heads")


@register_backbone("transformer", TransformerOptions, causal=lambda o: o.causal)
def build_transformer(opts: TransformerOptions) -> nn.Module:
    return Transformer(**{**dataclasses.asdict(opts), **dtypes(opts)})
