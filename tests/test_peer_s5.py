"""S5 (seqjax.models.s5) against ``s5-pytorch`` (``s5.S5``), with copied weights.

What is compared: the SSM ``x_k = Lambda_bar x_{k-1} + B_bar u_k``, ``y_k = 2 Re(C~ x_k) + D u_k`` (``S5Block._ssm``,
before seqjax's GELU and half-GLU; the package's ``S5Block`` wraps its SSM in a different, transformer-style block,
so the layers themselves do not coincide), with ZOH and bilinear discretisation, from ``x_0 = 0`` and from a
carried complex state (the package's ``state=``), outputs and gradients w.r.t. the input and every peer
parameter, float32.

Mapping: the package keeps every mode it is given and reads out ``Re(C x)``; seqjax keeps one mode of each
conjugate pair and reads out ``2 Re(C~ x)``. The package is built with ``P/2`` modes and ``C = 2 C~``, the
conjugate-symmetric system seqjax computes. Its ``Lambda`` is a free complex parameter; seqjax stores
``(log(-Re Lambda), Im Lambda)`` so ``Re Lambda < 0`` always: the copy takes ``log(-Re)``, so the package's
``Lambda`` must have a negative real part (it does, from HiPPO-N, and the perturbation keeps it so). ``B`` is the
same ``[P/2, H, 2]`` real pair array; ``log_step`` is seqjax's ``log_dt``.
"""

from __future__ import annotations

import inspect
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from peer_check import check_against_torch, perturb_torch
from seqjax.models.s5 import S5Block

torch = pytest.importorskip("torch")
s5 = pytest.importorskip("s5")
s5_model = pytest.importorskip("s5.s5_model")

B, T, H, P = 2, 6, 3, 8  # P counts both modes of each pair; the package holds P / 2
DISC = {"zoh": s5_model.discretize_zoh, "bilinear": s5_model.discretize_bilinear}

# ``resets`` (packed sequences) joined ``S5Block._ssm``'s signature; none here
NO_RESETS = {"resets": None} if "resets" in inspect.signature(S5Block._ssm).parameters else {}

def _peer(disc: str) -> "torch.nn.Module":
    torch.manual_seed(0)
    peer = s5.S5(H, state_width=P // 2, block_count=1, bcInit="dense")
    perturb_torch(peer, seed=1, scale=0.1)
    with torch.no_grad():
        lam = peer.seq.Lambda
        lam.copy_(torch.complex(-lam.real.abs() - 0.05, lam.imag))  # a stable Lambda (seqjax's domain)
        peer.seq.log_step.copy_(torch.linspace(np.log(0.01), np.log(0.5), P // 2))  # dt large enough to matter
    peer.seq.discretize = DISC[disc]
    return peer


def _ours(disc: str, p: dict, u: jax.Array, x0: jax.Array | None) -> jax.Array:
    params = {"Lambda_log_neg_re": jnp.log(-p["seq.Lambda.re"]), "Lambda_im": p["seq.Lambda.im"],
              "B": p["seq.B"], "C": jnp.stack([p["seq.C.re"], p["seq.C.im"]], -1) / 2.0, "D": p["seq.D"],
              "log_dt": p["seq.log_step"], "glu": {"kernel": jnp.zeros((H, H)), "bias": jnp.zeros(H)}}
    block = S5Block(d_model=H, state_size=P, blocks=1, disc=disc)
    return block.apply({"params": params}, u, x0, "auto", **NO_RESETS, method="_ssm")[0]


@pytest.mark.parametrize("disc", list(DISC))
def test_s5_ssm_equals_s5_pytorch(disc: str) -> None:
    u = np.random.default_rng(0).standard_normal((B, T, H)).astype(np.float32)
    check_against_torch(lambda p, u: _ours(disc, p, u, None), _peer(disc), lambda m, u: m(u), (u,), f"S5 ({disc})")


def test_s5_ssm_from_a_state_equals_s5_pytorch() -> None:
    rng = np.random.default_rng(1)
    u = rng.standard_normal((B, T, H)).astype(np.float32)
    x0 = (rng.standard_normal((B, P // 2)) + 1j * rng.standard_normal((B, P // 2))).astype(np.complex64)

    def ours(p, u, x0):
        return _ours("zoh", p, u, jnp.asarray(x0))

    check_against_torch(ours, _peer("zoh"), lambda m, u, x0: m(u, state=x0), (u, x0), "S5 from x_0")
