"""Temporal convolutional network (Bai, Kolter & Koltun 2018): causal dilated residual blocks.

Level ``i`` (``i = 0..L-1``) has dilation ``d_i = 2^i`` and computes::

    h   = dropout(relu(conv1_{d_i}(x)))
    h   = dropout(relu(conv2_{d_i}(h)))
    out = relu(h + res(x))        res = identity, or a 1x1 convolution when widths differ

Each causal conv widens the view by ``(k-1) d_i``, so the receptive field is
``RF = 1 + 2 (k-1) (2^L - 1)``: output ``t`` depends on inputs
``t-RF+1 .. t`` exactly.  Every convolution computes in ``dtype`` (``None``: ``param_dtype``;
:mod:`seqjax.models.precision`).
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any, Optional, Sequence

import flax.linen as nn
import jax.numpy as jnp

from seqjax.errors import COUNT, DROPOUT, check_fields, checked
from seqjax.models.blocks import CausalConv
from seqjax.models.precision import check_precision, dtypes
from seqjax.models.registry import register_backbone
from seqjax.typing import Array


def receptive_field(kernel_size: int, levels: int) -> int:
    """``RF = 1 + 2 (k-1) (2^L - 1)``: how many inputs (current included) one output sees."""
    return 1 + 2 * (kernel_size - 1) * (2**levels - 1)


def levels_for_context(context: int, kernel_size: int) -> int:
    """The fewest levels ``L`` with ``receptive_field(kernel_size, L) >= context``."""
    if kernel_size < 2:
        raise ValueError(f"a TCN needs kernel_size >= 2 to grow its receptive field, got {kernel_size}")
    levels = 1
    while receptive_field(kernel_size, levels) < context:
        levels += 1
    return levels


class TemporalBlock(nn.Module):
    """One residual level: two causal convs of dilation ``dilation``, ReLU, dropout, a residual."""

    features: int
    kernel_size: int
    dilation: int
    dropout: float = 0.0
    weight_norm: bool = False
    dtype: Any = None  # compute dtype; None: param_dtype
    param_dtype: Any = jnp.float32

    def setup(self) -> None:
        dtypes = dict(dtype=self.dtype, param_dtype=self.param_dtype)
        conv = dict(kernel_size=self.kernel_size, dilation=self.dilation, weight_norm=self.weight_norm, **dtypes)
        self.conv1 = CausalConv(self.features, **conv)
        self.conv2 = CausalConv(self.features, **conv)
        self.project = CausalConv(self.features, kernel_size=1, **dtypes)  # used only when widths differ
        self.drop = nn.Dropout(self.dropout)

    def _residual(self, x: Array) -> Array:
        return x.astype(self.dtype or self.param_dtype) if x.shape[-1] == self.features else self.project(x)

    def __call__(self, x: Array, *, deterministic: bool = True, resets: Array | None = None) -> Array:
        h = self.drop(nn.relu(self.conv1(x, resets=resets)), deterministic=deterministic)
        h = self.drop(nn.relu(self.conv2(h, resets=resets)), deterministic=deterministic)
        return nn.relu(h + self._residual(x))

    def initial_state(self, batch_size: int, c_in: int) -> tuple[Array, Array]:
        return self.conv1.initial_state(batch_size, c_in), self.conv2.initial_state(batch_size, self.features)

    def step(self, state: tuple[Array, Array], x_t: Array) -> tuple[tuple[Array, Array], Array]:
        """One token (dropout off): ``x_t [batch, c_in] -> y_t [batch, features]``."""
        buf1, h = self.conv1.step(state[0], x_t)
        buf2, h = self.conv2.step(state[1], nn.relu(h))
        return (buf1, buf2), nn.relu(nn.relu(h) + self._residual(x_t[:, None, :])[:, 0])

    def chunk(
        self, state: tuple[Array, Array], x: Array, resets: Array | None = None
    ) -> tuple[tuple[Array, Array], Array]:
        """A chunk (dropout off) after the buffered inputs: ``x [batch, T, c_in] -> y [batch, T, features]``."""
        buf1, h = self.conv1.chunk(state[0], x, resets)
        buf2, h = self.conv2.chunk(state[1], nn.relu(h), resets)
        return (buf1, buf2), nn.relu(nn.relu(h) + self._residual(x))


class TCN(nn.Module):
    """A stack of :class:`TemporalBlock` levels with widths ``channels`` and dilations ``1, 2, ..., 2^(L-1)``.

    ``x [batch, time, d_in] -> y [batch, time, channels[-1]]``. The step form
    carries, per level, the two conv input buffers (``(k-1) d_i`` tokens each); the chunk form
    prepends them to a chunk of any length.
    """

    channels: Sequence[int]
    kernel_size: int = 3
    dropout: float = 0.0
    weight_norm: bool = False
    dtype: Any = None  # compute dtype; None: param_dtype
    param_dtype: Any = jnp.float32

    def setup(self) -> None:
        if not self.channels:
            raise ValueError("a TCN needs at least one level; give channels a non-empty list")
        self.blocks = [
            TemporalBlock(c, self.kernel_size, 2**i, self.dropout, self.weight_norm, self.dtype, self.param_dtype)
            for i, c in enumerate(self.channels)
        ]

    @property
    def receptive_field(self) -> int:
        return receptive_field(self.kernel_size, len(self.channels))

    def __call__(
        self, x: Array, lengths: Array | None = None, *, deterministic: bool = True, resets: Array | None = None
    ) -> Array:
        """Causal, so padding after ``lengths`` never reaches a valid step; ``lengths`` is accepted and unused.
        ``resets [batch, time]`` start packed sequences: every conv's taps stop at the start of their sequence."""
        for block in self.blocks:
            x = block(x, deterministic=deterministic, resets=resets)
        return x

    def initial_state(self, batch_size: int) -> list[Any]:
        d_in = self.variables["params"]["blocks_0"]["conv1"]["kernel"].shape[1]
        widths = [d_in, *self.channels[:-1]]
        return [block.initial_state(batch_size, c) for block, c in zip(self.blocks, widths)]

    def step(self, state: list[Any], x_t: Array) -> tuple[list[Any], Array]:
        return self._thread(state, x_t, "step")

    def chunk(self, state: list[Any], x: Array, resets: Array | None = None) -> tuple[list[Any], Array]:
        return self._thread(state, x, "chunk", resets=resets)

    def _thread(self, state: list[Any], x: Array, form: str, **resets: Any) -> tuple[list[Any], Array]:
        """Each level's ``form`` (``"step"`` or ``"chunk"``, with ``resets``) in turn."""
        new_state = []
        for block, s in zip(self.blocks, state):
            s, x = getattr(block, form)(s, x, **resets)
            new_state.append(s)
        return new_state, x


__all__ = ["TCNOptions", "build_tcn", "check_receptive_field", "levels_for_context"]


@dataclasses.dataclass
class TCNOptions:
    """``levels`` blocks of ``channels`` filters (or per-level widths ``channel_sizes``), dilations ``2^i``.

    The first block's 1x1 residual projection maps the input width to the block width.
    """

    channels: int = checked(64, COUNT)
    levels: int = checked(4, COUNT)
    channel_sizes: Optional[list[int]] = checked(None, COUNT)
    kernel_size: int = checked(3, COUNT)
    dropout: float = checked(0.0, DROPOUT)
    weight_norm: bool = False
    dtype: Optional[str] = None  # compute dtype (seqjax.models.precision); unset: param_dtype
    param_dtype: str = "float32"

    def __post_init__(self) -> None:
        check_fields(self, "tcn")
        check_precision("tcn", self)

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


@register_backbone("tcn", TCNOptions, check_task=lambda opts, task: check_receptive_field(opts, task.seq_len))
def build_tcn(opts: TCNOptions) -> nn.Module:
    return TCN(channels=tuple(opts.widths()), kernel_size=opts.kernel_size, dropout=opts.dropout,
               weight_norm=opts.weight_norm, **dtypes(opts))
