"""Backpropagation through time with hand-derived cell gradients and weight gradients batched over time.

A cell whose gate pre-activations are affine in the input and linear in the
previous hidden state,

.. math::  z^x_t = x_t W_x + b, \\qquad z^h_t = h_{t-1} W_h, \\qquad
           (c_t, y_t) = \\mathrm{post}(c_{t-1}, z^x_t, z^h_t),

(each ``z`` split into ``G`` gate blocks of width ``H``) can describe its
backward pass as a :class:`FusedBPTT`.  :func:`run_fused` then runs the same
forward scan as :func:`seqjax.cells.scan.run`, saving only ``h_{t-1}`` and the
residuals the cell asks for, and differentiates it by hand (``jax.custom_vjp``).
The backward scan, from the last step to the first, carries ``∂L/∂c_t`` and per
step computes

.. math::
    (\\overline{c}^{\\,\\mathrm{direct}}_{t-1}, \\overline{z^x_t}, \\overline{z^h_t})
        &= \\mathrm{post}^{*}(\\overline{c}_t, \\overline{y}_t) \\\\
    \\overline{h}_{t-1} &\\mathrel{+}= \\textstyle\\sum_g \\overline{z^h_{t,g}} \\, W_{h,g}^{\\top}

and stores the ``\\overline{z}`` blocks.  The weight gradients then come from one
GEMM per gate block over all ``T·B`` rows, instead of ``T`` small rank-``B``
updates accumulated inside the loop (what JAX's automatic transpose of the scan
does):

.. math::
    \\overline{W_h} = [H_{\\mathrm{prev}}^{\\top} \\overline{Z^h_g}]_g, \\quad
    \\overline{W_x} = [X^{\\top} \\overline{Z^x_g}]_g, \\quad
    \\overline{b} = [\\textstyle\\sum_{t,b} \\overline{Z^x_g}]_g, \\quad
    \\overline{X} = \\textstyle\\sum_g \\overline{Z^x_g} W_{x,g}^{\\top}.

Gate blocks are kept as separate ``[B, H]`` arrays throughout: XLA:CPU runs an
elementwise fusion that reads several slices of one ``[B, G·H]`` buffer up to
~7x slower than one reading separate buffers (measured; see
``experiments/benchmarks/README.md``).  Padded steps (``mask``) hold the carry
and output zero, so there the carry's gradient passes straight through and the
step's ``\\overline{z}`` is zero.  A restart (``restart``: a packed sequence begins)
feeds the step ``c_0`` (``fresh``) instead of ``c_{t-1}``, so there the step's carry gradient goes to
``fresh`` and none flows on to ``c_{t-1}``:

.. math::
    \\overline{c}_{t-1} = [\\neg r_t]\\, \\overline{c}^{\\,\\mathrm{in}}_t, \\qquad
    \\overline{c_0} \\mathrel{+}= [r_t]\\, \\overline{c}^{\\,\\mathrm{in}}_t.

Only reverse mode is defined (a
``custom_vjp``); :func:`seqjax.cells.scan.run` with ``bptt="autodiff"`` differentiates
the plain scan instead, forward mode included.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from seqjax.ops.masking import hold_where, restart_where, zero_where_padded
from seqjax.typing import Array, Carry, Params

Blocks = tuple[Array, ...]


class FusedBPTT(NamedTuple):
    """A cell's hand-derived step gradients, for :func:`run_fused`.

    Attributes:
      forward: ``(params, c_{t-1}, x_t) -> (c_t, y_t, residuals)``: the cell's
        step, also returning the arrays its backward needs (a tuple).
      backward: ``(params, h_{t-1}, residuals, c̄_t, ȳ_t) -> (c̄_{t-1}^direct,
        z̄^x, z̄^h, p̄)``: the step's vector-Jacobian product, except the path
        through ``h_{t-1} W_h``.  ``z̄^x`` is a tuple of ``G`` blocks
        ``[B, H]``; ``z̄^h`` has one entry per block, ``None`` where it equals
        ``z̄^x``'s; ``p̄`` maps the names of other parameters (not ``w_x``,
        ``w_h``, ``b``) to per-example gradients ``[B, ...]``.
      hidden: ``carry -> h``.
      add_hidden: ``(c̄, h̄) -> c̄`` with ``h̄`` added to the hidden part.
    """

    forward: Callable[[Params, Carry, Array], tuple[Carry, Array, tuple[Array, ...]]]
    backward: Callable[..., tuple[Carry, Blocks, tuple[Array | None, ...], dict[str, Array]]]
    hidden: Callable[[Carry], Array]
    add_hidden: Callable[[Carry, Array], Carry]


def by_name(params: Any) -> Params:
    """A cell's parameters as a plain ``dict`` by name, from any mapping (``dict``, Flax's ``FrozenDict``) or NamedTuple.

    :func:`run_fused` calls this *outside* its ``custom_vjp``, so the hand-written
    backward only ever sees and returns plain dicts, and JAX's own transpose of
    this restructuring gives the caller cotangents in exactly the container it
    passed (values may themselves be nested pytrees).
    """
    if isinstance(params, Mapping):
        return dict(params)
    if isinstance(params, tuple) and hasattr(params, "_asdict"):
        return dict(params._asdict())
    raise TypeError(
        f"the fused backward needs the cell's parameters as a mapping or NamedTuple of arrays by name "
        f"(w_x, w_h, b, ...), got {type(params).__name__}"
    )


def _blocks(w: Array, n: int) -> list[Array]:
    return jnp.split(w, n, axis=-1)


def run_fused(
    fused: FusedBPTT,
    params: Params,
    carry0: Carry,
    xs_t: Array,
    mask: Array | None,
    *,
    restart: Array | None = None,
    fresh: Carry | None = None,
    reverse: bool = False,
    unroll: int | bool = 1,
) -> tuple[Carry, Array]:
    """``(c_T, ys [T, B, H])`` of the time-major inputs ``xs_t [T, B, F]``, with the backward pass above.

    ``mask [T, B]`` (or None) marks valid steps; ``restart [T, B]`` (or None; only where valid) the steps
    that start from ``fresh`` (a carry like ``carry0``) instead of the previous carry; ``reverse`` scans
    ``T-1..0``. The forward values equal :func:`seqjax.cells.scan.run`'s.
    """

    def forward(params, carry0, xs_t, mask, restart, fresh, save):
        def body(c, inputs):
            x_t, m_t, r_t = inputs
            c_in = restart_where(r_t, fresh, c)
            new_c, y, residuals = fused.forward(params, c_in, x_t)
            new_c, y = hold_where(m_t, new_c, c), zero_where_padded(m_t, y)
            return new_c, ((y, fused.hidden(c_in), residuals) if save else y)

        return jax.lax.scan(body, carry0, (xs_t, mask, restart), reverse=reverse, unroll=unroll)

    @jax.custom_vjp
    def fused_scan(params, carry0, xs_t, mask, restart, fresh):
        return forward(params, carry0, xs_t, mask, restart, fresh, save=False)

    def fused_fwd(params, carry0, xs_t, mask, restart, fresh):
        carry, (ys, h_prev, residuals) = forward(params, carry0, xs_t, mask, restart, fresh, save=True)
        return (carry, ys), (params, xs_t, mask, restart, fresh, h_prev, residuals)

    def fused_bwd(saved, cotangents):
        params, xs_t, mask, restart, fresh, h_prev, residuals = saved
        d_carry, d_ys = cotangents
        n_blocks = params["w_h"].shape[-1] // h_prev.shape[-1]
        w_h_t = [w.T for w in _blocks(params["w_h"].astype(d_ys.dtype), n_blocks)]

        # The static pattern: which z̄^h blocks are their own, and the other parameters' gradient shapes.
        shapes = jax.eval_shape(
            fused.backward, params, h_prev[0], jax.tree.map(lambda r: r[0], residuals), d_carry, d_ys[0]
        )
        own = [h is not None for h in shapes[2]]

        def with_shared(dzx, dzh_own):
            it = iter(dzh_own)
            return [next(it) if o else x for x, o in zip(dzx, own)]

        def body(acc, inputs):
            d_c, d_other, d_fresh = acc
            h_prev_t, res_t, d_y, m_t, r_t = inputs
            d_c_prev, dzx, dzh, d_p = fused.backward(params, h_prev_t, res_t, d_c, d_y)
            dzh_own = tuple(h for h in dzh if h is not None)
            dzx, dzh_own, d_p = zero_where_padded(m_t, (dzx, dzh_own, d_p))
            d_h = sum(d @ w for d, w in zip(with_shared(dzx, dzh_own), w_h_t))
            d_c_prev = hold_where(m_t, fused.add_hidden(d_c_prev, d_h), d_c)
            if r_t is not None:  # a restart: the step read fresh, not c_{t-1}
                d_fresh = jax.tree.map(jnp.add, d_fresh, zero_where_padded(r_t, d_c_prev))
                d_c_prev = zero_where_padded(~r_t, d_c_prev)
            d_other = jax.tree.map(lambda a, g: a + g.sum(axis=0), d_other, d_p)
            return (d_c_prev, d_other, d_fresh), (dzx, dzh_own)

        zero_other = {k: jnp.zeros(v.shape[1:], v.dtype) for k, v in shapes[3].items()}
        zero_fresh = None if fresh is None else jax.tree.map(jnp.zeros_like, d_carry)
        (d_carry0, d_other, d_fresh), (dzx, dzh_own) = jax.lax.scan(
            body, (d_carry, zero_other, zero_fresh), (h_prev, residuals, d_ys, mask, restart),
            reverse=not reverse, unroll=unroll,
        )
        dzh = with_shared(dzx, dzh_own)
        rows = lambda a: a.reshape(-1, a.shape[-1])  # noqa: E731  [T, B, F] -> [T·B, F]
        x_rows, h_rows = rows(xs_t.astype(d_ys.dtype)), rows(h_prev)
        grads = {
            "w_x": jnp.concatenate([x_rows.T @ rows(d) for d in dzx], axis=-1),
            "w_h": jnp.concatenate([h_rows.T @ rows(d) for d in dzh], axis=-1),
            "b": jnp.concatenate([rows(d).sum(axis=0) for d in dzx], axis=-1),
            **d_other,
        }
        w_x = _blocks(params["w_x"].astype(d_ys.dtype), n_blocks)
        d_xs = sum(d @ w.T for d, w in zip(dzx, w_x)).astype(xs_t.dtype)
        d_params = {
            k: jax.tree.map(lambda g, p: g.astype(p.dtype), grads[k], v) if k in grads
            else jax.tree.map(jnp.zeros_like, v)
            for k, v in params.items()
        }
        d_fresh = None if fresh is None else jax.tree.map(lambda g, f: g.astype(f.dtype), d_fresh, fresh)
        return d_params, d_carry0, d_xs, None, None, d_fresh

    fused_scan.defvjp(fused_fwd, fused_bwd)
    return fused_scan(by_name(params), carry0, xs_t, mask, restart, fresh)
