"""CUDA backend: the native interpreter as XLA FFI custom calls on the GPU.

One thread per (program, task) pair runs the CPU backend's own per-pair code
(``interpreter.h``'s RunGroup with a group of one lane) through a ``switch`` per instruction,
the same operands and results as :mod:`evojax_zero.native`, the same counter-based
splitmix64 random stream, and the same FFI binding (``ffi_binding.h``). Scores agree with the
CPU backend bit for bit except where CUDA's sin/cos/tan/asin/acos/atan/exp/log round
differently from glibc's (1-2 ulp).

``evaluate`` and ``trace`` mirror :func:`evojax_zero.native.evaluate` / ``trace`` (same
arguments, same results) and lower to one XLA custom call on the CUDA platform; they work
inside ``jax.jit`` and under ``vmap`` (sequentially).

The library is never built at install time. At first use, and only when JAX has a CUDA
backend, the shared loader (:mod:`evojax_zero.native.loader`) finds it at
``$EVOJAX_ZERO_CUDA_LIB`` or in the user cache, compiling it there with nvcc when missing (a
few minutes, once per source/nvcc/jaxlib version; ``EVOJAX_ZERO_NO_COMPILE=1`` disables it).

Tuning (read at each call): ``EVOJAX_ZERO_CUDA_MAX_THREADS`` (default 2^18) and
``EVOJAX_ZERO_CUDA_MEMORY_BYTES`` (default 1 GiB, the threads' interpreter memory) cap the
threads of one launch; each thread then runs several pairs. Results do not depend on them.
"""

from __future__ import annotations

import jax

from evojax_zero.native import TRACE_FIELDS, evaluate_target, trace_target  # same operands
from evojax_zero.native.loader import Library, text

__all__ = ["available", "why_unavailable", "library_path", "evaluate", "trace", "TRACE_FIELDS",
           "backend_problem", "evaluate_target", "trace_target", "text"]

FITNESS_TARGET = "evojax_zero_cuda_fitness"
TRACE_TARGET = "evojax_zero_cuda_trace"


def backend_problem() -> str:
    """Empty when JAX has a CUDA backend with at least one device; otherwise why not."""
    try:
        devices = jax.devices("cuda")
    except RuntimeError as e:
        return f"JAX has no CUDA backend ({str(e).splitlines()[0] if str(e) else e!r})"
    return "" if devices else "JAX's CUDA backend has no devices"


LIBRARY = Library("cuda", "EVOJAX_ZERO_CUDA_LIB", "CUDA",
                  {FITNESS_TARGET: "EvojaxZeroFitness", TRACE_TARGET: "EvojaxZeroTrace"},
                  precondition=lambda: backend_problem())


def available() -> bool:
    """True when the CUDA library is built, runs on this GPU, and is registered with XLA.

    False without a JAX CUDA backend (nothing is compiled then)."""
    return LIBRARY.available()


def why_unavailable() -> str:
    """Empty when available; otherwise why not (no GPU backend, no nvcc, failed build, ...)."""
    return LIBRARY.why_unavailable()


def library_path() -> str | None:
    """Path of the loaded CUDA library (None when unavailable)."""
    return LIBRARY.path()


def evaluate(spec, config, programs, tasks, keys):
    """Per-task fitness float[P, T] of programs [P] on tasks [T], on the GPU.

    Same arguments and result as :func:`evojax_zero.native.evaluate` (``config``: an
    EvalConfig or None; ``keys``: one typed key, a key array [P] or [P, T], or raw uint32 key
    words [P, T, K]). Works inside ``jax.jit`` on the CUDA platform.
    """
    LIBRARY.require("CUDA")
    return evaluate_target(FITNESS_TARGET, spec, config, programs, tasks, keys)


def trace(spec, config, programs, tasks, keys) -> dict:
    """Fitness plus the Trace quantities, as :func:`evojax_zero.native.trace`, on the GPU."""
    LIBRARY.require("CUDA")
    return trace_target(TRACE_TARGET, spec, config, programs, tasks, keys)
