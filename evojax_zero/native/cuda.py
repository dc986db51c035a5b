"""CUDA backend: the native interpreter as a CUDA kernel called from JAX through the XLA FFI.

One GPU thread per (program, task) pair runs that pair's program with the CPU backend's code
(``interpreter.h``, compiled for the device by ``interpreter_cuda.cu``): a ``switch`` per
instruction instead of the XLA evaluator's compute-every-op-and-select, the same operands and
results as :mod:`evojax_zero.native`, the same counter-based splitmix64 random stream. Scores
agree with the CPU backend bit for bit except where CUDA's sin/cos/tan/asin/acos/atan/exp/log
round differently from glibc's (1-2 ulp).

``evaluate`` and ``trace`` mirror :func:`evojax_zero.native.evaluate` / ``trace`` (same
arguments, same results) and lower to one XLA custom call on the CUDA platform; they work
inside ``jax.jit`` and under ``vmap`` (sequentially).

The library is never built at install time. At first use, and only when JAX has a CUDA
backend, it is found at ``$EVOJAX_ZERO_CUDA_LIB`` or in the user cache (the CPU backend's:
``$EVOJAX_ZERO_CACHE_DIR``, else ``$XDG_CACHE_HOME/evojax_zero``, else
``~/.cache/evojax_zero``), compiled there with nvcc when missing (a few minutes, once per
source/nvcc/jaxlib version; ``EVOJAX_ZERO_NO_COMPILE=1`` disables it). :func:`available` and
:func:`why_unavailable` report the outcome; nothing here raises at import.

Tuning (read at each call): ``EVOJAX_ZERO_CUDA_MAX_THREADS`` (default 2^18) and
``EVOJAX_ZERO_CUDA_MEMORY_BYTES`` (default 1 GiB, the threads' interpreter memory) cap the
threads of one launch; each thread then runs several pairs. Results do not depend on them.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import threading

import jax

from evojax_zero.native import TRACE_FIELDS, _evaluate, _trace  # same operands and fitness
from evojax_zero.native import _cache_dir as _native_cache_dir
from evojax_zero.native import build_cuda as _build

__all__ = ["available", "why_unavailable", "library_path", "evaluate", "trace", "TRACE_FIELDS"]

FITNESS_TARGET = "evojax_zero_cuda_fitness"
TRACE_TARGET = "evojax_zero_cuda_trace"

_lock = threading.Lock()
_state: dict = {"tried": False, "ok": False, "why": "", "path": None}


def _cuda_backend_problem() -> str:
    """Empty when JAX has a CUDA backend with at least one device; otherwise why not."""
    try:
        devices = jax.devices("cuda")
    except RuntimeError as e:
        return f"JAX has no CUDA backend ({str(e).splitlines()[0] if str(e) else e!r})"
    return "" if devices else "JAX's CUDA backend has no devices"


def _cache_dir() -> str:
    return _native_cache_dir()


def _load(path: str) -> tuple[ctypes.CDLL | None, str]:
    """(library, problem): loads, checks that the handler symbols exist."""
    try:
        lib = ctypes.CDLL(os.path.abspath(path))
        lib.EvojaxZeroCudaFitness  # noqa: B018 - raises AttributeError when missing
        lib.EvojaxZeroCudaTrace  # noqa: B018
    except (OSError, AttributeError) as e:
        return None, f"{path} could not be loaded: {e}"
    return lib, ""


def _text(lib: ctypes.CDLL, name: str) -> str:
    fn = getattr(lib, name)
    fn.restype = ctypes.c_char_p
    return fn().decode()


def _find_library() -> tuple[ctypes.CDLL | None, str | None, str]:
    """(library, path, problem)."""
    explicit = os.environ.get("EVOJAX_ZERO_CUDA_LIB")
    if explicit:
        lib, why = _load(explicit)
        return lib, explicit if lib else None, why
    nvcc = _build.find_nvcc()
    if not nvcc:
        return None, None, ("no nvcc found to build the CUDA kernel (set $EVOJAX_ZERO_NVCC or "
                            "$CUDA_HOME, or install the CUDA toolkit or jax[cuda]'s "
                            "nvidia-cuda-nvcc wheel)")
    try:
        inc, jaxlib_version = _build.jax_include_dir()
        want = _build.build_id(jaxlib_version, nvcc)
    except (ImportError, OSError, subprocess.SubprocessError) as e:
        return None, None, f"cannot prepare the CUDA build: {e}"
    path = os.path.join(_cache_dir(), f"{_build.LIB_BASENAME}-{want.replace(':', '-')}.so")
    if not os.path.exists(path):
        if os.environ.get("EVOJAX_ZERO_NO_COMPILE", "") not in ("", "0"):
            return None, None, "no cached CUDA library and EVOJAX_ZERO_NO_COMPILE is set"
        try:
            _build.compile_library(path, inc, jaxlib_version, nvcc=nvcc)
        except Exception as e:  # noqa: BLE001
            return None, None, f"compiling the CUDA kernel failed: {e}"
    lib, why = _load(path)
    if lib is None:
        return None, None, why
    bid = _text(lib, "evojax_zero_cuda_build_id")
    if bid != want:
        return None, None, f"cached {path} has build id {bid}, want {want}"
    return lib, path, ""


def _init() -> None:
    with _lock:
        if _state["tried"]:
            return
        _state["tried"] = True
        why = _cuda_backend_problem()
        if why:  # never compile (or even look for nvcc) without a GPU
            _state["why"] = why
            return
        lib, path, why = _find_library()
        if lib is None:
            _state["why"] = why or "CUDA library not found"
            return
        problem = _text(lib, "evojax_zero_cuda_probe")
        if problem:
            _state["why"] = f"{path} cannot run here: {problem}"
            return
        try:
            jax.ffi.register_ffi_target(
                FITNESS_TARGET, jax.ffi.pycapsule(lib.EvojaxZeroCudaFitness), platform="CUDA")
            jax.ffi.register_ffi_target(
                TRACE_TARGET, jax.ffi.pycapsule(lib.EvojaxZeroCudaTrace), platform="CUDA")
        except Exception as e:  # noqa: BLE001
            _state["why"] = f"registering the FFI targets from {path} failed: {e}"
            return
        _state.update(ok=True, why="", path=path, lib=lib)


def available() -> bool:
    """True when the CUDA library is built, runs on this GPU, and is registered with XLA.

    False without a JAX CUDA backend (nothing is compiled then)."""
    _init()
    return bool(_state["ok"])


def why_unavailable() -> str:
    """Empty when available; otherwise why not (no GPU backend, no nvcc, failed build, ...)."""
    _init()
    return _state["why"]


def library_path() -> str | None:
    """Path of the loaded CUDA library (None when unavailable)."""
    _init()
    return _state["path"]


# ---------------------------------------------------------------------------------------
# Calls (the operands and attributes of evojax_zero.native, whose helpers are reused so both
# backends see identical inputs and turn scores into fitness with the same XLA expression)
# ---------------------------------------------------------------------------------------


def _require() -> None:
    if not available():
        raise RuntimeError(f"evojax_zero CUDA backend unavailable: {why_unavailable()}")


def evaluate(spec, config, programs, tasks, keys):
    """Per-task fitness float[P, T] of programs [P] on tasks [T], on the GPU.

    Same arguments and result as :func:`evojax_zero.native.evaluate` (``config``: an
    EvalConfig or None; ``keys``: one typed key, a key array [P] or [P, T], or raw uint32 key
    words [P, T, K]). Works inside ``jax.jit`` on the CUDA platform.
    """
    _require()
    return _evaluate(FITNESS_TARGET, spec, config, programs, tasks, keys)


def trace(spec, config, programs, tasks, keys) -> dict:
    """Fitness plus the Trace quantities, as :func:`evojax_zero.native.trace`, on the GPU."""
    _require()
    return _trace(TRACE_TARGET, spec, config, programs, tasks, keys)
