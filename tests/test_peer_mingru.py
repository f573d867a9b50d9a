"""minGRU and minLSTM (seqjax.models.min_rnn) against ``mingru-pytorch`` (lucidrains), with copied weights.

What is compared: the layer ``d -> 1.5 d -> d`` (``MinRNN``: one bias-free projection to the gates and candidate, the
log-space scan, a bias-free output projection) against the package's ``minGRU`` / ``minLSTM`` with
``expansion_factor=1.5`` (so with its output projection), float32, outputs and gradients w.r.t. the input and the
peer's two weight matrices:

* the parallel form from ``h_0 = 0`` (the package's ``prev_hidden=None``, no prefix term on either side);
* one token from a carried ``h`` (seqjax's step form; the package's sequential branch, ``seq_len == 1``);
* a chunk from a carried ``h``: minGRU's parallel branch prepends ``log h``, as seqjax's chunk form does. minLSTM's
  prepends ``log g(h)``, i.e. it starts from ``g(h)`` and not ``h`` (its own sequential branch uses ``h``, so the
  package's two forms disagree for a carried state; MODELS.md, section 3). seqjax follows the sequential form and
  the equations; the test states the package's behaviour exactly: its minLSTM chunk from ``h`` equals seqjax's
  chunk from ``g(h)``.

Weight layout: the package's ``Linear`` weights are ``[out, in]`` and chunked ``[hidden (candidate), gate]``
(minGRU) or ``[hidden, f, i]`` (minLSTM); seqjax's kernels are ``[in, out]`` ordered ``[k, k~]`` or
``[k^f, k^i, k~]``: a transpose and a reordering of the blocks.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from peer_check import check_against_torch, perturb_torch
from seqjax.models.min_rnn import MinRNN, g

torch = pytest.importorskip("torch")
minGRU = pytest.importorskip("minGRU_pytorch.minGRU")
minLSTM = pytest.importorskip("minGRU_pytorch.minLSTM")

B, T, D = 2, 6, 4
N = int(1.5 * D)
CELLS = {"gru": ("minGRU", "to_hidden_and_gate", (1, 0)), "lstm": ("minLSTM", "to_hidden_and_f_i_gate", (1, 2, 0))}


def _peer(cell: str) -> "torch.nn.Module":
    torch.manual_seed(0)
    module = minGRU if cell == "gru" else minLSTM
    peer = getattr(module, CELLS[cell][0])(D, expansion_factor=1.5)
    perturb_torch(peer, seed=1, scale=0.2)
    return peer


def _params(cell: str, p: dict) -> dict:
    """Peer weights -> seqjax ``MinRNN`` params (blocks of ``N`` rows reordered, then transposed)."""
    _, name, order = CELLS[cell]
    w = p[f"{name}.weight"]
    return {"to_gates": {"kernel": jnp.concatenate([w[i * N:(i + 1) * N] for i in order]).T},
            "to_out": {"kernel": p["to_out.weight"].T}}


def _layer(cell: str) -> MinRNN:
    return MinRNN(d_model=D, cell=cell, expansion=1.5)


@pytest.mark.parametrize("cell", list(CELLS))
def test_parallel_form_equals_mingru_pytorch(cell: str) -> None:
    u = np.random.default_rng(0).standard_normal((B, T, D)).astype(np.float32)

    def ours(p, u):
        return _layer(cell).apply({"params": _params(cell, p)}, u)

    check_against_torch(ours, _peer(cell), lambda m, u: m(u), (u,), f"min{cell} parallel")


@pytest.mark.parametrize("cell", list(CELLS))
def test_step_form_equals_mingru_pytorch(cell: str) -> None:
    rng = np.random.default_rng(1)
    u = rng.standard_normal((B, 1, D)).astype(np.float32)
    h = rng.uniform(0.1, 1.5, (B, N)).astype(np.float32)

    def ours(p, u, h):
        return _layer(cell).apply({"params": _params(cell, p)}, jnp.asarray(h), u[:, 0], method="step")[1][:, None]

    check_against_torch(ours, _peer(cell), lambda m, u, h: m(u, prev_hidden=h[:, None]), (u, h), f"min{cell} step")


@pytest.mark.parametrize("cell", list(CELLS))
def test_chunk_from_a_state_equals_mingru_pytorch(cell: str) -> None:
    """minGRU: the same ``h``; minLSTM: the package from ``h`` equals seqjax from ``g(h)`` (docstring)."""
    rng = np.random.default_rng(2)
    u = rng.standard_normal((B, T, D)).astype(np.float32)
    h = rng.uniform(0.1, 1.5, (B, N)).astype(np.float32)
    start = (lambda h: h) if cell == "gru" else g

    def ours(p, u, h):
        state = start(jnp.asarray(h))
        return _layer(cell).apply({"params": _params(cell, p)}, state, u, method="chunk")[1]

    check_against_torch(ours, _peer(cell), lambda m, u, h: m(u, prev_hidden=h[:, None]), (u, h),
                        f"min{cell} chunk from h")
