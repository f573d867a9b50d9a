"""The ``s4`` and ``s4d`` backbones: pre-norm residual stacks of S4/S4D blocks (:mod:`seqjax.layers.ssm`)."""

from __future__ import annotations

import dataclasses
from typing import Optional

import flax.linen as nn

from seqjax.layers.hippo import S4D_INITS
from seqjax.layers.residual import NORMS, ResidualStack
from seqjax.layers.ssm import S4, S4D, SSMBlock
from seqjax.layers.ssm_kernel import DISCRETIZATIONS
from seqjax.models.checks import check_at_least, check_choice
from seqjax.models.precision import check_precision, dtypes
from seqjax.models.registry import register_backbone


@dataclasses.dataclass
class SSMOptions:
    """Shared options: ``n_layers`` blocks of width ``d_model``, state size ``N`` (``state_size``)."""

    d_model: int = 64
    n_layers: int = 4
    state_size: int = 64
    dropout: float = 0.0
    norm: str = "layer"  # "layer" or "rms"
    dt_min: float = 1e-3
    dt_max: float = 1e-1
    dtype: Optional[str] = None  # compute dtype (seqjax.models.precision); unset: param_dtype
    param_dtype: str = "float32"

    def __post_init__(self) -> None:
        check_at_least("ssm", "d_model", self.d_model, 1)
        check_at_least("ssm", "n_layers", self.n_layers, 1)
        check_at_least("ssm", "state_size", self.state_size, 2, even=True)  # conjugate pairs
        check_choice("ssm", "norm", self.norm, NORMS)
        check_precision("ssm", self)


@dataclasses.dataclass
class S4Options(SSMOptions):
    l_max: Optional[int] = None  # kernel length (needed for step mode); the input length when unset

    def __post_init__(self) -> None:
        super().__post_init__()
        check_at_least("s4", "l_max", self.l_max, 1)


@dataclasses.dataclass
class S4DOptions(SSMOptions):
    a_init: str = "legs"  # "legs", "lin" or "inv"
    disc: str = "zoh"  # "zoh" or "bilinear"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice("s4d", "a_init", self.a_init, S4D_INITS)
        check_choice("s4d", "disc", self.disc, DISCRETIZATIONS)


def _stack(opts: SSMOptions, make_ssm) -> nn.Module:
    blocks = [SSMBlock(make_ssm(), opts.d_model, **dtypes(opts)) for _ in range(opts.n_layers)]
    return ResidualStack(blocks=blocks, d_model=opts.d_model, norm=opts.norm, dropout=opts.dropout, **dtypes(opts))


@register_backbone("s4", S4Options)
def build_s4(opts: S4Options) -> nn.Module:
    return _stack(opts, lambda: S4(opts.d_model, opts.state_size, opts.l_max, opts.dt_min, opts.dt_max,
                                   **dtypes(opts)))


@register_backbone("s4d", S4DOptions)
def build_s4d(opts: S4DOptions) -> nn.Module:
    return _stack(
        opts, lambda: S4D(opts.d_model, opts.state_size, opts.a_init, opts.disc, opts.dt_min, opts.dt_max,
                          **dtypes(opts))
    )
