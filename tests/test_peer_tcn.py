"""The TCN (seqjax.models.tcn) against ``pytorch-tcn`` (a maintained implementation of Bai et al.'s network), with
copied weights.

What is compared: two residual levels of widths 5 and 5 over a 3-wide input (so the first level's residual is the
1x1 projection), kernel size 3, dilations 1 and 2, no normalization and no dropout (seqjax's default TCN; the
package's ``use_norm=None, dropout=0``), causal, float32: outputs and gradients w.r.t. the input and every weight.

Weight layout: the package's ``Conv1d`` weights are ``[out, in, k]``, seqjax's ``CausalConv`` kernels ``[k, in,
out]`` (a transpose; the same cross-correlation, the taps left-padded by ``(k - 1) d`` on both sides).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from peer_check import check_against_torch, perturb_torch
from seqjax.models.tcn import TCN

torch = pytest.importorskip("torch")
pytorch_tcn = pytest.importorskip("pytorch_tcn")

B, T, D_IN, WIDTHS, K = 2, 11, 3, (5, 5), 3


def _params(p: dict) -> dict:
    """Peer weights -> seqjax ``TCN`` params: each conv's ``[out, in, k]`` weight as a ``[k, in, out]`` kernel."""
    conv = lambda name: {"kernel": p[f"{name}.weight"].transpose(2, 1, 0), "bias": p[f"{name}.bias"]}  # noqa: E731
    blocks = {}
    for i in range(len(WIDTHS)):
        block = {c: conv(f"network.{i}.{c}") for c in ("conv1", "conv2")}
        if f"network.{i}.downsample.weight" in p:
            block["project"] = conv(f"network.{i}.downsample")
        blocks[f"blocks_{i}"] = block
    return blocks


def test_tcn_equals_pytorch_tcn() -> None:
    torch.manual_seed(0)
    peer = pytorch_tcn.TCN(D_IN, list(WIDTHS), kernel_size=K, dropout=0.0, causal=True, use_norm=None,
                           input_shape="NLC")
    perturb_torch(peer, seed=1, scale=0.2)
    u = np.random.default_rng(0).standard_normal((B, T, D_IN)).astype(np.float32)

    def ours(p, u):
        return TCN(channels=WIDTHS, kernel_size=K).apply({"params": _params(p)}, jnp.asarray(u))

    check_against_torch(ours, peer, lambda m, u: m(u), (u,), "tcn")
