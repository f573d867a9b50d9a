"""A pre-norm residual stack of sequence blocks (used by the S4/S4D and Mamba backbones).

::

    x_0     = W_in x + b_in                      (only when d_in != d_model)
    x_{l+1} = x_l + dropout(block_l(norm_l(x_l)))
    y       = norm(x_L)

Each block maps ``[batch, time, d_model] -> same`` (``block(x, resets=None)``: ``resets [batch, time]`` marks
the first token of each packed sequence, which runs as if alone) and has the step pair
``initial_state(batch_size)`` / ``step(state, x_t)`` and the chunk form ``chunk(state, x) -> (state, y)``
(a chunk of any length in the parallel form, from and to the step form's state); the stack threads one
state per block.  The stack's own layers compute in ``dtype`` (``None``: ``param_dtype``); the input
is cast to it (:mod:`seqjax.models.precision`); the blocks carry their own ``dtype``.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import flax.linen as nn
import jax.numpy as jnp
from flax import traverse_util

from seqjax.errors import check_choice
from seqjax.ops.conv import causal_conv, causal_conv_step
from seqjax.ops.masking import segment_starts
from seqjax.typing import Array


class CausalConv(nn.Module):
    """A causal (dilated) convolution layer, ``y = causal_conv(x, W) + b``.

    With ``weight_norm`` the kernel is ``W = g * V / ||V||`` (norm over
    ``[k, c_in]`` per output channel; Salimans & Kingma 2016), parameters
    ``V`` (``kernel``) and ``g`` (``scale``).
    """

    features: int
    kernel_size: int
    dilation: int = 1
    depthwise: bool = False
    weight_norm: bool = False
    use_bias: bool = True
    kernel_init: Callable[..., Array] = nn.initializers.lecun_normal()
    dtype: Any = None  # compute dtype; None: param_dtype
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(
        self, x: Array, buffer: Array | None = None, resets: Array | None = None
    ) -> Array | tuple[Array, Array]:
        """Parallel form ``x [batch, time, c_in] -> y`` (no tap across a reset: :func:`~seqjax.ops.conv.causal_conv`);
        with ``buffer``, one token ``x_t -> (buffer', y_t)``."""
        dtype = self.dtype or self.param_dtype
        groups = x.shape[-1] if self.depthwise else 1
        shape = (self.kernel_size, x.shape[-1] // groups, self.features)
        v = self.param("kernel", self.kernel_init, shape, self.param_dtype)
        kernel = v
        if self.weight_norm:
            norm = lambda w: jnp.sqrt(jnp.sum(w**2, axis=(0, 1)))  # noqa: E731
            kernel = self.param("scale", lambda _: norm(v)) * v / norm(v)
        bias = self.param("bias", nn.initializers.zeros, (self.features,), self.param_dtype) if self.use_bias else 0.0
        x, kernel, bias = x.astype(dtype), kernel.astype(dtype), jnp.asarray(bias, dtype)
        if buffer is None:
            return causal_conv(x, kernel, self.dilation, groups, resets) + bias
        new_buffer, y = causal_conv_step(buffer.astype(dtype), x, kernel, self.dilation, groups)
        return new_buffer.astype(buffer.dtype), y + bias

    def initial_state(self, batch_size: int, c_in: int) -> Array:
        """The empty input buffer ``[batch, (k-1) d, c_in]`` (zeros: the causal padding), in the compute dtype."""
        return jnp.zeros((batch_size, (self.kernel_size - 1) * self.dilation, c_in), self.dtype or self.param_dtype)

    def step(self, buffer: Array, x_t: Array) -> tuple[Array, Array]:
        """One token: ``(buffer, x_t [batch, c_in]) -> (buffer', y_t [batch, features])``."""
        return self(x_t, buffer)

    def chunk(self, buffer: Array, x: Array, resets: Array | None = None) -> tuple[Array, Array]:
        """A chunk ``x [batch, T, c_in]`` after the buffered inputs: the parallel form over ``[buffer, x]``, whose
        first ``(k-1) d`` outputs (those of the buffered inputs) are dropped; the new buffer is the last ``(k-1) d``
        inputs. A reset in the chunk (``resets [batch, T]``) cuts the taps into the buffer too, and the new buffer
        keeps only the last sequence's inputs (zeros before it), so no later chunk's taps reach across that reset.

        >>> import jax
        >>> conv = CausalConv(features=2, kernel_size=3, dilation=2)
        >>> x = jnp.arange(12.0).reshape(1, 6, 2)
        >>> params = conv.init(jax.random.key(0), x)
        >>> buffer = conv.initial_state(1, 2)
        >>> buffer, first = conv.apply(params, buffer, x[:, :4], method=conv.chunk)
        >>> buffer, rest = conv.apply(params, buffer, x[:, 4:], method=conv.chunk)
        >>> bool(jnp.allclose(jnp.concatenate([first, rest], 1), conv.apply(params, x)))
        True
        """
        held = buffer.shape[1]
        window = jnp.concatenate([buffer.astype(x.dtype), x], axis=1)
        kept = window[:, window.shape[1] - held:]
        if resets is not None:  # no reset among the buffered positions
            resets = jnp.concatenate([jnp.zeros((resets.shape[0], held), bool), jnp.asarray(resets, bool)], axis=1)
            # a buffered input before the window's last reset is another sequence's: zero, a dropped tap
            last_start = segment_starts(resets)[:, -1:]
            kept = jnp.where((jnp.arange(window.shape[1] - held, window.shape[1]) >= last_start)[..., None], kept, 0)
        return kept.astype(buffer.dtype), self(window, resets=resets)[:, held:]


class FeedForward(nn.Module):
    """A position-wise MLP block, ``W_d act(W_1 x + b_1) + b_d``; ``gated``: ``W_d (act(W_1 x + b_1) * (W_2 x + b_2)) + b_d``.

    ``act`` is GELU (tanh form). Stateless, so its step form is the same map on one token.

    >>> import jax
    >>> ff = FeedForward(hidden=8, gated=True)
    >>> params = ff.init(jax.random.key(0), jnp.ones((1, 3, 4)))
    >>> ff.apply(params, jnp.ones((1, 3, 4))).shape
    (1, 3, 4)
    """

    hidden: int
    gated: bool = False
    use_bias: bool = True
    dtype: Any = None  # compute dtype; None: param_dtype
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: Array, resets: Array | None = None) -> Array:
        """Position-wise, so packed sequences (``resets``) need nothing: accepted as every block's is."""
        dense = lambda n: nn.Dense(n, use_bias=self.use_bias, dtype=self.dtype or self.param_dtype,  # noqa: E731
                                   param_dtype=self.param_dtype)
        h = nn.gelu(dense(self.hidden)(x))
        if self.gated:
            h = h * dense(self.hidden)(x)
        return dense(x.shape[-1])(h)

    def initial_state(self, batch_size: int) -> tuple[()]:
        return ()

    def step(self, state: tuple[()], x_t: Array) -> tuple[tuple[()], Array]:
        return state, self(x_t)

    def chunk(self, state: tuple[()], x: Array, resets: Array | None = None) -> tuple[tuple[()], Array]:
        return state, self(x)


NORMS = {"layer": nn.LayerNorm, "rms": nn.RMSNorm}


def make_norm(kind: str, **dtypes: Any) -> nn.Module:
    """``NORMS[kind](**dtypes)`` (``dtype``/``param_dtype``; Flax norms take their statistics in >= float32)."""
    check_choice("norm", kind, NORMS)
    return NORMS[kind](**dtypes)


class ResidualStack(nn.Module):
    """``blocks`` in pre-norm residual form with an input projection and a final norm."""

    blocks: Sequence[nn.Module]
    d_model: int
    norm: str = "layer"
    dropout: float = 0.0
    dtype: Any = None  # compute dtype; None: param_dtype
    param_dtype: Any = jnp.float32

    def setup(self) -> None:
        dtypes = dict(dtype=self.dtype or self.param_dtype, param_dtype=self.param_dtype)
        self.in_proj = nn.Dense(self.d_model, **dtypes)
        self.norms = [make_norm(self.norm, **dtypes) for _ in self.blocks]
        self.final_norm = make_norm(self.norm, **dtypes)
        self.drop = nn.Dropout(self.dropout)

    def _embed(self, x: Array) -> Array:
        return x.astype(self.dtype or self.param_dtype) if x.shape[-1] == self.d_model else self.in_proj(x)

    def __call__(
        self, x: Array, lengths: Array | None = None, *, deterministic: bool = True, resets: Array | None = None
    ) -> Array:
        """Causal: padding after ``lengths`` never reaches a valid step, so ``lengths`` is accepted and unused;
        ``resets`` go to every block."""
        x = self._embed(x)
        for norm, block in zip(self.norms, self.blocks):
            x = x + self.drop(block(norm(x), resets=resets), deterministic=deterministic)
        return self.final_norm(x)

    def initial_state(self, batch_size: int) -> list[Any]:
        return [block.initial_state(batch_size) for block in self.blocks]

    def step(self, state: list[Any], x_t: Array) -> tuple[list[Any], Array]:
        """One token (dropout off): ``x_t [batch, d_in] -> y_t [batch, d_model]``."""
        return self._thread(state, x_t, "step")

    def chunk(self, state: list[Any], x: Array, resets: Array | None = None) -> tuple[list[Any], Array]:
        """A chunk (dropout off) from the carried state: ``x [batch, T, d_in] -> y [batch, T, d_model]``."""
        return self._thread(state, x, "chunk", resets=resets)

    def _thread(self, state: list[Any], x: Array, form: str, **resets: Any) -> tuple[list[Any], Array]:
        """Each block's ``form`` (``"step"`` or ``"chunk"``, with ``resets``) in turn, threading its state through
        the residual."""
        x = self._embed(x)
        new_state = []
        for norm, block, s in zip(self.norms, self.blocks, state):
            s, y = getattr(block, form)(s, norm(x), **resets)
            x = x + y
            new_state.append(s)
        return new_state, self.final_norm(x)


SSM_PARAM_NAMES = frozenset({"log_dt", "Lambda_log_neg_re", "Lambda_im", "P", "B", "A_log"})


def named_param_labels(names: frozenset[str]) -> Callable[[Any], Any]:
    """A ``param_labels`` hook: each leaf of ``params`` replaced by ``"ssm"`` (its name in ``names``) or ``"default"``.

    >>> named_param_labels(frozenset({"nu_log"}))({"lru": {"nu_log": 0.0, "D": 1.0}})
    {'lru': {'nu_log': 'ssm', 'D': 'default'}}
    """

    def labels(params: Any) -> Any:
        flat = traverse_util.flatten_dict(params)
        return traverse_util.unflatten_dict({path: "ssm" if path[-1] in names else "default" for path in flat})

    return labels


ssm_param_labels = named_param_labels(SSM_PARAM_NAMES)  # S4, S4D, Mamba, S5
