"""Memory benchmark: Mamba training memory vs length, S4 kernel memory vs state size.

Peak memory is read from XLA's compiled memory analysis
(``jax.jit(f).lower(...).compile().memory_analysis()``, see
:mod:`seqjax.benchmarks.memory`): the ``temp`` bytes are the intermediates
of the program, including everything a gradient keeps for its backward pass.

1. Mamba block training step (gradient of a loss over all parameters) at
   growing length ``L``: chunked selective scan with remat per chunk (the
   default) against the whole sequence as one associative scan, which holds a
   ``[batch, L, d_inner, d_state]`` state sequence. Timing of one training step
   is printed as a ratio against the one-chunk form, in the same process.
   Then, at fixed ``L``, memory against ``d_state``: what each state
   dimension costs.
2. S4 (DPLR, Cauchy) kernel at growing state size ``N``: forward and gradient,
   against a naive Cauchy sum that materializes the ``[N, L]`` terms.

Run: ``python experiments/benchmarks/memory.py`` (``--quick`` for small sizes).
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from seqjax.benchmarks.memory import compiled_memory, growth
from seqjax.ops.hippo import dplr_legs
from seqjax.models.mamba import MambaBlock
from seqjax.ops.ssm_kernel import dplr_kernel, expand_conj

MIB = 2.0**20


def mamba_train_grad(length: int, batch: int, d_model: int, d_state: int, chunk_size: int | None, method: str):
    x = jax.random.normal(jax.random.key(0), (batch, length, d_model))
    block = MambaBlock(d_model, d_state=d_state, chunk_size=chunk_size, scan_method=method)
    params = block.init(jax.random.key(1), x[:, :8])
    return jax.grad(lambda p, x: jnp.mean(block.apply(p, x) ** 2)), (params, x)


def time_call(fn, args, repeats: int = 5) -> float:
    jax.block_until_ready(fn(*args))
    start = time.perf_counter()
    for _ in range(repeats):
        jax.block_until_ready(fn(*args))
    return (time.perf_counter() - start) / repeats


def mamba_table(lengths: list[int], batch: int, d_model: int, d_state: int, chunk: int) -> None:
    d_inner = 2 * d_model
    forms = {
        f"chunked {chunk} + remat (auto)": (chunk, "auto"),
        f"chunked {chunk} + remat (associative)": (chunk, "associative"),
        "one chunk (associative)": (None, "associative"),
    }
    print(f"\n### Mamba block training step: temp memory (MiB) vs length "
          f"(batch={batch}, d_model={d_model}, d_inner={d_inner}, d_state={d_state}, "
          f"backend={jax.default_backend()})\n")
    print("| L | " + " | ".join(forms) + " | one [B, L, d_inner, d_state] f32 array |")
    print("|---" * (len(forms) + 2) + "|")
    temps: dict[str, list[float]] = {name: [] for name in forms}
    for length in lengths:
        row = []
        for name, (chunk_size, method) in forms.items():
            fn, args = mamba_train_grad(length, batch, d_model, d_state, chunk_size, method)
            temps[name].append(compiled_memory(fn, *args)["temp"])
            row.append(f"{temps[name][-1] / MIB:.2f}")
        state = batch * length * d_inner * d_state * 4
        print(f"| {length} | " + " | ".join(row) + f" | {state / MIB:.2f} |")
    print("\nGrowth (least squares over the rows): bytes per extra token, and exponent of L")
    for name, ys in temps.items():
        slope, exponent = growth(lengths, ys)
        print(f"- {name}: {slope:,.0f} B/token, ~L^{exponent:.2f}")
    print(f"- one state-sequence array: {batch * d_inner * d_state * 4:,} B/token")

    length = lengths[len(lengths) // 2]
    times = {}
    for name, (chunk_size, method) in forms.items():
        fn, args = mamba_train_grad(length, batch, d_model, d_state, chunk_size, method)
        times[name] = time_call(jax.jit(fn), args)
    base = times["one chunk (associative)"]
    print(f"\nTraining-step time at L={length}, ratio to one chunk (associative): "
          + ", ".join(f"{name} {t / base:.2f}x ({t * 1e3:.1f} ms)" for name, t in times.items()))


def mamba_state_table(states: list[int], length: int, batch: int, d_model: int, chunk: int) -> None:
    """At fixed ``L``: how much each extra state dimension costs (the full-state form pays ``B L d_inner`` floats)."""
    d_inner = 2 * d_model
    forms = {f"chunked {chunk} + remat (auto)": (chunk, "auto"), "one chunk (associative)": (None, "associative")}
    print(f"\n### Mamba block training step: temp memory (MiB) vs d_state (L={length}, batch={batch}, "
          f"d_inner={d_inner})\n")
    print("| d_state | " + " | ".join(forms) + " |")
    print("|---" * (len(forms) + 1) + "|")
    temps: dict[str, list[float]] = {name: [] for name in forms}
    for n in states:
        for name, (chunk_size, method) in forms.items():
            fn, args = mamba_train_grad(length, batch, d_model, n, chunk_size, method)
            temps[name].append(compiled_memory(fn, *args)["temp"])
        print(f"| {n} | " + " | ".join(f"{temps[name][-1] / MIB:.2f}" for name in forms) + " |")
    for name, ys in temps.items():
        print(f"- {name}: {growth(states, ys)[0]:,.0f} B per state dimension")
    print(f"- one [B, L, d_inner] f32 array (what a state dimension costs when the state sequence is held): "
          f"{batch * length * d_inner * 4:,} B")


def naive_cauchy_kernel(lam, p, b, c, dt, length):
    """The same Woodbury kernel with the Cauchy terms materialized as ``[4, H, N, L]`` (the peer)."""
    z = jnp.exp(-2j * jnp.pi * jnp.arange(length) / length)
    q = jnp.conj(p)
    w = jnp.stack([c * b, c * p, q * b, q * p])
    denom = (2.0 / dt)[:, None, None] * (1.0 - z) - lam[..., None] * (1.0 + z)  # [H, N, L]
    k_cb, k_cp, k_pb, k_pp = jnp.sum(w[..., None] / denom, axis=-2)
    k_hat = 2.0 * (k_cb - (1.0 + z) * k_cp * k_pb / (1.0 + (1.0 + z) * k_pp))
    return jnp.fft.ifft(k_hat, axis=-1).real


def s4_table(states: list[int], length: int, channels: int) -> None:
    print(f"\n### S4 kernel: temp memory (MiB) vs state size N (L={length}, H={channels}, "
          f"backend={jax.default_backend()})\n")
    print("| N | forward (blocked Cauchy) | gradient (blocked Cauchy) | forward (naive [N, L]) "
          "| gradient (naive [N, L]) |")
    print("|---|---|---|---|---|")
    ours, naive = [], []
    for n in states:
        lam, p, b = (jnp.asarray(np.broadcast_to(v, (channels, n // 2)), jnp.complex64) for v in dplr_legs(n))
        args = (lam, p, b, b, jnp.full((channels,), 0.01, jnp.float32))
        row = []
        for kernel, store in ((dplr_kernel, ours), (naive_cauchy_kernel, naive)):
            def k(lam, p, b, c, dt, kernel=kernel):
                return kernel(*(expand_conj(v) for v in (lam, p, b, c)), dt, length)

            fwd = compiled_memory(k, *args)["temp"]
            grad = compiled_memory(jax.grad(lambda *a: jnp.sum(k(*a) ** 2), argnums=(0, 1, 2, 3, 4)), *args)["temp"]
            store.append(grad)
            row += [f"{fwd / MIB:.2f}", f"{grad / MIB:.2f}"]
        print(f"| {n} | " + " | ".join(row) + " |")
    for name, ys in (("blocked Cauchy", ours), ("naive", naive)):
        slope, exponent = growth(states, ys)
        print(f"- gradient memory, {name}: {slope:,.0f} B per state, ~N^{exponent:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (seconds, for a smoke run)")
    args = parser.parse_args()
    if args.quick:
        mamba_table([128, 256, 512], batch=2, d_model=16, d_state=16, chunk=32)
        mamba_state_table([8, 32], length=256, batch=2, d_model=16, chunk=32)
        s4_table([16, 64], length=512, channels=2)
    else:
        mamba_table([512, 1024, 2048, 4096], batch=2, d_model=32, d_state=16, chunk=64)
        mamba_state_table([16, 32, 64, 128], length=2048, batch=2, d_model=32, chunk=64)
        s4_table([16, 64, 256, 1024], length=4096, channels=2)


if __name__ == "__main__":
    main()
