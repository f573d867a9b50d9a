"""The ``mamba`` backbone: a pre-norm residual stack of Mamba blocks (:mod:`seqjax.layers.mamba`)."""

from __future__ import annotations

import dataclasses
from typing import Optional

import flax.linen as nn

from seqjax.layers.mamba import MambaBlock
from seqjax.layers.residual import NORMS, ResidualStack
from seqjax.linear_scan import METHODS
from seqjax.models.checks import check_at_least, check_choice
from seqjax.models.precision import check_precision, dtypes
from seqjax.models.registry import register_backbone


@dataclasses.dataclass
class MambaOptions:
    """``n_layers`` Mamba blocks of width ``d_model``; ``chunk_size`` bounds the selective scan's memory."""

    d_model: int = 64
    n_layers: int = 2
    d_state: int = 16
    d_conv: int = 4
    expand: int = 2
    dt_rank: Optional[int] = None  # ceil(d_model / 16) when unset
    dt_min: float = 1e-3
    dt_max: float = 1e-1
    norm: str = "rms"  # "rms" or "layer"
    dropout: float = 0.0
    chunk_size: Optional[int] = 16  # None: one chunk (holds [batch, L, d_inner, d_state])
    scan_method: str = "auto"  # linear_scan method inside a chunk
    dtype: Optional[str] = None  # compute dtype (seqjax.models.precision); unset: param_dtype
    param_dtype: str = "float32"

    def __post_init__(self) -> None:
        check_precision("mamba", self)
        for key in ("d_model", "n_layers", "d_state", "d_conv", "expand", "dt_rank", "chunk_size"):
            check_at_least("mamba", key, getattr(self, key), 1)
        check_choice("mamba", "norm", self.norm, NORMS)
        check_choice("mamba", "scan_method", self.scan_method, METHODS)


@register_backbone("mamba", MambaOptions)
def build_mamba(opts: MambaOptions) -> nn.Module:
    block = dict(
        d_model=opts.d_model, d_state=opts.d_state, d_conv=opts.d_conv, expand=opts.expand,
        dt_rank=opts.dt_rank, dt_min=opts.dt_min, dt_max=opts.dt_max, chunk_size=opts.chunk_size,
        scan_method=opts.scan_method, **dtypes(opts),
    )
    blocks = [MambaBlock(**block) for _ in range(opts.n_layers)]
    return ResidualStack(blocks=blocks, d_model=opts.d_model, norm=opts.norm, dropout=opts.dropout, **dtypes(opts))
