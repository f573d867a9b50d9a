"""A streaming session on a trained model: the step and chunk forms of a run directory's causal model.

``session = seqjax.load(run_dir)`` restores the run's best checkpoint (or ``step=``'s) and gives::

    state = session.init_state(batch)          # the model's state before the first token
    state, y_t = session.step(state, x_t)      # one token  x_t [batch] (ids) or [batch, d_in] -> y_t [batch, d_out]
    state, ys = session.chunk(state, xs)       # a chunk    xs [batch, T(, d_in)] -> ys [batch, T, d_out]

``step`` and ``chunk`` carry one state, so they mix freely: a prompt can be prefilled by one ``chunk`` and
the stream go on token by token.  ``y_t`` is the head read out at step ``t`` (for a last-step task: the
prediction were the sequence to end there), and the concatenated outputs equal the parallel form's
(``tests/test_streaming.py``).  Each function is ``jax.jit``-compiled once per input shape.  A
non-causal (bidirectional) model is refused in one line; so is a workload that is not ``supervised``.

The state's size is fixed by the model, not by the stream's length: a recurrent carry, a TCN's ring
buffers, an SSM's hidden state, or a Transformer's KV cache of ``max_len`` positions (``capacity``:
a Transformer cannot stream past it).

>>> import jax.numpy as jnp
>>> from seqjax.models.registry import build_backbone, get_backbone
>>> from seqjax.models.sequence_model import PerStepHead, SequenceModel
>>> model = SequenceModel(build_backbone("lstm", get_backbone("lstm").options(hidden_size=8)), PerStepHead(2))
>>> session = Session.create(model, jnp.zeros((1, 1, 3)))
>>> state = session.init_state(1)
>>> state, y = session.step(state, jnp.ones((1, 3)))
>>> state, ys = session.chunk(state, jnp.ones((1, 5, 3)))
>>> y.shape, ys.shape, state_bytes(state)  # two float32 [1, 8] arrays: h and c
((1, 2), (1, 5, 2), 64)
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from seqjax.errors import StreamingError, UserError
from seqjax.experiment.config import load_config
from seqjax.experiment.evaluate import restore_trained
from seqjax.experiment.schema import options_of
from seqjax.models.registry import get_backbone, is_causal
from seqjax.models.sequence_model import SequenceModel
from seqjax.typing import Array, Params


def state_bytes(state: Any) -> int:
    """The bytes of every leaf of a state pytree (arrays or ``jax.ShapeDtypeStruct``)."""
    return sum(int(np.prod(x.shape)) * jnp.dtype(x.dtype).itemsize for x in jax.tree.leaves(state))


@dataclasses.dataclass(frozen=True)
class Session:
    """A :class:`~seqjax.models.sequence_model.SequenceModel` and its parameters, streamed (see the module docstring).

    ``vocab`` is set for token inputs (ids in ``[0, vocab)``), ``input_dim`` for feature vectors;
    ``kind`` is the task kind the head was trained for; ``capacity`` the most tokens the state holds
    (``None``: unbounded); ``step_number`` the checkpoint's training step.
    """

    model: SequenceModel
    params: Params
    input_dim: int
    kind: str = "classify_steps"
    capacity: int | None = None
    step_number: int | None = None
    _jitted: dict = dataclasses.field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def create(cls, model: SequenceModel, example: Array, key: jax.Array | None = None, **fields: Any) -> "Session":
        """A session on fresh parameters ``model.init(key, example)`` (for tests and examples)."""
        params = model.init(jax.random.key(0) if key is None else key, example)["params"]
        return cls.of(model, params, **{"input_dim": example.shape[-1] if model.vocab is None else 1, **fields})

    @classmethod
    def of(cls, model: SequenceModel, params: Params, **fields: Any) -> "Session":
        """A session on ``params``; a one-line :class:`UserError` when the backbone cannot stream."""
        try:
            jax.eval_shape(lambda p: model.apply({"params": p}, 1, method=model.initial_state), params)
        except StreamingError as e:
            raise UserError(f"this model cannot stream: {e}") from None
        return cls(model=model, params=params, capacity=getattr(model.backbone, "max_len", None), **fields)

    @property
    def vocab(self) -> int | None:
        return self.model.vocab

    def _fn(self, method: str) -> Any:
        if method not in self._jitted:
            form = getattr(SequenceModel, method)
            self._jitted[method] = jax.jit(lambda params, *args: self.model.apply({"params": params}, *args,
                                                                                  method=form),
                                           static_argnums=(1,) if method == "initial_state" else ())
        return self._jitted[method]

    def init_state(self, batch: int = 1) -> Any:
        """The state before the first token, for ``batch`` streams."""
        return self._fn("initial_state")(self.params, batch)

    def step(self, state: Any, x_t: Array) -> tuple[Any, Array]:
        """One token: ``x_t [batch]`` (ids) or ``[batch, d_in]`` -> ``(state, y_t [batch, d_out])``."""
        self._check_room(state, 1)
        return self._fn("step")(self.params, state, self._inputs(x_t, 1))

    def chunk(self, state: Any, xs: Array) -> tuple[Any, Array]:
        """A chunk of any length in the parallel form: ``xs [batch, T]`` or ``[batch, T, d_in]`` ->
        ``(state, ys [batch, T, d_out])``."""
        self._check_room(state, jnp.shape(xs)[1])
        return self._fn("chunk")(self.params, state, self._inputs(xs, 2))

    def _check_room(self, state: Any, tokens: int) -> None:
        """A state of bounded capacity (a KV cache) refuses, in one line, a token that would not fit."""
        check = getattr(self.model.backbone, "check_room", None)
        if check is not None:
            try:
                check(state, tokens)
            except StreamingError as e:
                raise UserError(f"cannot stream further: {e}") from None

    def _inputs(self, x: Any, rank: int) -> Array:
        """``x`` as ids (int32, rank ``rank``) or features (float, rank ``rank + 1``); one-line errors otherwise."""
        x = jnp.asarray(x)
        if self.vocab is not None:
            if x.ndim != rank or not jnp.issubdtype(x.dtype, jnp.integer):
                raise UserError(f"this model reads token ids: expected integers of rank {rank}, got {x.dtype} "
                                f"of shape {tuple(x.shape)}")
            return x.astype(jnp.int32)
        if x.ndim != rank + 1 or x.shape[-1] != self.input_dim:
            raise UserError(f"this model reads feature vectors of size {self.input_dim}: expected rank "
                            f"{rank + 1} with last axis {self.input_dim}, got shape {tuple(x.shape)}")
        return x.astype(jnp.promote_types(self.model.param_dtype, jnp.float32))


def load(run_dir: str, step: int | None = None) -> Session:
    """A :class:`Session` on ``run_dir``'s best checkpoint (by the validation metric), or on ``step``'s.

    A one-line :class:`UserError` for a run that is not a ``supervised`` workload or whose model is
    not causal (a bidirectional stack, an encoder Transformer): it cannot run left to right.
    """
    cfg = load_config(run_dir)
    if cfg.workload != "supervised":
        raise UserError(f"{run_dir}: streaming needs a backbone-and-head model (workload 'supervised'), "
                        f"this run is a {cfg.workload!r} workload")
    name = cfg.model.name
    opts = options_of(cfg.model, get_backbone(name).options)
    if not is_causal(name, opts):
        raise UserError(f"{run_dir}: model {name!r} is not causal (bidirectional or an encoder): it cannot stream "
                        "left to right; train a causal one (model.bidirectional=false, model.causal=true)")
    trainer, step, state = restore_trained(cfg, step)
    task = trainer.workload.task
    params = jax.device_get(state.params)
    return Session.of(trainer.workload.model, params, input_dim=task.input_dim, kind=task.kind, step_number=step)
