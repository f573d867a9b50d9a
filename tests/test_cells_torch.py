"""RNN, LSTM and GRU (reset-after) against PyTorch nn.RNN / nn.LSTM / nn.GRU with copied weights.

seqjax stores ``W_x [in, G*H]`` used as ``x @ W_x``; torch stores ``weight_ih [G*H, in]``
used as ``W x``, so the copy is a transpose.  Gate order matches (i, f, g, o and
r, z, n).  torch has two biases: seqjax's ``b`` goes to ``bias_ih``, and
``bias_hh`` is zero except the reset-after GRU's ``b_hn`` in its n block.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from seqjax import scan  # noqa: E402
from seqjax.models.recurrent import Bidirectional, StackedRNN  # noqa: E402

torch.set_num_threads(1)
B, T, I, H = 3, 7, 4, 5
TORCH_KINDS = {
    "rnn_tanh": (torch.nn.RNN, {"nonlinearity": "tanh"}),
    "rnn_relu": (torch.nn.RNN, {"nonlinearity": "relu"}),
    "lstm": (torch.nn.LSTM, {}),
    "gru_reset_after": (torch.nn.GRU, {}),
}
torch_kind = pytest.mark.parametrize("kind", list(TORCH_KINDS))


def _t(a) -> "torch.Tensor":
    return torch.from_numpy(np.array(a, np.float32))


def to_torch(kind: str, layers: list[list[dict]], input_size: int) -> "torch.nn.Module":
    """A torch RNN holding ``layers[l][d]``: layer ``l``'s cell params for direction ``d`` (0 fwd, 1 bwd)."""
    cls, options = TORCH_KINDS[kind]
    hidden = layers[0][0]["w_h"].shape[0]
    module = cls(input_size, hidden, num_layers=len(layers), bidirectional=len(layers[0]) == 2,
                 batch_first=True, **options)
    with torch.no_grad():
        for l, directions in enumerate(layers):
            for d, p in enumerate(directions):
                suffix = f"_l{l}" + ("_reverse" if d else "")
                b_hh = np.zeros_like(p["b"])
                if "b_hn" in p:
                    b_hh[2 * hidden:] = p["b_hn"]
                getattr(module, "weight_ih" + suffix).copy_(_t(p["w_x"]).T)
                getattr(module, "weight_hh" + suffix).copy_(_t(p["w_h"]).T)
                getattr(module, "bias_ih" + suffix).copy_(_t(p["b"]))
                getattr(module, "bias_hh" + suffix).copy_(_t(b_hh))
    return module


def run_torch(module, xs: np.ndarray, lengths: np.ndarray | None = None):
    """``(outputs [B, T, D*H], [h_n] or [h_n, c_n])``; with ``lengths`` through a packed sequence."""
    x = _t(xs)
    if lengths is not None:
        x = torch.nn.utils.rnn.pack_padded_sequence(x, torch.as_tensor(lengths), batch_first=True,
                                                    enforce_sorted=False)
    with torch.no_grad():
        out, state = module(x)
    if lengths is not None:
        out, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=xs.shape[1])
    states = list(state) if isinstance(state, tuple) else [state]
    return out.numpy(), [s.numpy() for s in states]


def seqjax_states(kind: str, carries: list) -> list[np.ndarray]:
    """Final carries in torch's layout: ``[h_n]`` or ``[h_n, c_n]``, each ``[layers*directions, B, H]``.

    ``carries`` holds one entry per layer; a bidirectional layer's entry is the pair ``(fwd, bwd)``.
    """
    flat = [c for carry in carries for c in (carry if type(carry) is tuple else (carry,))]
    if kind == "lstm":
        return [np.stack([c.h for c in flat]), np.stack([c.c for c in flat])]
    return [np.stack(flat)]


def stack_layers(params: dict) -> list[list[dict]]:
    """StackedRNN params -> ``[[fwd(, bwd)] per layer]``."""
    layers = [params[f"layers_{l}"] for l in range(len(params))]
    return [[p["cell"]] if "cell" in p else [p["forward"]["cell"], p["backward"]["cell"]] for p in layers]


def _inputs(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(B, T, I)).astype(np.float32)


def _assert_match(kind, ys, carries, want_out, want_states):
    np.testing.assert_allclose(ys, want_out, atol=1e-5, rtol=1e-5)
    for got, want in zip(seqjax_states(kind, carries), want_states, strict=True):
        np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-5)


@torch_kind
def test_single_layer_matches_torch(kind, make_kind_cell, randomize):
    cell = make_kind_cell(kind, H)
    params = randomize(cell.init(jax.random.key(0), I), seed=1)
    xs = _inputs()
    carry, ys = scan.run(cell, params, jnp.asarray(xs))
    _assert_match(kind, ys, [carry], *run_torch(to_torch(kind, [[params]], I), xs))


@torch_kind
def test_two_layer_stack_matches_torch(kind, make_kind_cell, randomize):
    model = StackedRNN(cells=(make_kind_cell(kind, H), make_kind_cell(kind, H)))
    xs = _inputs(2)
    params = randomize(model.init(jax.random.key(0), jnp.asarray(xs))["params"], seed=3)
    carries, ys = model.apply({"params": params}, jnp.asarray(xs), return_carry=True)
    _assert_match(kind, ys, carries, *run_torch(to_torch(kind, stack_layers(params), I), xs))


@torch_kind
def test_bidirectional_matches_torch(kind, make_kind_cell, randomize):
    layer = Bidirectional(make_kind_cell(kind, H))
    xs = _inputs(4)
    params = randomize(layer.init(jax.random.key(0), jnp.asarray(xs))["params"], seed=5)
    (c_f, c_b), ys = layer.apply({"params": params}, jnp.asarray(xs), return_carry=True)
    module = to_torch(kind, [[params["forward"]["cell"], params["backward"]["cell"]]], I)
    _assert_match(kind, ys, [(c_f, c_b)], *run_torch(module, xs))


@pytest.mark.parametrize("kind", ["lstm", "gru_reset_after"])
def test_padded_bidirectional_stack_matches_torch_packed(kind, make_kind_cell, randomize):
    """Variable lengths against torch's packed sequences: a second, independent padding reference."""
    model = StackedRNN(cells=(make_kind_cell(kind, H), make_kind_cell(kind, H)), bidirectional=True)
    xs, lengths = _inputs(6), np.array([T, 2, 5])
    params = randomize(model.init(jax.random.key(0), jnp.asarray(xs))["params"], seed=7)
    carries, ys = model.apply({"params": params}, jnp.asarray(xs), jnp.asarray(lengths), return_carry=True)
    _assert_match(kind, ys, carries, *run_torch(to_torch(kind, stack_layers(params), I), xs, lengths))


@torch_kind
@pytest.mark.parametrize("padded", [False, True])
def test_gradients_match_torch(kind, padded, make_kind_cell, randomize):
    """Parameter and input gradients of ``sum(y ⊙ U) + sum(h_T ⊙ V)`` against torch autograd.

    An independent reference for the hand-derived backward pass (:mod:`seqjax.cells.fused_bptt`), which
    ``scan.run`` uses by default; with ``padded``, through torch's packed sequences.
    """
    cell = make_kind_cell(kind, H)
    params = randomize(cell.init(jax.random.key(0), I), seed=8)
    xs, lengths = _inputs(9), (np.array([T, 2, 5]) if padded else None)
    rng = np.random.default_rng(10)
    u, v = rng.normal(size=(B, T, H)).astype(np.float32), rng.normal(size=(B, H)).astype(np.float32)

    def loss(p, x):
        carry, ys = scan.run(cell, p, x, lengths=None if lengths is None else jnp.asarray(lengths))
        h_t = carry.h if kind == "lstm" else carry
        return jnp.sum(ys * u) + jnp.sum(h_t * v)

    g_params, g_xs = jax.grad(loss, argnums=(0, 1))(params, jnp.asarray(xs))

    module = to_torch(kind, [[params]], I)
    x = _t(xs).requires_grad_(True)
    packed = x if lengths is None else torch.nn.utils.rnn.pack_padded_sequence(
        x, torch.as_tensor(lengths), batch_first=True, enforce_sorted=False)
    out, state = module(packed)
    if lengths is not None:
        out, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=T)
    h_n = state[0] if isinstance(state, tuple) else state
    (torch.sum(out * _t(u)) + torch.sum(h_n[0] * _t(v))).backward()

    close = lambda got, want: np.testing.assert_allclose(got, want, atol=2e-5, rtol=2e-5)  # noqa: E731
    close(g_xs, x.grad.numpy())
    close(g_params["w_x"], module.weight_ih_l0.grad.numpy().T)
    close(g_params["w_h"], module.weight_hh_l0.grad.numpy().T)
    close(g_params["b"], module.bias_ih_l0.grad.numpy())
    if "b_hn" in g_params:
        close(g_params["b_hn"], module.bias_hh_l0.grad.numpy()[2 * H:])


@pytest.mark.parametrize("kind", ["lstm", "gru_reset_after"])
def test_padded_bidirectional_stack_gradients_match_torch_packed(kind, make_kind_cell, randomize):
    """Every parameter's gradient of a 2-layer bidirectional stack over packed sequences, against torch autograd."""
    model = StackedRNN(cells=(make_kind_cell(kind, H), make_kind_cell(kind, H)), bidirectional=True)
    xs, lengths = _inputs(11), np.array([T, 2, 5])
    params = randomize(model.init(jax.random.key(0), jnp.asarray(xs))["params"], seed=12)
    u = np.random.default_rng(13).normal(size=(B, T, 2 * H)).astype(np.float32)

    def loss(p):
        return jnp.sum(model.apply({"params": p}, jnp.asarray(xs), jnp.asarray(lengths)) * u)

    grads = stack_layers(jax.grad(loss)(params))
    module = to_torch(kind, stack_layers(params), I)
    packed = torch.nn.utils.rnn.pack_padded_sequence(_t(xs), torch.as_tensor(lengths), batch_first=True,
                                                     enforce_sorted=False)
    out, _ = torch.nn.utils.rnn.pad_packed_sequence(module(packed)[0], batch_first=True, total_length=T)
    torch.sum(out * _t(u)).backward()
    for l, directions in enumerate(grads):
        for d, g in enumerate(directions):
            suffix = f"_l{l}" + ("_reverse" if d else "")
            grad = lambda name: getattr(module, name + suffix).grad.numpy()  # noqa: E731
            np.testing.assert_allclose(g["w_x"], grad("weight_ih").T, atol=2e-5, rtol=2e-5)
            np.testing.assert_allclose(g["w_h"], grad("weight_hh").T, atol=2e-5, rtol=2e-5)
            np.testing.assert_allclose(g["b"], grad("bias_ih"), atol=2e-5, rtol=2e-5)
