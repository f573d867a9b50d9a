"""Helpers for the peer tests (``tests/test_peer_*.py``): seqjax against a published package with copied weights.

Every peer test compares in the peer's own parameterisation: the peer's parameters ``p`` are the variables,
seqjax runs on ``to_seqjax(p)`` (a small mapping written in the test: transposes, slices, reparameterisations),
and the gradient of the same scalar loss with respect to ``p`` is taken on both sides (JAX differentiates
through the mapping, so no hand-written inverse is needed). The loss is ``sum(out * w)`` for a fixed random
``w``, so every output element contributes with its own weight.

Tolerances (float32): ``|ours - theirs| <= rtol * |theirs| + atol * max(1, max |theirs|)``, rtol = atol = 1e-5
unless a test says why it needs more; each comparison prints its largest absolute difference (``pytest -s``).
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

RTOL = ATOL = 1e-5


def assert_close(ours: Any, theirs: Any, what: str, rtol: float = RTOL, atol: float = ATOL) -> float:
    """Assert ``ours`` equals ``theirs`` within the tolerances above; return (and print) the max abs difference."""
    ours, theirs = np.asarray(ours, np.float64), np.asarray(theirs, np.float64)
    assert ours.shape == theirs.shape, f"{what}: shape {ours.shape} != {theirs.shape}"
    scale = max(1.0, float(np.max(np.abs(theirs), initial=0.0)))
    np.testing.assert_allclose(ours, theirs, rtol=rtol, atol=atol * scale, err_msg=what)
    diff = float(np.max(np.abs(ours - theirs), initial=0.0))
    print(f"{what}: max |diff| = {diff:.2e} (max |value| = {scale:.2e})")
    return diff


def assert_trees_close(ours: Mapping[str, Any], theirs: Mapping[str, Any], what: str, rtol: float = RTOL,
                       atol: float = ATOL) -> float:
    """:func:`assert_close` leaf by leaf over two flat ``{name: array}`` dicts with the same keys."""
    assert set(ours) == set(theirs), f"{what}: keys {sorted(ours)} != {sorted(theirs)}"
    return max(assert_close(ours[k], theirs[k], f"{what}[{k}]", rtol, atol) for k in sorted(theirs))


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested dict as ``{"a/b/c": leaf}``."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        flat.update(flatten(value, name + "/") if isinstance(value, Mapping) else {name: value})
    return flat


def torch_params(module: Any) -> dict[str, np.ndarray]:
    """A torch module's parameters as float32 arrays by name; a complex one ``z`` as ``z.re`` and ``z.im``."""
    flat: dict[str, np.ndarray] = {}
    for name, p in module.named_parameters():
        value = p.detach().numpy()
        if np.iscomplexobj(value):
            flat[f"{name}.re"], flat[f"{name}.im"] = value.real.copy(), value.imag.copy()
        else:
            flat[name] = value.copy()
    return flat


def torch_output_and_grads(module: Any, call: Any, inputs: tuple, w: np.ndarray) -> tuple[np.ndarray, np.ndarray,
                                                                                          dict[str, np.ndarray]]:
    """``out = call(module, x, *rest)`` and the gradients of ``sum(out * w)`` w.r.t. ``x = inputs[0]`` and the
    parameters (``torch_params``' names; torch's gradient of a real loss in a complex ``z = a + ib`` is
    ``dL/da + i dL/db``, split the same way)."""
    import torch

    module.zero_grad()
    x = torch.tensor(np.asarray(inputs[0]), requires_grad=True)
    rest = [torch.tensor(np.asarray(r)) if r is not None else None for r in inputs[1:]]
    out = call(module, x, *rest)
    (out * torch.tensor(np.asarray(w))).sum().backward()
    grads: dict[str, np.ndarray] = {}
    for name, p in module.named_parameters():
        g = p.grad.numpy() if p.grad is not None else np.zeros(p.shape, p.detach().numpy().dtype)
        if np.iscomplexobj(g):
            grads[f"{name}.re"], grads[f"{name}.im"] = g.real.copy(), g.imag.copy()
        else:
            grads[name] = g.copy()
    return out.detach().numpy(), x.grad.numpy(), grads


def check_against_torch(ours: Any, module: Any, call: Any, inputs: tuple, what: str, rtol: float = RTOL,
                        atol: float = ATOL, skip: tuple[str, ...] = ()) -> tuple[dict, dict]:
    """Outputs and gradients of ``ours(peer_params, *inputs)`` (JAX, on the peer's parameters by
    :func:`torch_params`' names) against ``call(module, *inputs)`` (torch). Gradients of the names in ``skip`` are
    returned, not compared (for a test to compare a part of them). Returns ``(our grads, torch grads)``."""
    import jax
    import jax.numpy as jnp

    params = {k: jnp.asarray(v) for k, v in torch_params(module).items()}
    out = np.asarray(ours(params, *inputs))
    w = np.random.default_rng(7).standard_normal(out.shape).astype(np.float32)
    out_t, gx_t, gp_t = torch_output_and_grads(module, call, inputs, w)
    assert_close(out, out_t, f"{what} output", rtol, atol)
    loss = lambda p, x: jnp.sum(ours(p, x, *inputs[1:]) * w)  # noqa: E731
    gp, gx = jax.grad(loss, (0, 1))(params, jnp.asarray(inputs[0]))
    assert_close(gx, gx_t, f"{what} d/dinput", rtol, atol)
    gp = {k: np.asarray(v) for k, v in gp.items()}
    keep = lambda d: {k: v for k, v in d.items() if k not in skip}  # noqa: E731
    assert_trees_close(keep(gp), keep(gp_t), f"{what} d/dparams", rtol, atol)
    return gp, gp_t


def perturb_torch(module: Any, seed: int, scale: float = 0.3) -> None:
    """Every parameter moved by ``scale * N(0, 1)`` (real and imaginary parts alike), in place."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            noise = torch.randn(p.shape, generator=gen, dtype=torch.float32)
            if p.is_complex():
                noise = torch.complex(noise, torch.randn(p.shape, generator=gen, dtype=torch.float32))
            p.add_(scale * noise.to(p.dtype))
