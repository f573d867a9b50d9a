"""The LRU (seqjax.models.lru) against ``lru-pytorch`` (``LRU_pytorch.LRU``), with copied weights.

What is compared: the recurrence and readout ``x_k = lambda x_{k-1} + gamma (B u_k)``, ``y_k = Re(C x_k) + D u_k``
(``LRUBlock._recurrence``, before seqjax's GELU/GLU, which the package does not have), from ``x_0 = 0`` over a
batch and from a given complex ``x_0`` over one sequence (the package's ``state=`` argument, which it honours only
for a 2-D input), outputs and gradients w.r.t. the input and every peer parameter, float32.

The parameterisations agree (``nu_log``, ``theta_log``, ``gamma_log``; ``B``, ``C`` complex, which seqjax stores as
real and imaginary parts) except ``D``: the paper's ``D`` is diagonal (``D in R^H``, seqjax), the package's is a
full ``[H, H]`` matrix. The copy sets the package's ``D`` to ``diag(d)`` and compares the diagonal of its
gradient with seqjax's ``D`` gradient (the off-diagonal entries have no seqjax counterpart).
"""

from __future__ import annotations

import inspect
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from peer_check import assert_close, check_against_torch, perturb_torch
from seqjax.models.lru import LRUBlock

torch = pytest.importorskip("torch")
LRU_pytorch = pytest.importorskip("LRU_pytorch")

B, T, H, N = 2, 6, 3, 4

# ``resets`` (packed sequences) joined ``LRUBlock._recurrence``'s signature; none here
NO_RESETS = {"resets": None} if "resets" in inspect.signature(LRUBlock._recurrence).parameters else {}

def _peer() -> "torch.nn.Module":
    torch.manual_seed(0)
    peer = LRU_pytorch.LRU(in_features=H, out_features=H, state_features=N, rmin=0.4, rmax=0.9)
    perturb_torch(peer, seed=1, scale=0.2)
    with torch.no_grad():
        peer.D.copy_(torch.diag(torch.diagonal(peer.D)))  # the paper's diagonal D
    return peer


def _ours(p: dict, u: jax.Array, x0: jax.Array | None) -> jax.Array:
    """seqjax's LRU recurrence on the peer's parameters (``u [batch, T, H]``, ``x0 [batch, N]`` complex or None)."""
    params = {"nu_log": p["nu_log"], "theta_log": p["theta_log"], "gamma_log": p["gamma_log"],
              "B_re": p["B.re"], "B_im": p["B.im"], "C_re": p["C.re"], "C_im": p["C.im"], "D": jnp.diagonal(p["D"]),
              "glu_value": {"kernel": jnp.zeros((H, H)), "bias": jnp.zeros(H)},
              "glu_gate": {"kernel": jnp.zeros((H, H)), "bias": jnp.zeros(H)}}
    block = LRUBlock(d_model=H, d_state=N)
    return block.apply({"params": params}, u, x0, "auto", **NO_RESETS, method="_recurrence")[0]


def test_lru_recurrence_equals_lru_pytorch() -> None:
    u = np.random.default_rng(0).standard_normal((B, T, H)).astype(np.float32)
    gp, gp_t = check_against_torch(lambda p, u: _ours(p, u, None), _peer(), lambda m, u: m(u), (u,), "LRU",
                                   skip=("D",))
    assert_close(np.diagonal(gp["D"]), np.diagonal(gp_t["D"]), "LRU d/dD (diagonal)")


def test_lru_from_a_state_equals_lru_pytorch() -> None:
    """One sequence from a complex ``x_0`` (seqjax's chunk form's state; the package's ``state``)."""
    rng = np.random.default_rng(1)
    u = rng.standard_normal((T, H)).astype(np.float32)
    x0 = (rng.standard_normal(N) + 1j * rng.standard_normal(N)).astype(np.complex64)

    def ours(p, u, x0):
        return _ours(p, u[None], jnp.asarray(x0)[None])[0]

    gp, gp_t = check_against_torch(ours, _peer(), lambda m, u, x0: m(u, state=x0), (u, x0), "LRU from x_0",
                                   skip=("D",))
    assert_close(np.diagonal(gp["D"]), np.diagonal(gp_t["D"]), "LRU from x_0 d/dD (diagonal)")
