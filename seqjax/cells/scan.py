"""Drive a :class:`~seqjax.cells.base.Cell` over time with ``jax.lax.scan``.

Public layout is ``[batch, time, features]``; time is the scan axis inside.
On accelerators the input projection ``input_proj`` is hoisted out of the loop
(one matmul for all time steps) and only ``recur`` runs under the scan.  On CPU
the whole ``step`` runs under the scan instead: materialising ``xp
[time, batch, G*hidden]`` costs more in memory traffic than the large matmul
saves (measured 2-3x slower forward passes; see experiments/benchmarks/README.md).
There, gradients of the RNN, LSTM and reset-after GRU come from a hand-derived
backward pass (:mod:`seqjax.cells.fused_bptt`) that batches the weight gradients over time:
the same values as autodiff of the scan, measured 1.0-2.3x faster train steps.

Variable-length batches: with ``lengths[b] = L_b``, positions ``t >= L_b`` are
padding.  At a padded step the carry is held (``c_t = c_{t-1}``) and the output
is zero, so the returned carry is the one after each example's last valid step.
``reverse=True`` scans ``t = T-1, ..., 0``; padding sits at the *end* of each
row, so the reversed pass holds the initial carry through the padding and then
reads ``x_{L_b-1}, ..., x_0`` — exactly the unpadded example reversed, with
outputs left at their original positions.

Packed batches: with ``resets[b, t] = True`` at the first token of each packed sequence, the carry is
replaced by the fresh carry ``c_0`` (``cell.initial_carry``, or ``reset_carry``) before that step, so each
sequence runs as if alone.  Reversed, a sequence starts at its *last* token, the one before the next
reset: there the reversed pass restarts (``restart_t = resets_{t+1}``).  Resets in the padding
(``t >= lengths[b]``) are ignored.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from seqjax.cells.base import Cell
from seqjax.cells.fused_bptt import run_fused
from seqjax.errors import check_choice
from seqjax.ops.masking import hold_where, length_mask, restart_where, zero_where_padded
from seqjax.typing import Array, Carry, Params

MERGE_MODES = ("concat", "sum", "mean")


BPTT_MODES = ("fused", "autodiff")


def _is_concrete(x: Any) -> bool:
    return not isinstance(x, jax.core.Tracer)


def check_inputs(
    cell: Cell, params: Params, xs: Array, lengths: Array | None, resets: Array | None = None
) -> None:
    """Raise a one-line ``ValueError`` when ``xs``, ``lengths`` or ``resets`` do not fit."""
    if xs.ndim != 3:
        raise ValueError(
            f"expected inputs of shape [batch, time, features], got rank {xs.ndim} shape {tuple(xs.shape)}; "
            "add a batch axis with x[None] or a feature axis with x[..., None]"
        )
    want = cell.input_size(params)
    if xs.shape[-1] != want:
        raise ValueError(
            f"input feature size {xs.shape[-1]} does not match the {cell.name} cell's input size {want}; "
            "re-initialise the parameters for this input or fix the data"
        )
    if resets is not None and tuple(resets.shape) != tuple(xs.shape[:2]):
        raise ValueError(
            f"resets must have shape [batch, time] = {tuple(xs.shape[:2])}, got {tuple(resets.shape)}"
        )
    if lengths is None:
        return
    if lengths.shape != xs.shape[:1]:
        raise ValueError(
            f"lengths must have shape [batch] = {tuple(xs.shape[:1])}, got {tuple(lengths.shape)}"
        )
    if _is_concrete(lengths):
        lengths_np = np.asarray(lengths)
        if lengths_np.size and (lengths_np.max() > xs.shape[1] or lengths_np.min() < 0):
            raise ValueError(
                f"lengths must lie in [0, {xs.shape[1]}] (the time axis), got min {lengths_np.min()} "
                f"max {lengths_np.max()}; pad the inputs to the longest sequence"
            )


def hoist_input_projection() -> bool:
    """Whether :func:`run` projects all inputs before the scan: on accelerators, not on CPU (measured)."""
    return jax.default_backend() != "cpu"


# forward: restart_t = resets_t;  reverse: restart_t = resets_{t+1} (a sequence's last token), 0 at t = T-1
def restarts(resets: Array, valid: Array | None, reverse: bool) -> Array:
    """Time-major ``[T, B]`` steps that start from the fresh carry, given ``resets [B, T]`` and ``valid [B, T]``.

    >>> restarts(jnp.array([[True, False, True, False]]), None, reverse=True)[:, 0]
    Array([False,  True, False, False], dtype=bool)
    """
    r = jnp.asarray(resets, bool)
    if valid is not None:
        r = r & valid
    if reverse:
        r = jnp.concatenate([r[:, 1:], jnp.zeros_like(r[:, :1])], axis=1)
    return r.T


def run(
    cell: Cell,
    params: Params,
    xs: Array,
    *,
    lengths: Array | None = None,
    resets: Array | None = None,
    initial_carry: Carry | None = None,
    reset_carry: Carry | None = None,
    reverse: bool = False,
    unroll: int | bool = 1,
    remat: bool = False,
    return_carries: bool = False,
    bptt: str = "fused",
) -> tuple[Carry, Array] | tuple[Carry, Array, Carry]:
    """Run ``cell`` over ``xs`` (``[batch, time, features]``).

    Computes ``c_t, y_t = cell.recur(params, c_{t-1}, xp_t)`` with
    ``xp_t = cell.input_proj(params, x_t)`` for ``t = 0..T-1`` (or ``T-1..0`` when
    ``reverse``), holding the carry and zeroing the output where
    ``t >= lengths[b]``, and restarting from ``reset_carry`` at packed sequences' starts
    (``resets``; module docstring).  ``xp`` is computed for all steps before the scan
    where :func:`hoist_input_projection` says so, else inside it by ``cell.step``;
    there, with ``bptt="fused"`` and a cell that has a hand-derived backward
    (``cell.bptt``: RNN, LSTM, reset-after GRU), gradients come from
    :func:`seqjax.cells.fused_bptt.run_fused` (measured faster than autodiff; the values are
    the same), unless ``remat`` or ``return_carries`` is set.

    Args:
      cell: the cell.
      params: its parameters.
      xs: inputs ``[batch, time, features]``.
      lengths: optional ``[batch]`` integer valid lengths (padding at the end).
      resets: optional ``[batch, time]`` booleans, ``True`` at the first token of each packed
        sequence; a reset at ``t = 0`` (forward) drops ``initial_carry``.
      initial_carry: default ``cell.initial_carry((batch,))``.
      reset_carry: the carry a reset restarts from; default ``cell.initial_carry((batch,))``.
      reverse: scan from the last valid step to the first.
      unroll: passed to ``jax.lax.scan``.
      remat: wrap the step in ``jax.checkpoint``: the backward pass recomputes
        each step's gates instead of storing them, cutting BPTT memory.
      return_carries: also return every step's carry, ``[batch, time, ...]``.
      bptt: ``"fused"`` (default) or ``"autodiff"``: JAX's own transpose of the
        scan, which also supports forward-mode differentiation (``jax.jvp``).

    Returns:
      ``(final_carry, ys)`` with ``ys`` ``[batch, time, hidden]``, or
      ``(final_carry, ys, carries)`` when ``return_carries``.

    >>> import jax, jax.numpy as jnp
    >>> from seqjax import make_cell, scan
    >>> cell = make_cell("lstm", 16)
    >>> params = cell.init(jax.random.key(0), 3)
    >>> carry, ys = scan.run(cell, params, jnp.ones((2, 5, 3)), lengths=jnp.array([5, 2]))
    >>> ys.shape, carry.h.shape
    ((2, 5, 16), (2, 16))
    >>> bool(jnp.all(ys[1, 2:] == 0))  # zero past the second sequence's end ...
    True
    >>> short, _ = scan.run(cell, params, jnp.ones((2, 2, 3)))
    >>> bool(jnp.allclose(carry.h[1], short.h[1]))  # ... whose state is held from its last real step
    True
    >>> xs = jax.random.normal(jax.random.key(1), (1, 5, 3))
    >>> _, packed = scan.run(cell, params, xs, resets=jnp.array([[True, False, True, False, False]]))
    >>> _, alone = scan.run(cell, params, xs[:, 2:])  # the second packed sequence, run alone
    >>> bool(jnp.allclose(packed[:, 2:], alone, atol=1e-6))
    True
    """
    check_choice("bptt", bptt, BPTT_MODES)
    lengths = None if lengths is None else jnp.asarray(lengths)
    resets = None if resets is None else jnp.asarray(resets)
    check_inputs(cell, params, xs, lengths, resets)
    batch, time = xs.shape[:2]
    carry = cell.initial_carry((batch,)) if initial_carry is None else initial_carry
    xs_t = jnp.swapaxes(xs, 0, 1)  # [T, B, F]: transpose the narrower input, not the projection
    valid = None if lengths is None else length_mask(lengths, time)
    mask = None if valid is None else valid.T  # [T, B]
    restart = None if resets is None else restarts(resets, valid, reverse)  # [T, B]
    fresh = None if resets is None else cell.initial_carry((batch,)) if reset_carry is None else reset_carry
    hoist = hoist_input_projection()
    if bptt == "fused" and cell.bptt is not None and not (hoist or remat or return_carries):
        carry, ys = run_fused(cell.bptt, params, carry, xs_t, mask, restart=restart, fresh=fresh, reverse=reverse,
                              unroll=unroll)
        return carry, jnp.swapaxes(ys, 0, 1)
    if hoist:
        xs_t, update = cell.input_proj(params, xs_t), cell.recur  # xp [T, B, G*H]
    else:
        update = cell.step

    def body(c, inputs):
        x_t, m_t, r_t = inputs
        new_c, y = update(params, restart_where(r_t, fresh, c), x_t)
        new_c, y = hold_where(m_t, new_c, c), zero_where_padded(m_t, y)
        return new_c, ((y, new_c) if return_carries else y)

    if remat:
        body = jax.checkpoint(body)
    carry, out = jax.lax.scan(body, carry, (xs_t, mask, restart), reverse=reverse, unroll=unroll)
    to_batch_major = lambda a: jnp.swapaxes(a, 0, 1)  # noqa: E731
    if return_carries:
        ys, carries = out
        return carry, to_batch_major(ys), jax.tree.map(to_batch_major, carries)
    return carry, to_batch_major(out)


def check_merge(merge: str | Callable[[Array, Array], Array]) -> None:
    """Raise a one-line ``UserError`` for an unknown merge mode (a callable merges itself)."""
    if not callable(merge):
        check_choice("merge mode", merge, MERGE_MODES)


def merge_directions(
    y_fwd: Array, y_bwd: Array, merge: str | Callable[[Array, Array], Array] = "concat"
) -> Array:
    """Merge forward and backward outputs: ``[y_f; y_b]``, ``y_f + y_b``, ``(y_f + y_b)/2`` or ``merge(y_f, y_b)``."""
    check_merge(merge)
    if callable(merge):
        return merge(y_fwd, y_bwd)
    if merge == "concat":
        return jnp.concatenate([y_fwd, y_bwd], axis=-1)
    if merge == "sum":
        return y_fwd + y_bwd
    return 0.5 * (y_fwd + y_bwd)


def bidirectional(
    cell_fwd: Cell,
    params_fwd: Params,
    cell_bwd: Cell,
    params_bwd: Params,
    xs: Array,
    *,
    lengths: Array | None = None,
    resets: Array | None = None,
    merge: str | Callable[[Array, Array], Array] = "concat",
    **scan_options: Any,
) -> tuple[tuple[Carry, Carry], Array]:
    """Run a forward and a (length- and reset-respecting) reversed pass and merge their outputs.

    Returns ``((carry_fwd, carry_bwd), y)``; ``carry_bwd`` is the backward
    pass's state after reading ``x_0``.  Padded positions of ``y`` are zero.

    >>> import jax, jax.numpy as jnp
    >>> from seqjax import make_cell
    >>> fwd, bwd = make_cell("gru", 8), make_cell("gru", 8)
    >>> p_f, p_b = fwd.init(jax.random.key(0), 3), bwd.init(jax.random.key(1), 3)
    >>> _, y = bidirectional(fwd, p_f, bwd, p_b, jnp.ones((2, 5, 3)), lengths=jnp.array([5, 2]))
    >>> y.shape  # "concat": [forward, backward] features
    (2, 5, 16)
    """
    c_f, y_f = run(cell_fwd, params_fwd, xs, lengths=lengths, resets=resets, **scan_options)
    c_b, y_b = run(cell_bwd, params_bwd, xs, lengths=lengths, resets=resets, reverse=True, **scan_options)
    return (c_f, c_b), merge_masked(y_f, y_b, merge, lengths)


def merge_masked(
    y_fwd: Array, y_bwd: Array, merge: str | Callable[[Array, Array], Array], lengths: Array | None
) -> Array:
    """:func:`merge_directions`, with padded positions (``t >= lengths[b]``) set to zero."""
    y = merge_directions(y_fwd, y_bwd, merge)
    if lengths is None:
        return y
    return jnp.where(length_mask(lengths, y.shape[1])[:, :, None], y, jnp.zeros_like(y))
