"""Recurrent cell equations written out again in plain NumPy, as an independent test reference.

Nothing here imports seqjax.  Parameters are plain arrays with the documented
layout: ``w_x [in, G*H]``, ``w_h [H, G*H]``, ``b [G*H]`` (plus ``b_hn [H]`` for
the reset-after GRU), gate blocks in the order i, f, g, o (LSTM) and r, z, n
(GRU).  Each step is one example: ``x [in]``, ``h [H]``.
"""

from __future__ import annotations

import numpy as np


def sigmoid(a: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-a))


def _blocks(p: dict, gates: int) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """Split the fused weights into per-gate ``(W_x^g, W_h^g, b^g)`` lists."""
    return (
        np.split(p["w_x"], gates, axis=1),
        np.split(p["w_h"], gates, axis=1),
        np.split(p["b"], gates),
    )


def rnn_step(p: dict, h: np.ndarray, x: np.ndarray, activation: str = "tanh") -> np.ndarray:
    """``h' = phi(W_x^T x + W_h^T h + b)`` with ``phi`` tanh or relu."""
    a = x @ p["w_x"] + h @ p["w_h"] + p["b"]
    return np.tanh(a) if activation == "tanh" else np.maximum(a, 0.0)


def lstm_step(p: dict, carry: tuple[np.ndarray, np.ndarray], x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hochreiter & Schmidhuber LSTM with forget gate; carry ``(h, c)``."""
    h, c = carry
    (wxi, wxf, wxg, wxo), (whi, whf, whg, who), (bi, bf, bg, bo) = _blocks(p, 4)
    i = sigmoid(x @ wxi + h @ whi + bi)
    f = sigmoid(x @ wxf + h @ whf + bf)
    g = np.tanh(x @ wxg + h @ whg + bg)
    o = sigmoid(x @ wxo + h @ who + bo)
    c_new = f * c + i * g
    return o * np.tanh(c_new), c_new


def gru_cho_step(p: dict, h: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Cho et al. 2014: ``h~ = tanh(W_n [r*h, x])``, ``h' = (1-z) h + z h~``."""
    (wxr, wxz, wxn), (whr, whz, whn), (br, bz, bn) = _blocks(p, 3)
    r = sigmoid(x @ wxr + h @ whr + br)
    z = sigmoid(x @ wxz + h @ whz + bz)
    cand = np.tanh(x @ wxn + (r * h) @ whn + bn)
    return (1.0 - z) * h + z * cand


def gru_reset_after_step(p: dict, h: np.ndarray, x: np.ndarray) -> np.ndarray:
    """cuDNN/PyTorch GRU: ``n = tanh(W_xn x + b_n + r*(W_hn h + b_hn))``, ``h' = (1-z) n + z h``."""
    (wxr, wxz, wxn), (whr, whz, whn), (br, bz, bn) = _blocks(p, 3)
    r = sigmoid(x @ wxr + h @ whr + br)
    z = sigmoid(x @ wxz + h @ whz + bz)
    n = np.tanh(x @ wxn + bn + r * (h @ whn + p["b_hn"]))
    return (1.0 - z) * n + z * h


def step_fn(kind: str):
    """``(p, carry, x) -> carry`` for a cell kind; the output is ``h`` (the carry's first part for LSTM)."""
    return {
        "rnn_tanh": lambda p, h, x: rnn_step(p, h, x, "tanh"),
        "rnn_relu": lambda p, h, x: rnn_step(p, h, x, "relu"),
        "lstm": lstm_step,
        "gru_cho": gru_cho_step,
        "gru_reset_after": gru_reset_after_step,
    }[kind]


def output_of(kind: str, carry):
    return carry[0] if kind == "lstm" else carry


def zero_carry(kind: str, hidden: int):
    z = np.zeros(hidden)
    return (z, z) if kind == "lstm" else z


def run_sequence(kind: str, p: dict, xs: np.ndarray, carry=None, reverse: bool = False):
    """One example ``xs [T, in]`` through the cell: returns ``(final_carry, ys [T, H])``.

    With ``reverse`` the steps read ``x_{T-1}, ..., x_0`` and ``ys[t]`` is the
    output produced on reading ``x_t``.
    """
    step = step_fn(kind)
    hidden = p["w_h"].shape[0]
    carry = zero_carry(kind, hidden) if carry is None else carry
    ys = np.zeros((xs.shape[0], hidden))
    order = range(xs.shape[0] - 1, -1, -1) if reverse else range(xs.shape[0])
    for t in order:
        carry = step(p, carry, xs[t])
        ys[t] = output_of(kind, carry)
    return carry, ys
