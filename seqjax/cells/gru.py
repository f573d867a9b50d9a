"""seqjax.cells.gru.gru."""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

from seqjax.cells.base import (
    Cell,
    _affine_input,
    _compose_step,
    _input_size,
    _zeros_carry,
    gate_weights,
    hidden_carry_bptt,
)
from seqjax.cells.fused_bptt import FusedBPTT
from seqjax.errors import check_choice
from seqjax.typing import Array, Params

GRU_VARIANTS = ("reset_after", "cho")


def gru_reset_after_update(params: Params, h: Array, xp: Array, dtype: Any) -> tuple[Array, Array, tuple[Array, ...]]:
    """The reset-after GRU update from ``xp = x W_x + b`` (blocks r, z, n), and the backward's residuals.

    .. math::
        r = σ(x_r + h W_{hr}), \\quad z = σ(x_z + h W_{hz}), \\quad
        n = \\tanh(x_n + r ⊙ (h W_{hn} + b_{hn})), \\quad h_t = (1 - z) ⊙ n + z ⊙ h
    """
    x_r, x_z, x_n = jnp.split(xp, 3, axis=-1)
    h_r, h_z, h_n = jnp.split(h @ params["w_h"].astype(dtype), 3, axis=-1)
    r, z = jax.nn.sigmoid(x_r + h_r), jax.nn.sigmoid(x_z + h_z)
    a = h_n + params["b_hn"].astype(dtype)
    n = jnp.tanh(x_n + r * a)
    h_new = (1.0 - z) * n + z * h
    return h_new, h_new, (r, z, n, a)


def gru_reset_after_bptt(input_proj: Callable[[Params, Array], Array], dtype: Any) -> FusedBPTT:
    """Reset-after GRU (blocks r, z, n), with ``a = W_{hn} h_{t-1} + b_{hn}``:

    .. math::
        \\bar z_t &= g \\odot (h_{t-1} - n), \\qquad \\bar n = g \\odot (1 - z_t) \\odot (1 - n^2) \\\\
        \\bar r &= \\bar n \\odot a\\, σ'_r, \\qquad \\bar{h}_{t-1}^{\\mathrm{direct}} = g \\odot z_t \\\\
        \\bar z^x &= [\\bar r,\\; \\bar z_t σ'_z,\\; \\bar n], \\qquad
        \\bar z^h = [\\bar r,\\; \\bar z_t σ'_z,\\; \\bar n \\odot r], \\qquad \\bar b_{hn} = \\bar n \\odot r
    """

    def forward(params, h, x):
        return gru_reset_after_update(params, h, input_proj(params, x), dtype)

    def backward(params, h_prev, residuals, d_h, d_y):
        r, z, n, a = residuals
        g = d_h + d_y
        d_n = g * (1.0 - z) * (1.0 - n * n)
        d_r = d_n * a * r * (1.0 - r)
        d_z = g * (h_prev - n) * z * (1.0 - z)
        d_a = d_n * r
        return g * z, (d_r, d_z, d_n), (None, None, d_a), {"b_hn": d_a}

    return hidden_carry_bptt(forward, backward)


def gru(
    hidden_size: int,
    *,
    variant: str = "reset_after",
    recurrent: str = "orthogonal",
    spectral_norm: float | None = None,
    dtype: Any = jnp.float32,
    param_dtype: Any = jnp.float32,
) -> Cell:
    """Gated recurrent unit, in two variants; blocks are ordered r, z, n.

    ``variant="cho"`` — the original equations (Cho et al. 2014, in the
    notation of Chung et al. 2014): the reset gate acts on ``h`` *before* the
    candidate's matmul.

    .. math::
        r_t &= \\sigma(W_{hr} h_{t-1} + W_{xr} x_t + b_r) \\\\
        z_t &= \\sigma(W_{hz} h_{t-1} + W_{xz} x_t + b_z) \\\\
        \\tilde h_t &= \\tanh(W_{hn} (r_t \\odot h_{t-1}) + W_{xn} x_t + b_n) \\\\
        h_t &= (1 - z_t) \\odot h_{t-1} + z_t \\odot \\tilde h_t

    ``variant="reset_after"`` (default) — the cuDNN / PyTorch ``nn.GRU`` / Flax
    ``GRUCell`` form: the reset gate multiplies the recurrent matmul's result,
    which has its own bias ``b_hn``, and ``z`` weighs the *old* state.

    .. math::
        n_t &= \\tanh(W_{xn} x_t + b_n + r_t \\odot (W_{hn} h_{t-1} + b_{hn})) \\\\
        h_t &= (1 - z_t) \\odot n_t + z_t \\odot h_{t-1}

    Both variants have the same parameter shapes but ``b_hn`` (reset-after only).
    """
    check_choice("GRU variant", variant, GRU_VARIANTS)
    weights = gate_weights(hidden_size, 3, recurrent=recurrent, spectral_norm=spectral_norm, param_dtype=param_dtype)
    H = hidden_size

    def init(key: Array, input_size: int) -> Params:
        params = weights(key, input_size)
        if variant == "reset_after":
            params["b_hn"] = jnp.zeros((H,), param_dtype)
        return params

    def recur_cho(params: Params, h: Array, xp: Array) -> tuple[Array, Array]:
        w_h = params["w_h"].astype(dtype)
        x_rz, x_n = xp[..., : 2 * H], xp[..., 2 * H :]
        r, z = jnp.split(jax.nn.sigmoid(x_rz + h @ w_h[:, : 2 * H]), 2, axis=-1)
        n = jnp.tanh(x_n + (r * h) @ w_h[:, 2 * H :])
        h = (1.0 - z) * h + z * n
        return h, h

    def recur_reset_after(params: Params, h: Array, xp: Array) -> tuple[Array, Array]:
        return gru_reset_after_update(params, h, xp, dtype)[:2]  # all three blocks' W_h h in one matmul

    input_proj = _affine_input(dtype)
    recur = recur_cho if variant == "cho" else recur_reset_after
    fused = gru_reset_after_bptt(input_proj, dtype) if variant == "reset_after" else None
    return Cell(init=init, initial_carry=_zeros_carry(H, dtype), input_proj=input_proj, recur=recur,
                step=_compose_step(input_proj, recur), input_size=_input_size, hidden_size=H, name="gru", bptt=fused)
