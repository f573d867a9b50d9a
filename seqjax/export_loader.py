"""Run a model exported by ``seqjax export`` with nothing but jax and numpy (no seqjax model code).

::

    from seqjax.export_loader import load        # or copy this file next to the export: it imports jax, numpy

    streamer = load("exported/")                 # manifest.json, step.stablehlo, chunk.stablehlo, *.npz
    state = streamer.init_state()
    state, y_t = streamer.step(state, x_t)       # x_t [batch] token ids or [batch, d_in] features
    state, ys = streamer.chunk(state, xs)        # xs [batch, chunk_size(, d_in)] (exported with --chunk)

The state is a list of arrays (the model's state pytree, flattened); ``manifest["capacity"]``, when set, is
the number of tokens a Transformer's KV cache holds (outputs past it are NaN).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jax
import numpy as np

FORMAT = "seqjax.export/1"


def _leaves(path: Path) -> list[np.ndarray]:
    with np.load(path) as archive:
        return [archive[name] for name in sorted(archive.files)]


class Streamer:
    """The exported step (and chunk) function of one model, with its parameters."""

    def __init__(self, directory: str | Path):
        directory = Path(directory)
        self.manifest: dict[str, Any] = json.loads((directory / "manifest.json").read_text())
        if self.manifest.get("format") != FORMAT:
            raise ValueError(f"{directory}: not a {FORMAT} export (format {self.manifest.get('format')!r})")
        files = self.manifest["files"]
        self.params = _leaves(directory / files["params"])
        self._initial = _leaves(directory / files["initial_state"])
        self._fns = {name: jax.export.deserialize(bytearray((directory / files[name]).read_bytes()))
                     for name in ("step", "chunk") if name in files}

    def init_state(self) -> list[np.ndarray]:
        """The state before the first token."""
        return list(self._initial)

    def step(self, state: list, x_t: Any) -> tuple[list, jax.Array]:
        """One token: ``(state, x_t) -> (state, y_t [batch, d_out])``."""
        return self._call("step", state, x_t)

    def chunk(self, state: list, xs: Any) -> tuple[list, jax.Array]:
        """``chunk_size`` tokens at once: ``(state, xs) -> (state, ys [batch, chunk_size, d_out])``."""
        if "chunk" not in self._fns:
            raise ValueError("this export has no chunk function: export it with `seqjax export ... --chunk N`")
        return self._call("chunk", state, xs)

    def _call(self, name: str, state: list, x: Any) -> tuple[list, jax.Array]:
        x = np.asarray(x, self.manifest["input"]["dtype"])
        state, y = self._fns[name].call(self.params, list(state), x)
        return list(state), y


def load(directory: str | Path) -> Streamer:
    """The :class:`Streamer` of an export directory."""
    return Streamer(directory)
