"""Native CPU backend: a multi-threaded C++ interpreter called from JAX through the XLA FFI.

``evaluate`` and ``trace`` are jit-compatible (they lower to one XLA custom call on CPU).
The shared library is found, in order, at

1. ``$EVOJAX_ZERO_NATIVE_LIB`` (an explicit path),
2. inside this package (built by ``pip install`` through setup.py's build step),
3. in the user cache (``$EVOJAX_ZERO_CACHE_DIR``, else ``$XDG_CACHE_HOME/evojax_zero``, else
   ``~/.cache/evojax_zero``), compiled there at first use when a C++ compiler exists (this is
   what makes ``pip install -e .`` and source checkouts work). ``EVOJAX_ZERO_NO_COMPILE=1``
   disables that compile.

If none works, :func:`available` is False and :func:`why_unavailable` says why; the pure-XLA
evaluator is then the fallback. Threads: ``$EVOJAX_ZERO_NUM_THREADS`` (default: the CPUs this
process may run on), read at each call; results do not depend on it.

Random ops (``*_UNIFORM_SET``, ``*_GAUSSIAN_SET``) draw from a counter-based stream
(splitmix64) seeded from the (program, task) key, so results do not depend on threads; they
are not the same draws as the XLA evaluator's.
"""

from __future__ import annotations

import ctypes
import functools
import glob
import os
import threading

import jax
import jax.numpy as jnp
import numpy as np

from evojax_zero.native import build as _build
from evojax_zero.program.fitness import flip_and_squash

__all__ = ["available", "why_unavailable", "library_path", "evaluate", "trace", "TRACE_FIELDS",
           "fec_hash", "fec_lookup", "fec_fill"]

FITNESS_TARGET = "evojax_zero_fitness"
TRACE_TARGET = "evojax_zero_trace"
FEC_TARGETS = {"evojax_zero_fec_hash": "EvojaxZeroFecHash",
               "evojax_zero_fec_lookup": "EvojaxZeroFecLookup",
               "evojax_zero_fec_fill": "EvojaxZeroFecFill"}
TRACE_FIELDS = ("fitness", "epoch_fitness", "train_error", "train_prediction",
                "valid_error", "valid_prediction", "stopped", "train_steps")

_lock = threading.Lock()
_state: dict = {"tried": False, "ok": False, "why": "", "path": None}


def _cache_dir() -> str:
    env = os.environ.get("EVOJAX_ZERO_CACHE_DIR")
    if env:
        return env
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "evojax_zero")


def _lib_build_id(lib: ctypes.CDLL) -> str:
    fn = lib.evojax_zero_native_build_id
    fn.restype = ctypes.c_char_p
    return fn().decode()


def _load(path: str) -> ctypes.CDLL:
    return ctypes.CDLL(os.path.abspath(path))


def _find_library() -> tuple[ctypes.CDLL | None, str | None, str]:
    """(library, path, note). note explains failures."""
    notes = []
    explicit = os.environ.get("EVOJAX_ZERO_NATIVE_LIB")
    if explicit:
        try:
            return _load(explicit), explicit, ""
        except OSError as e:
            return None, None, f"EVOJAX_ZERO_NATIVE_LIB={explicit} could not be loaded: {e}"

    try:
        import jaxlib

        jaxlib_version = jaxlib.__version__
    except ImportError:  # pragma: no cover - jax always brings jaxlib
        jaxlib_version = "unknown"
    want = _build.build_id(jaxlib_version)
    want_src = want.split(":")[0]
    compiler = _build.find_compiler()

    # 2. prebuilt by the package's install (setup.py build_ext)
    here = os.path.dirname(os.path.abspath(__file__))
    for path in sorted(glob.glob(os.path.join(here, _build.LIB_BASENAME + "*.so"))):
        try:
            lib = _load(path)
            bid = _lib_build_id(lib)
        except (OSError, AttributeError) as e:
            notes.append(f"prebuilt {path} could not be loaded: {e}")
            continue
        if bid == want:
            return lib, path, ""
        if bid.split(":")[0] == want_src and not compiler:
            # Built against another jaxlib's headers; the FFI ABI is versioned and stable, so
            # use it rather than nothing.
            return lib, path, ""
        notes.append(f"prebuilt {path} is stale (build id {bid}, want {want})")

    # 3. user cache, compiled on demand
    cache = os.path.join(_cache_dir(), f"{_build.LIB_BASENAME}-{want.replace(':', '-')}.so")
    if not os.path.exists(cache):
        if os.environ.get("EVOJAX_ZERO_NO_COMPILE", "") not in ("", "0"):
            notes.append("no prebuilt library and EVOJAX_ZERO_NO_COMPILE is set")
            return None, None, "; ".join(notes)
        if not compiler:
            notes.append("no prebuilt library and no C++ compiler found "
                         "(install g++ or set $CXX, then reinstall or re-import)")
            return None, None, "; ".join(notes)
        try:
            inc, _ = _build.jax_include_dir()
            _build.compile_library(cache, inc, jaxlib_version, compiler=compiler)
        except (ImportError, RuntimeError, OSError, Exception) as e:  # noqa: BLE001
            notes.append(f"compiling the native backend failed: {e}")
            return None, None, "; ".join(notes)
    try:
        lib = _load(cache)
        bid = _lib_build_id(lib)
    except (OSError, AttributeError) as e:
        notes.append(f"cached {cache} could not be loaded: {e}")
        return None, None, "; ".join(notes)
    if bid != want:
        notes.append(f"cached {cache} has build id {bid}, want {want}")
        return None, None, "; ".join(notes)
    return lib, cache, ""


def _init() -> None:
    with _lock:
        if _state["tried"]:
            return
        _state["tried"] = True
        lib, path, why = _find_library()
        if lib is None:
            _state["why"] = why or "native library not found"
            return
        try:
            jax.ffi.register_ffi_target(
                FITNESS_TARGET, jax.ffi.pycapsule(lib.EvojaxZeroFitness), platform="cpu")
            jax.ffi.register_ffi_target(
                TRACE_TARGET, jax.ffi.pycapsule(lib.EvojaxZeroTrace), platform="cpu")
            for target, symbol in FEC_TARGETS.items():
                jax.ffi.register_ffi_target(
                    target, jax.ffi.pycapsule(getattr(lib, symbol)), platform="cpu")
        except Exception as e:  # noqa: BLE001
            _state["why"] = f"registering the FFI targets from {path} failed: {e}"
            return
        _state.update(ok=True, why="", path=path, lib=lib)


def available() -> bool:
    """True when the native library is loaded and registered with XLA (CPU)."""
    _init()
    return bool(_state["ok"])


def why_unavailable() -> str:
    """Empty when available; otherwise why not (missing compiler, failed build, ...)."""
    _init()
    return _state["why"]


def library_path() -> str | None:
    """Path of the loaded shared library (None when unavailable)."""
    _init()
    return _state["path"]


# ---------------------------------------------------------------------------------------
# Calls
# ---------------------------------------------------------------------------------------


def _cfg(config, name, default):
    return default if config is None else getattr(config, name, default)


def _key_data(keys, P: int, T: int):
    """uint32 [P, T, K]: the key data of fold_in(key_p, t) (or raw words given as such)."""
    keys = jnp.asarray(keys) if not isinstance(keys, jax.Array) else keys
    if jnp.issubdtype(keys.dtype, jax.dtypes.prng_key):
        typed = keys
    elif keys.dtype == jnp.uint32 and keys.ndim == 3 and keys.shape[:2] == (P, T):
        return keys  # raw per-(program, task) key words
    elif keys.dtype == jnp.uint32 and keys.ndim in (1, 2):
        typed = jax.random.wrap_key_data(keys)  # legacy raw keys: [2] or [P, 2]
    else:
        raise ValueError(f"keys: expected a typed key, key array [P] or [P, T], or uint32 "
                         f"[P, T, K]; got {keys.dtype}{tuple(keys.shape)}")
    if typed.shape == ():
        typed = jax.random.split(typed, P)
    if typed.shape == (P,):
        typed = jax.vmap(lambda k: jax.vmap(lambda t: jax.random.fold_in(k, t))(
            jnp.arange(T, dtype=jnp.uint32)))(typed)
    if typed.shape != (P, T):
        raise ValueError(f"keys: expected shape (), ({P},) or ({P}, {T}); got {typed.shape}")
    return jax.random.key_data(typed).reshape(P, T, -1).astype(jnp.uint32)


def _prepare(spec, config, programs, tasks, keys):
    """Operands, attributes and result dims of a fitness/trace call (shared by the CUDA
    backend, ``evojax_zero.native.cuda``, whose targets take the same operands)."""
    # Compute dtype: the programs' data dtype (as the XLA evaluator); tasks are cast to it.
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


@functools.partial(jax.jit, static_argnums=(1, 2))
def _fitness(score, accuracy: bool, num_valid_total: int):
    """(fitness [P, T], epoch_fitness [P, T, E']) from the kernel's per-epoch scores.

    A score is the epoch's validation loss, or < 0 for fitness 0. The fitness expression is
    the XLA evaluator's (same XLA ops, so the same atan and the same rewrites), so the two
    backends agree bit for bit wherever the programs' own arithmetic does. Jitted, so an
    eager call fuses (and rounds) like a call inside jit.
    """
    dtype = score.dtype
    if accuracy:
        fit = 1.0 - score / num_valid_total
    else:
        fit = flip_and_squash(jnp.sqrt(score / num_valid_total))
    epoch_fit = jnp.where(score < 0, jnp.zeros((), dtype), fit).astype(dtype)
    best = jnp.zeros(score.shape[:-1], dtype)
    for e in range(score.shape[-1]):  # best = maximum(best, fit), as the reference
        best = jnp.maximum(best, epoch_fit[..., e])
    return best, epoch_fit


def _evaluate(target: str, spec, config, programs, tasks, keys):
    args, attrs, d, dtype, unbatched = _prepare(spec, config, programs, tasks, keys)
    call = jax.ffi.ffi_call(target, jax.ShapeDtypeStruct((d["P"], d["T"], d["E"]), dtype),
                            vmap_method="sequential")
    fitness, _ = _fitness(call(*args, **attrs), tasks.eval_type == "accuracy", d["Nv"])
    return fitness[0] if unbatched else fitness


def _trace(target: str, spec, config, programs, tasks, keys) -> dict:
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
        raise RuntimeError(f"evojax_zero native backend unavailable: {why_unavailable()}")


def evaluate(spec, config, programs, tasks, keys):
    """Per-task fitness float[P, T] (in the programs' data dtype) of programs [P] on tasks [T].

    ``config`` is an EvalConfig (or anything with ``num_train_examples``,
    ``num_valid_examples``, ``max_abs_error``; None = defaults). ``keys``: one typed key
    (split into P), a key array [P] (per task t the pair's key is ``fold_in(key_p, t)``), a key
    array [P, T], or raw uint32 key words [P, T, K]. Works inside ``jax.jit`` (CPU).
    """
    _require()
    return _evaluate(FITNESS_TARGET, spec, config, programs, tasks, keys)


def trace(spec, config, programs, tasks, keys) -> dict:
    """Fitness plus the Trace quantities of docs/evaluator_api.md, as a dict of arrays.

    fitness [P,T]; epoch_fitness [P,T,E'] (0 where not reached); train_error and
    train_prediction [P,T,n] (first epoch, NaN after an early stop); valid_error and
    valid_prediction [P,T,Nv'] (first epoch's validation, NaN where not reached);
    stopped bool [P,T]; train_steps int32 [P,T] (train steps run, a stopping step counts).
    """
    _require()
    return _trace(TRACE_TARGET, spec, config, programs, tasks, keys)


# ---------------------------------------------------------------------------------------
# Functional equivalence checking (fec.cc); the cache state is evojax_zero.search.fec_native's.
# ---------------------------------------------------------------------------------------


def fec_hash(train_error, valid_error, max_abs_error: float, num_train_examples: int):
    """WellMixedHash of every (program, task) pre-run as uint32 [B, T, 2] (low, high words):
    exactly ``evojax_zero.search.fec.batch_hash`` with ``recorded_masks`` and task index = t."""
    B, T = train_error.shape[:2]
    call = jax.ffi.ffi_call("evojax_zero_fec_hash",
                            jax.ShapeDtypeStruct((B, T, 2), jnp.uint32),
                            vmap_method="sequential")
    return call(train_error, valid_error, max_abs_error=np.float64(max_abs_error),
                num_train_examples=np.int64(num_train_examples))


def _state_shapes(state):
    return [jax.ShapeDtypeStruct(x.shape, x.dtype) for x in state]


def fec_lookup(state, hashes, cache_size: int, forget_every: int):
    """Resolve hashes [B, T, 2] in sequential order against the cache ``state`` (a tuple of
    nodes, fitness, table, meta). Returns ``(state, source int32 [B, T], cached [B, T])`` with
    the meaning of ``FECCache.lookup_batch``."""
    B, T = hashes.shape[:2]
    fdtype = state[1].dtype
    call = jax.ffi.ffi_call(
        "evojax_zero_fec_lookup",
        [*_state_shapes(state), jax.ShapeDtypeStruct((B, T), jnp.int32),
         jax.ShapeDtypeStruct((B, T), fdtype)],
        input_output_aliases={0: 0, 1: 1, 2: 2, 3: 3}, vmap_method="sequential")
    *new, source, cached = call(*state, hashes, cache_size=np.int64(cache_size),
                                forget_every=np.int64(forget_every))
    return tuple(new), source, cached


def fec_fill(state, hashes, source, per_task):
    """Write the evaluated per-task fitness [B, T] into the pending entries of ``state``."""
    call = jax.ffi.ffi_call("evojax_zero_fec_fill", _state_shapes(state),
                            input_output_aliases={0: 0, 1: 1, 2: 2, 3: 3},
                            vmap_method="sequential")
    return tuple(call(*state, hashes, source, per_task.astype(state[1].dtype)))
