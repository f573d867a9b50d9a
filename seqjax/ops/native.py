"""Compiled CPU kernels: the C++ XLA FFI handlers in ``seqjax/ops/csrc``, built on first use.

A kernel is compiled once per machine with the system C++ compiler (``$CXX``, else ``c++``) against the XLA FFI
headers that ship with jaxlib, for the CPU it runs on (``-march=native``), and cached under
``$SEQJAX_KERNEL_CACHE`` (default ``~/.cache/seqjax/kernels``) by a hash of its source (and the shared headers),
the flags, the jaxlib version and the CPU, so a cluster's nodes of different CPUs each build their own. Where it
cannot be built (no compiler, a failed build), :func:`register` returns ``False`` and one warning says why; with
``SEQJAX_NATIVE=0``, off the CPU or inside :func:`jax_only` (``jax.export``: a serialized program cannot carry the
kernel), :func:`enabled` is ``False``. Either way the callers run their pure JAX form, which computes the same thing.

>>> library("no_such_kernel") is None
True
"""

from __future__ import annotations

import contextlib
import contextvars
import ctypes
import functools
import hashlib
import logging
import os
import pathlib
import platform
import shutil
import subprocess
import tempfile
from typing import Any

import jax
import jaxlib

SOURCES = pathlib.Path(__file__).resolve().parent / "csrc"
FLAGS = ("-O3", "-std=c++17", "-shared", "-fPIC", "-march=native", "-fopenmp-simd", "-pthread")
log = logging.getLogger(__name__)
_jax_only = contextvars.ContextVar("seqjax_jax_only", default=False)


def enabled() -> bool:
    """Whether compiled kernels may be used: the default backend is the CPU, ``SEQJAX_NATIVE`` is not ``0`` and
    no :func:`jax_only` is open."""
    return os.environ.get("SEQJAX_NATIVE", "1") != "0" and jax.default_backend() == "cpu" and not _jax_only.get()


@contextlib.contextmanager
def jax_only():
    """Within it, programs traced use no compiled kernel, only JAX operations (for ``jax.export``).

    The choice is made when a function is traced: a function ``jax.jit`` has already traced keeps the form it was
    traced with (its cached trace) inside or outside this context; trace a fresh function here.

    >>> with jax_only():
    ...     enabled()
    False
    """
    token = _jax_only.set(True)
    try:
        yield
    finally:
        _jax_only.reset(token)


def _cpu() -> str:
    """What identifies this CPU's instruction set: its flags line on Linux, else the platform's names."""
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return line
    except OSError:
        pass
    return f"{platform.machine()} {platform.processor()}"


def _build(source: pathlib.Path) -> pathlib.Path:
    """The shared library of ``source``, compiled into the cache unless an identical build is there."""
    compiler = os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++")
    if compiler is None:
        raise RuntimeError("no C++ compiler found (set CXX)")
    command = [compiler, *FLAGS, f"-I{jax.ffi.include_dir()}"]
    headers = [h.read_text() for h in sorted(SOURCES.glob("*.h"))]  # what every kernel may include
    parts = [source.read_text(), *headers, *command, jaxlib.__version__, _cpu()]
    key = hashlib.sha256("\0".join(parts).encode()).hexdigest()
    cache = pathlib.Path(os.environ.get("SEQJAX_KERNEL_CACHE", pathlib.Path.home() / ".cache/seqjax/kernels"))
    target = cache / f"{source.stem}-{key[:16]}.so"
    if not target.exists():
        cache.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=cache) as scratch:  # build aside, then rename: concurrent builds are safe
            built = pathlib.Path(scratch) / target.name
            result = subprocess.run([*command, str(source), "-o", str(built)], capture_output=True, text=True)
            if result.returncode != 0:
                raise RuntimeError(f"{' '.join(command)} failed: {result.stderr.strip()[-2000:]}")
            os.replace(built, target)
    return target


@functools.cache
def library(name: str) -> ctypes.CDLL | None:
    """The loaded kernel library ``csrc/<name>.cc``, or ``None`` where there is none or it cannot be built."""
    source = SOURCES / f"{name}.cc"
    if not source.exists():
        return None
    try:
        return ctypes.CDLL(str(_build(source)))
    except (OSError, RuntimeError) as error:
        log.warning("seqjax: the compiled %s kernel is unavailable, using the JAX form instead (%s)", name, error)
        return None


@functools.cache
def register(name: str, *symbols: str) -> bool:
    """Registers the FFI handlers ``symbols`` of ``csrc/<name>.cc`` as CPU targets named ``seqjax_<symbol>``;
    whether they are available."""
    lib = library(name)
    if lib is None:
        return False
    for symbol in symbols:
        jax.ffi.register_ffi_target(f"seqjax_{symbol}", jax.ffi.pycapsule(getattr(lib, symbol)), platform="cpu")
    return True


def call(name: str, symbols: tuple[str, ...], symbol: str, results: list, *args: Any, **attributes: Any) -> Any:
    """The FFI handler ``symbol`` of kernel ``name`` (registering its ``symbols``) on ``args``, returning arrays
    shaped and typed as ``results`` (arrays or ``jax.ShapeDtypeStruct``); vmapped, one call per mapped element."""
    if not register(name, *symbols):
        raise RuntimeError(f"the compiled {name} kernel is unavailable here (see seqjax.ops.native)")
    shapes = [jax.ShapeDtypeStruct(x.shape, x.dtype) for x in results]
    return jax.ffi.ffi_call(f"seqjax_{symbol}", shapes, vmap_method="sequential")(*args, **attributes)
