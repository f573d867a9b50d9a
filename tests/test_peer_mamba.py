"""Mamba (seqjax.models.mamba) against ``mambapy`` (``mambapy.mamba``, pure PyTorch), with copied weights.

What is compared: the block ``out = W_out(selective_scan(silu(conv(x)), ...) * silu(z))`` (``MambaBlock``) against
``mambapy.mamba.MambaBlock``, in its parallel-scan (``pscan``) and sequential forms, and seqjax's step form against
the package's ``step`` token by token; outputs and gradients w.r.t. the input and every peer parameter, float32.
The residual wrapper is not compared: the package's RMSNorm has ``eps = 1e-5`` and seqjax's stack uses Flax's
``RMSNorm`` (``1e-6``) plus a final norm.

Weight layout: torch ``Linear`` weights ``[out, in]`` are seqjax's ``[in, out]`` kernels transposed; the depthwise
``Conv1d`` weight ``[C, 1, k]`` (cross-correlation over the left-padded input, its last tap on the current token)
is seqjax's ``[k, 1, C]`` kernel, the same taps in the same order.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from peer_check import assert_close, check_against_torch, perturb_torch, torch_params
from seqjax.models.mamba import MambaBlock

torch = pytest.importorskip("torch")
mambapy = pytest.importorskip("mambapy.mamba")

B, T, D, N = 2, 8, 4, 3


def _peer(pscan: bool) -> "torch.nn.Module":
    torch.manual_seed(0)
    peer = mambapy.MambaBlock(mambapy.MambaConfig(d_model=D, n_layers=1, d_state=N, pscan=pscan))
    perturb_torch(peer, seed=1, scale=0.2)
    with torch.no_grad():
        peer.dt_proj.bias.sub_(peer.dt_proj.bias.mean())  # dt ~ softplus(0) = 0.7 (not ~0.01): A_log and dt matter
    return peer


def _params(p: dict) -> dict:
    return {"in_proj": {"kernel": p["in_proj.weight"].T},
            "conv": {"kernel": jnp.transpose(p["conv1d.weight"], (2, 1, 0)), "bias": p["conv1d.bias"]},
            "x_proj": {"kernel": p["x_proj.weight"].T},
            "dt_proj": {"kernel": p["dt_proj.weight"].T, "bias": p["dt_proj.bias"]},
            "A_log": p["A_log"], "D": p["D"], "out_proj": {"kernel": p["out_proj.weight"].T}}


def _block() -> MambaBlock:
    return MambaBlock(d_model=D, d_state=N, chunk_size=4)


@pytest.mark.parametrize("pscan", [True, False], ids=["pscan", "sequential"])
def test_mamba_block_equals_mambapy(pscan: bool) -> None:
    u = np.random.default_rng(0).standard_normal((B, T, D)).astype(np.float32)

    def ours(p, u):
        return _block().apply({"params": _params(p)}, u)

    check_against_torch(ours, _peer(pscan), lambda m, u: m(u), (u,), f"Mamba block ({'pscan' if pscan else 'seq'})")


def test_mamba_step_equals_mambapy_step() -> None:
    """Both step forms from zero state over a sequence: outputs each token and the final SSM state."""
    u = np.random.default_rng(1).standard_normal((B, T, D)).astype(np.float32)
    peer = _peer(True)
    block = _block()
    variables = {"params": _params({k: jnp.asarray(v) for k, v in torch_params(peer).items()})}
    state = block.apply(variables, B, method="initial_state")
    d_inner = 2 * D
    cache = (torch.zeros(B, d_inner, N), torch.zeros(B, d_inner, 3))
    ours, theirs = [], []
    with torch.no_grad():
        for t in range(T):
            state, y = block.apply(variables, state, jnp.asarray(u[:, t]), method="step")
            y_t, cache = peer.step(torch.tensor(u[:, t]), cache)
            ours.append(np.asarray(y))
            theirs.append(y_t.numpy())
    assert_close(np.stack(ours, 1), np.stack(theirs, 1), "Mamba step outputs")
    assert_close(state[1], cache[0].numpy(), "Mamba step SSM state")
    assert_close(np.asarray(state[0]), np.transpose(cache[1].numpy(), (0, 2, 1)), "Mamba step conv buffer")
