"""The ``tcn`` backbone: a causal dilated residual TCN (:mod:`seqjax.layers.tcn`) and its receptive-field check."""

from __future__ import annotations

import dataclasses
import warnings
from typing import Optional

import flax.linen as nn

from seqjax.errors import UserError
from seqjax.layers.tcn import TCN, levels_for_context, receptive_field
from seqjax.models.checks import check_at_least
from seqjax.models.precision import check_precision, dtypes
from seqjax.models.registry import register_backbone

__all__ = ["TCNOptions", "build_tcn", "check_receptive_field", "levels_for_context"]


@dataclasses.dataclass
class TCNOptions:
    """``levels`` blocks of ``channels`` filters (or per-level widths ``channel_sizes``), dilations ``2^i``.

    The first block's 1x1 residual projection maps the input width to the block width.
    """

    channels: int = 64
    levels: int = 4
    channel_sizes: Optional[list[int]] = None
    kernel_size: int = 3
    dropout: float = 0.0
    weight_norm: bool = False
    dtype: Optional[str] = None  # compute dtype (seqjax.models.precision); unset: param_dtype
    param_dtype: str = "float32"

    def __post_init__(self) -> None:
        for key in ("channels", "levels", "kernel_size"):
            check_at_least("tcn", key, getattr(self, key), 1)
        check_precision("tcn", self)
        if self.channel_sizes is not None and (not self.channel_sizes or min(self.channel_sizes) < 1):
            raise UserError(f"tcn: channel_sizes={self.channel_sizes} must be a non-empty list of positive widths")
        if not 0.0 <= self.dropout < 1.0:
            raise UserError(f"tcn: dropout={self.dropout} must be in [0, 1)")

    def widths(self) -> list[int]:
        return list(self.channel_sizes) if self.channel_sizes else [self.channels] * self.levels

    @property
    def receptive_field(self) -> int:
        """``1 + 2 (k-1) (2^L - 1)`` input steps seen by each output."""
        return receptive_field(self.kernel_size, len(self.widths()))


def check_receptive_field(opts: TCNOptions, seq_len: int) -> str | None:
    """Warn (and return the text) when the TCN cannot see a dependency ``seq_len`` steps long."""
    rf = opts.receptive_field
    if rf >= seq_len:
        return None
    need = levels_for_context(seq_len, opts.kernel_size)
    text = (
        f"tcn receptive field {rf} (kernel_size={opts.kernel_size}, levels={len(opts.widths())}) is shorter "
        f"than the task's dependency length {seq_len}: set levels >= {need} (or a larger kernel_size)"
    )
    warnings.warn(text, stacklevel=2)
    return text


@register_backbone("tcn", TCNOptions)
def build_tcn(opts: TCNOptions) -> nn.Module:
    return TCN(channels=tuple(opts.widths()), kernel_size=opts.kernel_size, dropout=opts.dropout,
               weight_norm=opts.weight_norm, **dtypes(opts))
