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
import jax.numpy as jnp
import numpy as np

from evojax_zero.native import build_cuda as _build

__all__ = ["available", "why_unavailable", "library_path", "evaluate", "trace", "TRACE_FIELDS"]

FITNESS_TARGET = "evojax_zero_cuda_fitness"
TRACE_TARGET = "evojax_zero_cuda_trace"
TRACE_FIELDS = ("fitness", "epoch_fitness", "train_error", "train_prediction",
                "valid_error", "valid_prediction", "stopped", "train_steps")

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
    from evojax_zero import native

    return native._cache_dir()


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


def _prepare(spec, config, programs, tasks, keys):
    from evojax_zero.native import _cfg, _key_data

    dtype = jnp.dtype(programs.setup.data.dtype)
    if dtype not in (jnp.float32, jnp.float64):
        raise ValueError(f"program data must be float32 or float64, got {dtype}")
    F = int(tasks.train_x.shape[-1])
    if F != spec.feature_size:
        raise ValueError(f"tasks have {F} features; spec.feature_size is {spec.feature_size}")
    unbatched = programs.setup.op.ndim == 1
    if unbatched:
        programs = jax.tree.map(lambda x: x[None], programs)
    if programs.setup.op.ndim != 2:
        raise ValueError("programs must have one leading population axis [P]")
    P = int(programs.setup.op.shape[0])
    T, N, Nv, E = (int(tasks.train_x.shape[0]), int(tasks.train_x.shape[1]),
                   int(tasks.valid_x.shape[1]), int(tasks.epoch_order.shape[1]))
    req_train = _cfg(config, "num_train_examples", None)
    req_valid = _cfg(config, "num_valid_examples", None)
    num_train = N * E if req_train is None else max(0, min(int(req_train), N * E))
    num_valid = Nv if req_valid is None else max(0, min(int(req_valid), Nv))
    args = []
    for fn in (programs.setup, programs.predict, programs.learn):
        args += [jnp.asarray(fn.op, jnp.int32), jnp.asarray(fn.addr, jnp.int32),
                 jnp.asarray(fn.data, dtype), jnp.asarray(fn.size, jnp.int32)]
    args += [jnp.asarray(tasks.train_x, dtype), jnp.asarray(tasks.train_y, dtype),
             jnp.asarray(tasks.valid_x, dtype), jnp.asarray(tasks.valid_y, dtype),
             jnp.asarray(tasks.epoch_order, jnp.int32), _key_data(keys, P, T)]
    attrs = dict(
        num_scalars=np.int64(spec.num_scalars), num_vectors=np.int64(spec.num_vectors),
        num_matrices=np.int64(spec.num_matrices), num_train=np.int64(num_train),
        num_valid=np.int64(num_valid),
        max_abs_error=np.float64(_cfg(config, "max_abs_error", 100.0)),
        accuracy=np.int64(tasks.eval_type == "accuracy"),
    )
    dims = dict(P=P, T=T, n=min(N, num_train), E=-(-num_train // N) if N else 0, nv=num_valid,
                Nv=Nv)
    return args, attrs, dims, dtype, unbatched


def _evaluate(target: str, spec, config, programs, tasks, keys):
    from evojax_zero.native import _fitness

    args, attrs, d, dtype, unbatched = _prepare(spec, config, programs, tasks, keys)
    call = jax.ffi.ffi_call(target, jax.ShapeDtypeStruct((d["P"], d["T"], d["E"]), dtype),
                            vmap_method="sequential")
    fitness, _ = _fitness(call(*args, **attrs), tasks.eval_type == "accuracy", d["Nv"])
    return fitness[0] if unbatched else fitness


def _trace(target: str, spec, config, programs, tasks, keys) -> dict:
    from evojax_zero.native import _fitness

    args, attrs, d, dtype, unbatched = _prepare(spec, config, programs, tasks, keys)
    P, T = d["P"], d["T"]
    shapes = [
        jax.ShapeDtypeStruct((P, T, d["E"]), dtype),
        jax.ShapeDtypeStruct((P, T, d["n"]), dtype),
        jax.ShapeDtypeStruct((P, T, d["n"]), dtype),
        jax.ShapeDtypeStruct((P, T, d["nv"]), dtype),
        jax.ShapeDtypeStruct((P, T, d["nv"]), dtype),
        jax.ShapeDtypeStruct((P, T), jnp.uint8),
        jax.ShapeDtypeStruct((P, T), jnp.int32),
    ]
    call = jax.ffi.ffi_call(target, shapes, vmap_method="sequential")
    score, *rest = call(*args, **attrs)
    fitness, epoch_fitness = _fitness(score, tasks.eval_type == "accuracy", d["Nv"])
    rest[4] = rest[4].astype(bool)
    result = dict(zip(TRACE_FIELDS, [fitness, epoch_fitness, *rest], strict=True))
    if unbatched:
        result = {k: v[0] for k, v in result.items()}
    return result


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
