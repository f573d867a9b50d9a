"""Flax modules for recurrent layers.

The modules declare parameters and call the pure functions of
:mod:`seqjax.cells` and :mod:`seqjax.cells.scan`; they hold no math of their own.

Every causal layer has two forms sharing one set of parameters:

* parallel: ``layer(x, lengths, resets=resets)`` over ``[batch, time, features]`` (``resets [batch, time]``:
  packed sequences, each restarting from the initial carry; :mod:`seqjax.cells.scan`);
* step: ``layer.step(state, x_t) -> (state, y_t)`` over ``[batch, features]``,
  with ``layer.initial_state(batch_size)`` as the first state;
* chunk: ``layer.chunk(state, x, resets=None) -> (state, y)``, the parallel form from a carried state.

Bidirectional layers have no step form and say so.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from seqjax.cells import ACTIVATIONS, make_cell, scan
from seqjax.cells.base import Cell
from seqjax.cells.gru import GRU_VARIANTS
from seqjax.cells.scan import BPTT_MODES, MERGE_MODES
from seqjax.errors import COUNT, DROPOUT, POSITIVE, StreamingError, check_fields, checked
from seqjax.models.precision import check_precision, compute_dtype, param_dtype
from seqjax.models.registry import register_backbone
from seqjax.ops.initializers import RECURRENT_INITS
from seqjax.typing import Array, Carry


def _cannot_stream(what: str) -> StreamingError:
    return StreamingError(
        f"{what} cannot stream one token at a time: its backward direction needs the whole future "
        "sequence; use a unidirectional (causal) model for streaming"
    )


class Recurrent(nn.Module):
    """One recurrent layer: ``cell`` run over time by :func:`seqjax.cells.scan.run`.

    Parameters: ``cell`` (the cell's own pytree) and, with ``learned_init``,
    ``initial_carry`` (one unbatched carry, broadcast over the batch).
    """

    cell: Cell
    reverse: bool = False
    unroll: int = 1
    remat: bool = False
    learned_init: bool = False
    bptt: str = "fused"

    def _learned_carry(self, param_dtype: Any) -> Carry:
        """The learned carry, stored in the cell parameters' dtype and used in the carry's (compute) dtype."""
        leaves, treedef = jax.tree.flatten(self.cell.initial_carry(()))
        stored = self.param(
            "initial_carry", lambda _: {f"c{i}": jnp.zeros(leaf.shape, param_dtype) for i, leaf in enumerate(leaves)}
        )
        return jax.tree.unflatten(treedef, [stored[f"c{i}"].astype(leaf.dtype) for i, leaf in enumerate(leaves)])

    @nn.compact
    def __call__(
        self,
        x: Array,
        lengths: Array | None = None,
        initial_carry: Carry | None = None,
        return_carry: bool = False,
        *,
        resets: Array | None = None,
    ) -> Array | tuple[Carry, Array]:
        """``y = scan(cell)(x)``: ``[batch, time, features] -> [batch, time, hidden]``; a reset restarts from the
        initial carry (zeros, or the learned one)."""
        if self.has_variable("params", "cell"):  # our one-line message, before Flax's param-shape check
            scan.check_inputs(self.cell, self.get_variable("params", "cell"), x, lengths, resets)
        params = self.param("cell", lambda key: self.cell.init(key, x.shape[-1]))
        fresh = None
        if self.learned_init:
            unbatched = self._learned_carry(jax.tree.leaves(params)[0].dtype)
            fresh = jax.tree.map(lambda c: jnp.broadcast_to(c, (x.shape[0], *c.shape)), unbatched)
        carry, y = scan.run(
            self.cell, params, x,
            lengths=lengths, resets=resets, initial_carry=fresh if initial_carry is None else initial_carry,
            reset_carry=fresh, reverse=self.reverse, unroll=self.unroll, remat=self.remat, bptt=self.bptt,
        )
        return (carry, y) if return_carry else y

    def initial_state(self, batch_size: int) -> Carry:
        """The carry before the first token: zeros, or the learned initial carry."""
        if not self.learned_init:
            return self.cell.initial_carry((batch_size,))
        stored = self.variables["params"]["initial_carry"]
        leaves, treedef = jax.tree.flatten(self.cell.initial_carry(()))
        return jax.tree.unflatten(
            treedef,
            [jnp.broadcast_to(stored[f"c{i}"].astype(l.dtype), (batch_size, *l.shape)) for i, l in enumerate(leaves)],
        )

    def step(self, state: Carry, x_t: Array) -> tuple[Carry, Array]:
        """One token: ``(c_{t-1}, x_t [batch, features]) -> (c_t, y_t [batch, hidden])``."""
        state, y = self.chunk(state, x_t[:, None, :])
        return state, y[:, 0]

    def chunk(self, state: Carry, x: Array, resets: Array | None = None) -> tuple[Carry, Array]:
        """A chunk from the carried state: ``(c_{t-1}, x [batch, T, features]) -> (c_{t+T-1}, y [batch, T, hidden])``."""
        if self.reverse:
            raise _cannot_stream("a reversed recurrent layer")
        return self(x, initial_carry=state, return_carry=True, resets=resets)


class Bidirectional(nn.Module):
    """A forward and a reversed :class:`Recurrent` over the same input, merged.

    ``y_t = merge(y_t^fwd, y_t^bwd)`` with merge ``"concat"`` (default),
    ``"sum"``, ``"mean"`` or a callable; the reversed pass respects ``lengths``.
    ``backward_cell`` defaults to ``cell`` (separate parameters either way).
    """

    cell: Cell
    backward_cell: Cell | None = None
    merge: str | Callable[[Array, Array], Array] = "concat"
    unroll: int = 1
    remat: bool = False
    learned_init: bool = False
    bptt: str = "fused"

    def setup(self) -> None:
        scan.check_merge(self.merge)
        options = dict(unroll=self.unroll, remat=self.remat, learned_init=self.learned_init, bptt=self.bptt)
        self.forward = Recurrent(self.cell, **options)
        self.backward = Recurrent(self.backward_cell or self.cell, reverse=True, **options)

    def __call__(
        self, x: Array, lengths: Array | None = None, return_carry: bool = False, *, resets: Array | None = None
    ) -> Array | tuple[tuple[Carry, Carry], Array]:
        c_f, y_f = self.forward(x, lengths, return_carry=True, resets=resets)
        c_b, y_b = self.backward(x, lengths, return_carry=True, resets=resets)
        y = scan.merge_masked(y_f, y_b, self.merge, lengths)
        return ((c_f, c_b), y) if return_carry else y

    def initial_state(self, batch_size: int) -> Any:
        raise _cannot_stream("a bidirectional layer")

    def step(self, state: Any, x_t: Array) -> Any:
        raise _cannot_stream("a bidirectional layer")

    def chunk(self, state: Any, x: Array, resets: Array | None = None) -> Any:
        raise _cannot_stream("a bidirectional layer")


class StackedRNN(nn.Module):
    """A stack of recurrent layers, ``h^{(l)} = layer_l(dropout(h^{(l-1)}))``.

    ``cells[l]`` sets layer ``l``'s cell and width (per-layer widths); dropout
    with rate ``dropout`` is applied between layers (not after the last).  With
    ``bidirectional`` each layer is a :class:`Bidirectional` merged by ``merge``.
    """

    cells: Sequence[Cell]
    bidirectional: bool = False
    merge: str | Callable[[Array, Array], Array] = "concat"
    dropout: float = 0.0
    unroll: int = 1
    remat: bool = False
    learned_init: bool = False
    bptt: str = "fused"

    def setup(self) -> None:
        if not self.cells:
            raise ValueError("StackedRNN needs at least one cell; give hidden_sizes a non-empty list")
        options = dict(unroll=self.unroll, remat=self.remat, learned_init=self.learned_init, bptt=self.bptt)
        if self.bidirectional:
            self.layers = [Bidirectional(c, merge=self.merge, **options) for c in self.cells]
        else:
            self.layers = [Recurrent(c, **options) for c in self.cells]
        self.drop = nn.Dropout(self.dropout)

    def __call__(
        self,
        x: Array,
        lengths: Array | None = None,
        *,
        deterministic: bool = True,
        return_carry: bool = False,
        resets: Array | None = None,
    ) -> Array | tuple[list[Carry], Array]:
        carries = []
        for i, layer in enumerate(self.layers):
            if i > 0 and self.dropout > 0.0:
                x = self.drop(x, deterministic=deterministic)
            carry, x = layer(x, lengths, return_carry=True, resets=resets)
            carries.append(carry)
        return (carries, x) if return_carry else x

    def initial_state(self, batch_size: int) -> list[Carry]:
        if self.bidirectional:
            raise _cannot_stream("a bidirectional stack")
        return [layer.initial_state(batch_size) for layer in self.layers]

    def step(self, state: list[Carry], x_t: Array) -> tuple[list[Carry], Array]:
        """One token through every layer (dropout off): ``x_t [batch, features] -> y_t``."""
        return self._thread(state, x_t, "step")

    def chunk(self, state: list[Carry], x: Array, resets: Array | None = None) -> tuple[list[Carry], Array]:
        """A chunk through every layer (dropout off) from the carried state: ``x [batch, T, features] -> y``."""
        return self._thread(state, x, "chunk", resets=resets)

    def _thread(self, state: list[Carry], x: Array, form: str, **resets: Any) -> tuple[list[Carry], Array]:
        """Each layer's ``form`` (``"step"`` or ``"chunk"``, with ``resets``) in turn."""
        if self.bidirectional:
            raise _cannot_stream("a bidirectional stack")
        new_state = []
        for layer, carry in zip(self.layers, state):
            carry, x = getattr(layer, form)(carry, x, **resets)
            new_state.append(carry)
        return new_state, x


@dataclasses.dataclass
class RecurrentOptions:
    """Options of a recurrent stack.

    ``hidden_sizes`` gives per-layer widths; when it is unset, ``num_layers``
    layers of ``hidden_size`` are used.
    """

    hidden_size: int = checked(128, COUNT)
    num_layers: int = checked(1, COUNT)
    hidden_sizes: Optional[list[int]] = checked(None, COUNT)
    bidirectional: bool = False
    merge: str = checked("concat", choices=MERGE_MODES)
    dropout: float = checked(0.0, DROPOUT)
    learned_init: bool = False
    unroll: int = checked(1, COUNT)
    remat: bool = False
    bptt: str = checked("fused", choices=BPTT_MODES)  # or "autodiff" (JAX's transpose of the scan; supports jax.jvp)
    activation: str = checked("tanh", choices=ACTIVATIONS)  # rnn only
    forget_bias: float = 1.0  # lstm only
    variant: str = checked("reset_after", choices=GRU_VARIANTS)  # gru only: "reset_after" or "cho"
    recurrent_init: str = checked("orthogonal", choices=RECURRENT_INITS)
    spectral_norm: Optional[float] = checked(None, POSITIVE)  # sigma_max of each W_h block
    dtype: Optional[str] = None  # compute dtype (seqjax.models.precision); unset: param_dtype
    param_dtype: str = "float32"

    def __post_init__(self) -> None:
        check_fields(self, "recurrent model")
        check_precision("recurrent model", self)


_CELL_ONLY = {"rnn": ("activation",), "lstm": ("forget_bias",), "gru": ("variant",)}


def _build(name: str):
    def build(opts: RecurrentOptions) -> nn.Module:
        widths = list(opts.hidden_sizes) if opts.hidden_sizes else [opts.hidden_size] * opts.num_layers
        extra = {k: getattr(opts, k) for k in _CELL_ONLY[name]}
        cells = tuple(
            make_cell(name, w, recurrent=opts.recurrent_init, spectral_norm=opts.spectral_norm,
                      dtype=compute_dtype(opts), param_dtype=param_dtype(opts), **extra)
            for w in widths
        )
        return StackedRNN(
            cells=cells, bidirectional=opts.bidirectional, merge=opts.merge, dropout=opts.dropout,
            unroll=opts.unroll, remat=opts.remat, learned_init=opts.learned_init, bptt=opts.bptt,
        )

    return build


for _name in ("rnn", "lstm", "gru"):
    register_backbone(_name, RecurrentOptions, causal=lambda o: not o.bidirectional)(_build(_name))
