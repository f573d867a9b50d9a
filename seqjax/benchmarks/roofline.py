"""The roofline of a timed program: the work it does, this machine's limits, and the fraction it reaches.

**Work** (:func:`program_cost`).  Flops are counted on the program's jaxpr (:func:`count_flops`): a matrix
product ``2 m n k``, a convolution ``2`` per multiply-add, an FFT ``5 n log2 n``, one per output element of
every other arithmetic primitive and one per input element of a reduction; a ``lax.scan`` body counts
``length`` times; a compiled kernel's call (``ffi_call``) counts what its loops do
(:func:`~seqjax.ops.selective_scan_native.kernel_flops`, :func:`~seqjax.ops.attention_native.kernel_flops`).
XLA's own cost analysis counts a loop body once whatever its trip count (an LSTM layer scanned over 16 or 32
steps reports the same flops), so it undercounts every recurrence here by its length.
Bytes are the compulsory traffic: every argument read once and every result written once.

**Limits** (:func:`measure_peak`), measured in the same run: the rate of a square float32 GEMM and the
bandwidth of a triad ``a = b + s c`` over arrays far larger than the caches.

**Fraction** (:func:`fraction`): the roofline time ``max(flops / GEMM rate, bytes / bandwidth)``, a lower bound
on the program's time on this machine, over the measured time.  1 is the roofline; a recurrence, whose steps
wait on each other and whose per-step matrices are small, sits far below it.

>>> import jax.numpy as jnp
>>> count_flops(lambda a, b: a @ b, jnp.ones((4, 8)), jnp.ones((8, 3)))  # 2 m n k
192.0
>>> step = lambda h, _: (jnp.tanh(h @ jnp.ones((8, 8))), None)
>>> count_flops(lambda h: jax.lax.scan(step, h, None, length=10)[0], jnp.ones((2, 8)))  # 10 x (256 + 16)
2720.0
"""

from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from seqjax.benchmarks.timing import blocking, time_interleaved
from seqjax.ops import attention_native, selective_scan_native

# the primitives that move or reinterpret data and compute nothing
FREE = {"reshape", "broadcast_in_dim", "transpose", "squeeze", "expand_dims", "slice", "dynamic_slice",
        "dynamic_update_slice", "gather", "scatter", "concatenate", "pad", "convert_element_type", "iota",
        "copy", "copy_p", "rev", "select_and_gather_add", "stop_gradient", "device_put", "random_bits",
        "random_seed", "random_wrap", "random_unwrap", "threefry2x32", "split", "bitcast_convert_type",
        "sharding_constraint", "optimization_barrier"}
REDUCTIONS = {"reduce_sum", "reduce_max", "reduce_min", "reduce_prod", "reduce_and", "reduce_or", "argmax",
              "argmin", "cumsum", "cumprod", "cummax", "cumlogsumexp"}


class Cost(NamedTuple):
    """A program's work: ``flops`` and compulsory ``bytes`` (arguments read and results written once)."""

    flops: float
    bytes: float


class Peak(NamedTuple):
    """This machine's limits: float32 GEMM rate (flop/s) and memory bandwidth (bytes/s)."""

    flops_per_s: float
    bytes_per_s: float

    def __str__(self) -> str:
        return f"GEMM {self.flops_per_s / 1e9:.1f} GFLOP/s, memory {self.bytes_per_s / 1e9:.1f} GB/s"


def _size(aval: Any) -> int:
    return math.prod(aval.shape) if hasattr(aval, "shape") else 1


def _kernel_flops(target: str, eqn: Any) -> float | None:
    """A compiled kernel's hand count (each kernel module's ``kernel_flops``), ``None`` for an unknown one."""
    shapes = [v.aval.shape for v in eqn.invars]
    counts = (module.kernel_flops(target, shapes) for module in (selective_scan_native, attention_native))
    return next((c for c in counts if c is not None), None)


def _jaxpr_flops(jaxpr: jax.extend.core.Jaxpr) -> float:
    total = 0.0
    for eqn in jaxpr.eqns:
        name, params = eqn.primitive.name, eqn.params
        out = sum(_size(v.aval) for v in eqn.outvars)
        if name == "dot_general":
            (contract, _), _ = params["dimension_numbers"]
            lhs = eqn.invars[0].aval.shape
            total += 2.0 * out * math.prod(lhs[d] for d in contract)
        elif name == "conv_general_dilated":
            rhs = eqn.invars[1].aval.shape  # [out features, in features / groups, *window] in OIHW order
            spec = params["dimension_numbers"].rhs_spec
            total += 2.0 * out * math.prod(rhs[d] for d in spec[1:])
        elif name == "ffi_call" and (kernel := _kernel_flops(params["target_name"], eqn)) is not None:
            total += kernel
        elif name == "fft":
            total += 5.0 * out * math.log2(max(math.prod(params["fft_lengths"]), 2))
        elif name == "scan":
            total += params["length"] * _jaxpr_flops(params["jaxpr"].jaxpr)
        elif name == "while":
            total += _jaxpr_flops(params["body_jaxpr"].jaxpr)  # trip count unknown: once, as XLA does
        elif name == "cond":
            total += max(_jaxpr_flops(b.jaxpr) for b in params["branches"])
        elif any(k in params for k in ("jaxpr", "call_jaxpr", "fun_jaxpr")):
            inner = next(params[k] for k in ("jaxpr", "call_jaxpr", "fun_jaxpr") if k in params)
            total += _jaxpr_flops(getattr(inner, "jaxpr", inner))
        elif name in REDUCTIONS:
            total += sum(_size(v.aval) for v in eqn.invars)
        elif name not in FREE:
            total += out
    return total


def count_flops(f: Callable[..., Any], *args: Any) -> float:
    """The flops of ``f(*args)`` counted on its jaxpr (see the module docstring)."""
    return _jaxpr_flops(jax.make_jaxpr(f)(*args).jaxpr)


def program_cost(f: Callable[..., Any], *args: Any) -> Cost:
    """``f(*args)``'s :class:`Cost`: counted flops, and the bytes of its arguments and results (one trace)."""
    closed = jax.make_jaxpr(f)(*args)
    nbytes = sum(np.dtype(x.dtype).itemsize * _size(x) for x in [*jax.tree.leaves(args), *closed.out_avals])
    return Cost(_jaxpr_flops(closed.jaxpr), float(nbytes))


def measure_peak(gemm_size: int = 1024, triad_elements: int = 1 << 24, repeats: int = 5) -> Peak:
    """This machine's :class:`Peak`: a ``gemm_size``-square float32 GEMM and a triad over ``triad_elements``
    float32 elements per array (64 MB each by default: three arrays far beyond the caches)."""
    key_a, key_b = jax.random.split(jax.random.key(0))
    a = jax.random.normal(key_a, (gemm_size, gemm_size), jnp.float32)
    b = jax.random.normal(key_b, (gemm_size, gemm_size), jnp.float32)
    y, z = jnp.ones((triad_elements,), jnp.float32), jnp.full((triad_elements,), 2.0, jnp.float32)
    matmul, triad = jax.jit(jnp.matmul), jax.jit(lambda y, z: y + 3.0 * z)
    times = time_interleaved({"gemm": blocking(lambda: matmul(a, b)), "triad": blocking(lambda: triad(y, z))},
                             repeats=repeats)
    return Peak(2.0 * gemm_size**3 / times["gemm"].wall, 3.0 * 4 * triad_elements / times["triad"].wall)


def fraction(cost: Cost, seconds: float, peak: Peak) -> float:
    """The roofline time of ``cost`` on ``peak`` over the measured ``seconds`` (1: at the roofline)."""
    return max(cost.flops / peak.flops_per_s, cost.bytes / peak.bytes_per_s) / seconds
