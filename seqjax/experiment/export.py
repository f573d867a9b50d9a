"""Export a streaming session's step (and chunk) function as serialized StableHLO (``jax.export``).

``seqjax export RUN_DIR OUT [--chunk N]`` writes into ``OUT``:

* ``step.stablehlo``: ``(params, state, x_t) -> (state, y_t)``, and with ``--chunk N``
  ``chunk.stablehlo``: ``(params, state, xs [batch, N(, d_in)]) -> (state, ys)``; ``params`` and ``state``
  are flat lists of arrays (the pytrees' leaves in order), so a loader needs no model code;
* ``params.npz`` and ``initial_state.npz``: those leaves (``p0000, ...`` and ``s0000, ...``);
* ``manifest.json``: the format, shapes, dtypes, input kind, head, capacity and files.

:mod:`seqjax.export_loader` (jax and numpy only) loads and runs them.  The functions are exported for
a fixed batch size and for the platforms given (default: the current backend).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import jax
import numpy as np

from seqjax.experiment.session import Session, state_bytes
from seqjax.models.sequence_model import SequenceModel
from seqjax.ops import native

FORMAT = "seqjax.export/1"


def _spec(x: Any) -> jax.ShapeDtypeStruct:
    return jax.ShapeDtypeStruct(np.shape(x), np.asarray(x).dtype if not hasattr(x, "dtype") else x.dtype)


def _flat_form(session: Session, method: str, params_def: Any, state_def: Any):
    """``(params leaves, state leaves, x) -> (state leaves, y)`` of ``SequenceModel.<method>``."""
    form = getattr(SequenceModel, method)

    def run(params: list, state: list, x: jax.Array) -> tuple[list, jax.Array]:
        variables = {"params": jax.tree.unflatten(params_def, params)}
        state, y = session.model.apply(variables, jax.tree.unflatten(state_def, state), x, method=form)
        return jax.tree.leaves(state), y

    return run


def export_session(session: Session, out: str | Path, chunk: int | None = None, batch: int = 1,
                   platforms: Sequence[str] | None = None) -> dict:
    """Write the step (and ``chunk``-token chunk) function of ``session`` into ``out``; returns the manifest.

    >>> import tempfile, jax.numpy as jnp
    >>> from seqjax.models.registry import build_backbone, get_backbone
    >>> from seqjax.models.sequence_model import PerStepHead
    >>> model = SequenceModel(build_backbone("gru", get_backbone("gru").options(hidden_size=4)), PerStepHead(2))
    >>> session = Session.create(model, jnp.zeros((1, 1, 3)))
    >>> manifest = export_session(session, tempfile.mkdtemp(), chunk=4)
    >>> manifest["files"]["chunk"], manifest["state"]["bytes"]
    ('chunk.stablehlo', 16)
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    params, params_def = jax.tree.flatten(session.params)
    state, state_def = jax.tree.flatten(session.init_state(batch))
    token = session.vocab is not None
    x_shape, x_dtype = ((batch,), np.int32) if token else ((batch, session.input_dim), np.float32)
    shapes = {"step": x_shape}
    if chunk is not None:
        shapes["chunk"] = (batch, chunk) if token else (batch, chunk, session.input_dim)
    files = {}
    for method, shape in shapes.items():
        with native.jax_only():  # the export runs without seqjax: no compiled kernel in it
            exported = jax.export.export(jax.jit(_flat_form(session, method, params_def, state_def)),
                                         platforms=platforms)(
                [_spec(p) for p in params], [_spec(s) for s in state], jax.ShapeDtypeStruct(shape, x_dtype))
        files[method] = f"{method}.stablehlo"
        (out / files[method]).write_bytes(exported.serialize())
    np.savez(out / "params.npz", **{f"p{i:04d}": np.asarray(p) for i, p in enumerate(params)})
    np.savez(out / "initial_state.npz", **{f"s{i:04d}": np.asarray(s) for i, s in enumerate(state)})
    files.update(params="params.npz", initial_state="initial_state.npz")
    manifest = {
        "format": FORMAT,
        "batch": batch,
        "chunk_size": chunk,
        "platforms": list(platforms or [jax.default_backend()]),
        "input": {"vocab": session.vocab, "dim": None if token else session.input_dim,
                  "dtype": np.dtype(x_dtype).name, "step_shape": list(x_shape)},
        "output": {"kind": session.kind, "dim": int(session.model.head.features)},
        "capacity": session.capacity,  # a Transformer's KV cache: outputs past it are NaN
        "checkpoint_step": session.step_number,
        "state": {"leaves": [{"shape": list(np.shape(s)), "dtype": np.asarray(s).dtype.name} for s in state],
                  "bytes": state_bytes(state)},
        "params": len(params),
        "files": files,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest
