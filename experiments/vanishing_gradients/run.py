"""Vanishing and exploding gradients in an Elman RNN vs gated cells (Pascanu, Mikolov & Bengio 2013).

For ``h_t = tanh(W_h h_{t-1} + W_x x_t + b)``, ``||dh_T/dh_t||_2 <= ||W_h||_2^{T-t}`` (gamma = 1 for tanh):
``||W_h||_2 < 1`` is sufficient for the gradient to vanish geometrically; ``> 1`` is necessary for it to
explode.  Three measurements:

1. At initialisation: ``||W_h||_2 = s`` set exactly (``spectral_norm=s``), the backpropagated signal
   ``||dL/da_t||`` (``seqjax.cells.diagnostics.gradient_flow``, norms free of float32 underflow) at every
   distance ``d = T - t`` on random inputs, against the bound ``s^d``; LSTM and GRU at their default
   initialisation beside.  The *memory horizon* is the first distance at which the signal falls below 1e-3 of
   its value at distance 0.
2. After training: RNN (orthogonal, s = 1), LSTM and GRU trained briefly on the adding problem (Adam, clipping
   at 1), the same measurement on adding-problem inputs, along the readout's direction, before and after.
3. Clipping at ``||W_h||_2 > 1``: an RNN initialised at s = 2 trained by plain SGD on the adding problem with
   and without norm clipping ``g <- g min(1, theta / ||g||)``, several seeds (one vmapped program): loss curves.

Usage:  python experiments/vanishing_gradients/run.py [--out experiments/vanishing_gradients] [--quick]

``--quick`` runs every measurement at a tiny size (T=20, hidden 8, a few training steps; a smoke test); its
results go under ``--out`` (default ``runs/quick/vanishing_gradients``).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import pathlib
import time
from typing import Any

import jax
import jax.numpy as jnp
import matplotlib
import optax

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import seqjax  # noqa: E402
from seqjax.cells.base import hidden_of  # noqa: E402
from seqjax.cells.diagnostics import gradient_flow  # noqa: E402
from seqjax.experiment.study import study_out, study_parser  # noqa: E402
from seqjax.tasks.adding import AddingOptions, adding  # noqa: E402

NORMS = (0.5, 0.9, 1.0, 1.1, 1.5, 2.0, 3.0)
HORIZON_LEVEL = 1e-3  # the memory horizon: first distance with signal < 1e-3 x the signal at distance 0


@dataclasses.dataclass(frozen=True)
class Size:
    T: int = 100  # measured sequence length
    hidden: int = 64
    batch: int = 32
    train_T: int = 50  # adding-problem length for the training runs
    train_steps: int = 600  # item 2 (Adam)
    clip_steps: int = 600  # item 3 (SGD)
    clip_s: float = 2.0  # ||W_h||_2 at initialisation in item 3
    clip_lr: float = 0.05
    clip_theta: float = 1.0
    seeds: int = 4


QUICK = Size(T=20, hidden=8, batch=4, train_T=10, train_steps=5, clip_steps=5, seeds=2)


@functools.cache
def family_cells(hidden: int, dtype: Any = jnp.float32) -> dict[str, seqjax.Cell]:
    """One cell object per family, reused, so that each family's jitted programs compile once."""
    kw = dict(dtype=dtype, param_dtype=dtype)
    return {c.name: c for c in (seqjax.rnn(hidden, **kw), seqjax.lstm(hidden, **kw), seqjax.gru(hidden, **kw))}


_flow = jax.jit(gradient_flow, static_argnums=0)


def flow(cell: seqjax.Cell, params: Any, xs: jax.Array, direction: jax.Array | None = None) -> np.ndarray:
    """:func:`gradient_flow` (default direction ``1/sqrt(H)``), jit-compiled once per cell."""
    v = jnp.ones((cell.hidden_size,), xs.dtype) / np.sqrt(cell.hidden_size) if direction is None else direction
    return np.asarray(_flow(cell, params, xs, v))


def distances(T: int) -> tuple[int, ...]:
    """The columns of the table: 1, 10, 25, 50, 99 at T=100."""
    return (1, T // 10, T // 4, T // 2, T - 1)


def relative(g: np.ndarray) -> np.ndarray:
    """The signal at distance ``d = 0 .. T-1`` over the signal at distance 0 (``g`` is indexed by time)."""
    return g[::-1] / g[-1]


def horizon(rel: np.ndarray, level: float = HORIZON_LEVEL) -> int | None:
    """First distance ``d`` with ``rel[d] < level``; None when the signal stays above it over the whole sequence.

    >>> horizon(np.array([1.0, 0.1, 1e-2, 1e-4])), horizon(np.ones(3))
    (3, None)
    """
    below = np.flatnonzero(rel < level)
    return int(below[0]) if below.size else None


def measure_init(size: Size) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Item 1: the signal per time step at initialisation, ``x ~ N(0, 1)``, ``L = <1/sqrt(H), h_T>``, in
    float32 and, for the same parameters and inputs cast up, in float64 (where nothing underflows: at s = 0.5 the
    signal 99 steps back is below float32's smallest number).  The spectral norm only changes ``init``, so one
    RNN program per precision measures every ``s``."""
    xs = jax.random.normal(jax.random.key(1), (size.batch, size.T, 2))
    params = {f"rnn ||W_h||={s}": seqjax.rnn(size.hidden, spectral_norm=s).init(jax.random.key(0), 2) for s in NORMS}
    params |= {f"{name} (default init)": family_cells(size.hidden)[name].init(jax.random.key(0), 2)
               for name in ("lstm", "gru")}
    curves = {}
    for dtype in (jnp.float32, jnp.float64):
        with jax.enable_x64(dtype == jnp.float64):
            cells = family_cells(size.hidden, dtype)
            curves[dtype.dtype.name] = {name: flow(cells[name.split()[0]], jax.tree.map(lambda a: a.astype(dtype), p),
                                                   xs.astype(dtype)) for name, p in params.items()}
    return curves["float32"], curves["float64"]


def init_model(cell: seqjax.Cell, key: jax.Array) -> dict[str, Any]:
    k_cell, k_out = jax.random.split(key)
    return {"cell": cell.init(k_cell, 2), "out": seqjax.readout_init(k_out, cell.hidden_size, 1)}


def adding_loss(cell: seqjax.Cell, model: dict[str, Any], batch: dict[str, jax.Array]) -> jax.Array:
    """MSE of the last step's prediction: ``mean((W_o h_T + b_o - y)^2)``."""
    carry, _ = seqjax.scan.run(cell, model["cell"], batch["inputs"])
    return jnp.mean((seqjax.readout(model["out"], hidden_of(carry)) - batch["targets"]) ** 2)


def train(cell: seqjax.Cell, optimizer: optax.GradientTransformation, seed: jax.Array, T: int, steps: int,
          batch_size: int) -> tuple[dict[str, Any], jax.Array]:
    """Train ``cell`` + readout on the adding problem; the batch of step ``s`` is drawn from
    ``fold_in(data_key, s)``.  Returns the trained model and the training loss of every step."""
    task = adding(AddingOptions(seq_len=T))
    model_key, data_key = jax.random.split(jax.random.key(seed))
    model = init_model(cell, model_key)

    def step(state, s):
        model, opt_state = state
        loss, grads = jax.value_and_grad(lambda m: adding_loss(cell, m, task.sample(jax.random.fold_in(data_key, s),
                                                                                  batch_size)))(model)
        updates, opt_state = optimizer.update(grads, opt_state, model)
        return (optax.apply_updates(model, updates), opt_state), loss

    (model, _), losses = jax.lax.scan(step, (model, optimizer.init(model)), jnp.arange(steps))
    return model, losses


def flow_along_readout(cell: seqjax.Cell, model: dict[str, Any], xs: jax.Array) -> np.ndarray:
    """``||dy_T/da_t||`` for the model's own output ``y_T = W_o h_T + b_o``: ``gradient_flow`` along ``W_o``."""
    return flow(cell, model["cell"], xs, model["out"]["w_o"][:, 0])


def measure_trained(size: Size) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Item 2: the signal before and after ``train_steps`` of Adam (lr 2e-3, clip 1) on the adding problem at
    ``train_T``, measured at ``T`` on adding-problem inputs; also each model's final training loss."""
    xs = adding(AddingOptions(seq_len=size.T)).sample(jax.random.key(7), size.batch)["inputs"]
    optimizer = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(2e-3))
    curves, losses = {}, {}
    for cell in family_cells(size.hidden).values():
        model, loss = jax.jit(lambda seed, cell=cell: train(cell, optimizer, seed, size.train_T, size.train_steps,
                                                            size.batch))(0)
        curves[f"{cell.name} at init"] = flow_along_readout(cell, init_model(cell, jax.random.split(
            jax.random.key(0))[0]), xs)
        curves[f"{cell.name} trained"] = flow_along_readout(cell, model, xs)
        losses[cell.name] = float(jnp.mean(loss[-50:]))
    return curves, losses


def clipping_curves(size: Size) -> dict[str, np.ndarray]:
    """Item 3: SGD training losses ``[seeds, steps]`` of an RNN at ``||W_h||_2 = clip_s``, with and without
    clipping at ``clip_theta`` (``theta = inf``: no clipping), all runs in one vmapped program."""
    cell = seqjax.rnn(size.hidden, spectral_norm=size.clip_s)

    def run(seed, theta):
        optimizer = optax.chain(optax.clip_by_global_norm(theta), optax.sgd(size.clip_lr))
        return train(cell, optimizer, seed, size.train_T, size.clip_steps, size.batch)[1]

    seeds = jnp.arange(size.seeds)
    thetas = jnp.array([jnp.inf, size.clip_theta])
    losses = jax.jit(jax.vmap(jax.vmap(run, (0, None)), (None, 0)))(seeds, thetas)
    return {"no clipping": np.asarray(losses[0]), f"clip at {size.clip_theta}": np.asarray(losses[1])}


def fmt_horizon(h: int | None, T: int) -> str:
    return f"> {T - 1}" if h is None else str(h)


def table(curves: dict[str, np.ndarray], bound: bool) -> list[str]:
    T = len(next(iter(curves.values())))
    ds, half = distances(T), T // 2
    head = "| model | " + " | ".join(f"d={d}" for d in ds) + " | horizon (< 1e-3) |"
    head += f" bound s^d at d={half} |" if bound else ""
    rows = [head, "|---|" + "---|" * (len(ds) + 1 + bound)]
    for name, g in curves.items():
        rel = relative(g)
        row = f"| {name} | " + " | ".join(f"{rel[d]:.2e}" for d in ds) + f" | {fmt_horizon(horizon(rel), T)} |"
        if bound:
            row += f" {float(name.split('=')[1]) ** half:.2e} |" if "||W_h||" in name else " - |"
        rows.append(row)
    return rows


def first_nonfinite(losses: np.ndarray) -> list[int | None]:
    """Per run, the first step whose loss is not finite (None if every loss is).

    >>> first_nonfinite(np.array([[1.0, np.inf, np.nan], [1.0, 0.5, 0.2]]))
    [1, None]
    """
    return [int(np.flatnonzero(~np.isfinite(r))[0]) if not np.isfinite(r).all() else None for r in losses]


def agreement(f32: dict[str, np.ndarray], f64: dict[str, np.ndarray]) -> dict[str, float]:
    """Per model, the largest relative difference between the float32 and float64 signals where float32 holds a
    normal number (> 1e-37)."""
    return {k: float(np.max(np.abs(a[a > 1e-37] / f64[k][a > 1e-37] - 1))) for k, a in f32.items()}


def write(out: pathlib.Path, size: Size, init: dict, init64: dict, trained: dict, losses: dict, clipped: dict,
          seconds: float) -> None:
    T = size.T
    summary = {name: f"{np.mean(v[:, -50:]):.3g} (min over seeds {np.min(np.mean(v[:, -50:], 1)):.3g}, "
               f"max {np.max(np.mean(v[:, -50:], 1)):.3g}; first non-finite step per seed {first_nonfinite(v)})"
               for name, v in clipped.items()}
    text = "\n".join([
        f"Relative gradient norm ||dL/da_{{T-d}}|| / ||dL/da_T|| at distance d (T={T}, hidden {size.hidden}, "
        f"batch {size.batch}, x ~ N(0, 1)), at initialisation; horizon: first d with ratio < 1e-3.", "",
        *table(init, bound=True), "",
        "The same in float64 (parameters and inputs above cast up). Largest relative difference of the float32 "
        "signal from it wherever float32 holds a normal number (> 1e-37): "
        + ", ".join(f"{k} {v:.1e}" for k, v in agreement(init, init64).items()) + ".", "",
        *table(init64, bound=True), "",
        f"After training: {size.train_steps} steps of Adam (lr 2e-3, clip 1.0, batch {size.batch}) on the adding "
        f"problem at T={size.train_T}; signal ||dy_T/da_t|| along the readout, measured on adding inputs at "
        f"T={T}. Final training MSE (mean of the last 50 steps; baseline 0.167): "
        + ", ".join(f"{k} {v:.3g}" for k, v in losses.items()) + ".", "",
        *table(trained, bound=False), "",
        f"Clipping: RNN at ||W_h||_2 = {size.clip_s}, hidden {size.hidden}, SGD lr {size.clip_lr}, "
        f"{size.clip_steps} steps, batch {size.batch}, adding T={size.train_T}, {size.seeds} seeds; training MSE "
        f"(mean of the last 50 steps, mean over seeds):", "",
        *(f"- {k}: {v}" for k, v in summary.items()), "",
        f"Wall time {seconds:.0f} s.", ""])
    (out / "results.md").write_text(text)
    raw = {"size": dataclasses.asdict(size), "init": {k: v.tolist() for k, v in init.items()},
           "init_float64": {k: v.tolist() for k, v in init64.items()},
           "trained": {k: v.tolist() for k, v in trained.items()}, "final_train_mse": losses,
           "clipping_losses": {k: v.tolist() for k, v in clipped.items()}}
    (out / "results.json").write_text(json.dumps(raw))
    plot(out, init64, trained, clipped, size)


def plot(out: pathlib.Path, init: dict, trained: dict, clipped: dict, size: Size) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for ax, curves, title in ((axes[0], init, "at initialisation (float64)"), (axes[1], trained, "before / after training")):
        for name, g in curves.items():
            ax.semilogy(relative(g), label=name, ls="--" if ("default" in name or "init" in name) else "-")
        ax.axhline(HORIZON_LEVEL, color="grey", lw=0.8, ls=":")
        ax.set_xlabel("distance T - t (steps back)")
        ax.set_ylabel("signal / signal at distance 0")
        ax.set_title(f"Gradient flow through time, {title}")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "gradient_flow.png", dpi=110)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for (name, v), color in zip(clipped.items(), ("tab:red", "tab:blue")):
        for i, run in enumerate(v):
            ax.semilogy(run, color=color, alpha=0.6, lw=0.8, label=name if i == 0 else None)
    ax.axhline(1 / 6, color="grey", ls=":", label="baseline 1/6")
    ax.set_xlabel("SGD step")
    ax.set_ylabel("training MSE")
    ax.set_title(f"RNN at ||W_h||_2 = {size.clip_s}, adding T={size.train_T}: clipping on/off, {size.seeds} seeds")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "clipping.png", dpi=110)


def main() -> None:
    args = study_parser(__doc__.splitlines()[0], pathlib.Path(__file__).parent,
                        f"a smoke test at a tiny size: {QUICK}").parse_args()
    out = study_out(args, create=True)
    size = QUICK if args.quick else Size()
    start = time.perf_counter()
    init, init64 = measure_init(size)
    trained, losses = measure_trained(size)
    clipped = clipping_curves(size)
    write(out, size, init, init64, trained, losses, clipped, time.perf_counter() - start)
    print((out / "results.md").read_text())


if __name__ == "__main__":
    main()
