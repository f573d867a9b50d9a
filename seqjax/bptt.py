"""Backpropagation through time with the recurrent weight gradients batched over time.

For a cell whose ``recur`` is a :class:`~seqjax.cells.SplitRecur`,

.. math::  z_t = \\mathrm{combine}(x_p(x_t), \\; h_{t-1} W_h), \\qquad (c_t, y_t) = \\mathrm{post}(c_{t-1}, z_t),

:func:`run_split` runs the same forward scan as :func:`seqjax.scan.run` but
differentiates it by hand (``jax.custom_vjp``).  The forward pass keeps only
the carries ``c_t`` and pre-activations ``z_t``.  The backward scan, from the
last step to the first, carries ``(∂L/∂c_t, ∂L/∂θ_post)`` and per step computes

.. math::
    (\\bar c_{t-1}, \\bar z_t) &= \\mathrm{post}^{*}_{c_{t-1}, z_t}(\\bar c_t, \\bar y_t) \\\\
    \\bar h_{t-1} \\mathrel{+}= \\bar{(h W_h)}_t W_h^{\\top}

(one matmul) and stores ``z̄_t``.  The weight gradients then come from one
large matmul each over all ``T B`` rows instead of ``T`` small accumulations:

.. math::
    \\bar W_h = \\textstyle\\sum_t h_{t-1}^{\\top} \\bar{(h W_h)}_t, \\qquad
    (\\bar W_x, \\bar b, \\bar x) = x_p^{*}(\\bar{x_p}),

where ``combine*`` splits ``z̄`` into ``x̄_p`` and the matmul's cotangent.
Padded steps (``mask``) hold the carry and output zero in both directions.
Measured faster than JAX's automatic transpose of the scan on CPU (see
experiments/benchmarks/README.md); only reverse-mode differentiation is
defined (a ``custom_vjp``).
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

from seqjax.cells import Carry, Params, SplitRecur

Array = jax.Array


def _masked(new_c: Carry, y: Array, old_c: Carry, m_t: Array | None) -> tuple[Carry, Array]:
    """Hold the carry and zero the output where ``m_t[b]`` is false."""
    if m_t is None:
        return new_c, y

    def pick(n, o):
        return jnp.where(m_t.reshape(m_t.shape + (1,) * (n.ndim - 1)), n, o)

    return jax.tree.map(pick, new_c, old_c), jnp.where(m_t[:, None], y, jnp.zeros_like(y))


def _previous(carry0: Carry, carries: Carry, reverse: bool) -> Carry:
    """``c_{t-1}`` for every step ``t`` in scan order: the carries shifted by one, ``carry0`` first."""

    def shift(c0, cs):
        if reverse:
            return jnp.concatenate([cs[1:], c0[None]], axis=0)
        return jnp.concatenate([c0[None], cs[:-1]], axis=0)

    return jax.tree.map(shift, carry0, carries)


def _tree_add(a: Any, b: Any) -> Any:
    return jax.tree.map(jnp.add, a, b)


def run_split(
    split: SplitRecur,
    input_proj: Callable[[Params, Array], Array],
    params: Params,
    carry0: Carry,
    xs_t: Array,
    mask: Array | None,
    *,
    reverse: bool = False,
    unroll: int | bool = 1,
) -> tuple[Carry, Array]:
    """``(c_T, ys [T, B, H])`` of the time-major inputs ``xs_t [T, B, F]``, with the fused backward above."""

    def forward(params, carry0, xs_t, mask, save):
        def body(c, inputs):
            x_t, m_t = inputs
            z = split.combine(input_proj(params, x_t), split.matmul(params, split.hidden(c)))
            new_c, y = _masked(*split.post(params, c, z), c, m_t)
            return new_c, ((y, new_c, z) if save else y)

        return jax.lax.scan(body, carry0, (xs_t, mask), reverse=reverse, unroll=unroll)

    @jax.custom_vjp
    def fused(params, carry0, xs_t, mask):
        return forward(params, carry0, xs_t, mask, save=False)

    def fused_fwd(params, carry0, xs_t, mask):
        carry, (ys, carries, zs) = forward(params, carry0, xs_t, mask, save=True)
        return (carry, ys), (params, carry0, xs_t, mask, carries, zs)

    def fused_bwd(residuals, cotangents):
        params, carry0, xs_t, mask, carries, zs = residuals
        d_carry, d_ys = cotangents
        prev = _previous(carry0, carries, reverse)
        post_params = {k: params[k] for k in split.post_keys}
        h_prev = split.hidden(prev)  # [T, B, H]
        xp_like = jax.eval_shape(input_proj, params, xs_t[0])
        hw_like = jax.eval_shape(split.matmul, params, h_prev[0])
        combine_t = jax.linear_transpose(split.combine, xp_like, hw_like)  # z̄ -> (x̄p, h̄w)
        matmul_t = jax.linear_transpose(lambda h: split.matmul(params, h), h_prev[0])  # h̄w -> h̄

        def body(acc, inputs):
            d_c, d_post = acc
            c_prev, z, d_y, m_t = inputs

            def step(pp, c, z):
                return _masked(*split.post({**params, **pp}, c, z), c, m_t)

            _, vjp = jax.vjp(step, post_params, c_prev, z)
            d_pp, d_c_prev, d_z = vjp((d_c, d_y))
            (d_h,) = matmul_t(combine_t(d_z)[1])
            (d_c_via_h,) = jax.linear_transpose(split.hidden, c_prev)(d_h)
            return (_tree_add(d_c_prev, d_c_via_h), _tree_add(d_post, d_pp)), d_z

        zero_post = jax.tree.map(jnp.zeros_like, post_params)
        (d_carry0, d_post), d_zs = jax.lax.scan(
            body, (d_carry, zero_post), (prev, zs, d_ys, mask), reverse=not reverse, unroll=unroll
        )
        xp_all = jax.eval_shape(input_proj, params, xs_t)
        hw_all = jax.eval_shape(split.matmul, params, h_prev)
        d_xp, d_hw = jax.linear_transpose(split.combine, xp_all, hw_all)(d_zs)
        _, matmul_vjp = jax.vjp(lambda p: split.matmul(p, h_prev), params)  # one GEMM over T*B rows
        _, input_vjp = jax.vjp(input_proj, params, xs_t)  # W_x, b and x: one GEMM each
        d_params_in, d_xs_t = input_vjp(d_xp)
        d_params_post = {**jax.tree.map(jnp.zeros_like, params), **d_post}
        d_params = _tree_add(_tree_add(d_params_in, matmul_vjp(d_hw)[0]), d_params_post)
        return d_params, d_carry0, d_xs_t, None

    fused.defvjp(fused_fwd, fused_bwd)
    return fused(params, carry0, xs_t, mask)
