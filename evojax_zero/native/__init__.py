"""Native backends: a C++ interpreter called from JAX through the XLA FFI, on CPU (this
module) and on CUDA GPUs (:mod:`evojax_zero.native.cuda`).

``evaluate`` and ``trace`` are jit-compatible (they lower to one XLA custom call). The CPU
library is found, built or rejected by :mod:`evojax_zero.native.loader` (the CUDA library
too): ``$EVOJAX_ZERO_NATIVE_LIB``, else the one ``pip install`` built into this package, else
the user cache, compiled there at first use. If none works, :func:`available` is False and
:func:`why_unavailable` says why; the pure-XLA evaluator is then the fallback.

Threads: ``$EVOJAX_ZERO_NUM_THREADS`` (default: the CPUs this process may run on), read at each
call; results do not depend on it. The tasks of a batch run in lockstep in SIMD lanes
(``execute.h``); results do not depend on that either.

Random ops (``*_UNIFORM_SET``, ``*_GAUSSIAN_SET``) draw from a counter-based stream
(splitmix64) seeded from the (program, task) key, so results do not depend on threads; they
are not the same draws as the XLA evaluator's.

Dead code: before running a program the kernel drops every instruction whose result cannot
reach a prediction (``liveness.h``; docs/evaluator.md "Dead-code elimination"); results are
bit-identical either way. ``$EVOJAX_ZERO_NATIVE_DCE=0`` (read at each call) turns it off;
:func:`dead_code` shows what the pass does to one program. With one task, programs that share
Predict and Learn run in lockstep lanes (``$EVOJAX_ZERO_NATIVE_PROGRAM_LANES=0`` turns that
off; same results).

Sharding: on a multi-device mesh, :func:`evaluate` under ``jax.jit`` is partitioned along the
program axis (a ``custom_partitioning`` rule): each device evaluates its own rows.
"""

from __future__ import annotations

import ctypes
import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental.custom_partitioning import custom_partitioning
from jax.sharding import NamedSharding, PartitionSpec

from evojax_zero.native import build as _build
from evojax_zero.native.loader import Library, cache_dir
from evojax_zero.program.fitness import flip_and_squash

__all__ = ["available", "why_unavailable", "library_path", "evaluate", "trace", "TRACE_FIELDS",
           "fec_hash", "fec_lookup", "fec_fill", "dead_code", "DCE_OUTCOMES"]

FITNESS_TARGET = "evojax_zero_fitness"
TRACE_TARGET = "evojax_zero_trace"
FEC_TARGETS = {"evojax_zero_fec_hash": "EvojaxZeroFecHash",
               "evojax_zero_fec_lookup": "EvojaxZeroFecLookup",
               "evojax_zero_fec_fill": "EvojaxZeroFecFill"}
TRACE_FIELDS = ("fitness", "epoch_fitness", "train_error", "train_prediction",
                "valid_error", "valid_prediction", "stopped", "train_steps")

LIBRARY = Library("cpu", "EVOJAX_ZERO_NATIVE_LIB", "cpu",
                  {FITNESS_TARGET: "EvojaxZeroFitness", TRACE_TARGET: "EvojaxZeroTrace",
                   **FEC_TARGETS}, packaged=True)
_cache_dir = cache_dir  # the former private name
LIB_BASENAME = _build.LIB_BASENAME


def available() -> bool:
    """True when the native library is loaded and registered with XLA (CPU)."""
    return LIBRARY.available()


def why_unavailable() -> str:
    """Empty when available; otherwise why not (missing compiler, failed build, ...)."""
    return LIBRARY.why_unavailable()


def library_path() -> str | None:
    """Path of the loaded shared library (None when unavailable)."""
    return LIBRARY.path()


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
        # 0: RMS error, 1: binary accuracy, K >= 2: multi-class accuracy with K classes.
        accuracy=np.int64(tasks.num_classes if tasks.eval_type == "multiclass_accuracy"
                          else tasks.eval_type == "accuracy"),
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


# Operands split along the program axis by the sharding rule (the program tensors and the
# per-(program, task) keys); the task arrays (operands 12-16) are replicated.
_ROW_OPERANDS = frozenset((*range(12), 17))


def _factor_names():
    for first in "abcdefghijklmnoqrsuvwxyz":  # 'p' is the program axis
        yield first
    for first in "abcdefghijklmnoqrsuvwxyz":
        for second in "abcdefghijklmnoqrsuvwxyz":
            yield first + second


def _sharding_rule(args, shapes) -> str:
    """Shardy rule of a kernel call: factor ``p`` (the program axis) is shared by the program
    operands, the keys and every result; every other dimension is its own factor."""
    names = _factor_names()

    def dims(ndim, rows):
        return " ".join(["p" if rows else next(names)] + [next(names) for _ in range(ndim - 1)])

    lhs = ", ".join(dims(a.ndim, i in _ROW_OPERANDS) for i, a in enumerate(args))
    rhs = ", ".join(dims(len(s.shape), True) for s in shapes)
    return f"{lhs} -> {rhs}"


def _kernel_call(target: str, shapes, args, attrs):
    """The custom call ``target`` on ``args`` -> results of ``shapes`` (global [P, ...]).

    Partitioned along the program axis (``custom_partitioning``): on a mesh where the
    programs are sharded over devices, each device runs the kernel on its own rows (and
    its own keys) with the tasks replicated, instead of on gathered data. Under ``vmap`` the
    call runs once per batch element (``vmap_method="sequential"``)."""
    multi = isinstance(shapes, (list, tuple))
    shapes = list(shapes) if multi else [shapes]

    def local_call(*operands):
        rows = operands[0].shape[0]  # this device's programs
        local = [jax.ShapeDtypeStruct((rows, *s.shape[1:]), s.dtype) for s in shapes]
        out = jax.ffi.ffi_call(target, local if multi else local[0],
                               vmap_method="sequential")(*operands, **attrs)
        return tuple(out) if multi else out

    def row_axis(arg_shapes):
        spec = arg_shapes[0].sharding.spec
        return spec[0] if len(spec) else None

    def shardings(mesh, axis):
        out = [NamedSharding(mesh, PartitionSpec(axis, *[None] * (len(s.shape) - 1)))
               for s in shapes]
        return tuple(out) if multi else out[0]

    def infer(mesh, arg_shapes, result_shape):
        return shardings(mesh, row_axis(arg_shapes))

    def partition(mesh, arg_shapes, result_shape):
        axis = row_axis(arg_shapes)
        arg_shardings = tuple(
            NamedSharding(mesh, PartitionSpec(axis, *[None] * (len(a.shape) - 1))
                          if i in _ROW_OPERANDS else PartitionSpec())
            for i, a in enumerate(arg_shapes))
        return mesh, local_call, shardings(mesh, axis), arg_shardings

    partitioned = custom_partitioning(local_call)
    partitioned.def_partition(infer_sharding_from_operands=infer, partition=partition,
                              sharding_rule=_sharding_rule(args, shapes))

    @jax.custom_batching.custom_vmap
    def call(*operands):
        return partitioned(*operands)

    @call.def_vmap
    def _sequential(axis_size, in_batched, *operands):
        axes = [0 if b else None for b in in_batched]
        out = jax.vmap(local_call, in_axes=axes)(*operands)
        return out, (tuple(True for _ in shapes) if multi else True)

    return call(*args)


def evaluate_target(target: str, spec, config, programs, tasks, keys):
    args, attrs, d, dtype, unbatched = _prepare(spec, config, programs, tasks, keys)
    score = _kernel_call(target, jax.ShapeDtypeStruct((d["P"], d["T"], d["E"]), dtype), args,
                         attrs)
    fitness, _ = _fitness(score, tasks.eval_type != "rms_error", d["Nv"])
    return fitness[0] if unbatched else fitness


def trace_target(target: str, spec, config, programs, tasks, keys) -> dict:
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
    score, *rest = _kernel_call(target, shapes, args, attrs)
    fitness, epoch_fitness = _fitness(score, tasks.eval_type != "rms_error", d["Nv"])
    rest[4] = rest[4].astype(bool)
    result = dict(zip(TRACE_FIELDS, [fitness, epoch_fitness, *rest], strict=True))
    if unbatched:
        result = {k: v[0] for k, v in result.items()}
    return result


def _require() -> None:
    LIBRARY.require("native")


def evaluate(spec, config, programs, tasks, keys):
    """Per-task fitness float[P, T] (in the programs' data dtype) of programs [P] on tasks [T].

    ``config`` is an EvalConfig (or anything with ``num_train_examples``,
    ``num_valid_examples``, ``max_abs_error``; None = defaults). ``keys``: one typed key
    (split into P), a key array [P] (per task t the pair's key is ``fold_in(key_p, t)``), a key
    array [P, T], or raw uint32 key words [P, T, K]. Works inside ``jax.jit`` (CPU).
    """
    _require()
    return evaluate_target(FITNESS_TARGET, spec, config, programs, tasks, keys)


def trace(spec, config, programs, tasks, keys) -> dict:
    """Fitness plus the Trace quantities of docs/evaluator_api.md, as a dict of arrays.

    fitness [P,T]; epoch_fitness [P,T,E'] (0 where not reached); train_error and
    train_prediction [P,T,n] (first epoch, NaN after an early stop); valid_error and
    valid_prediction [P,T,Nv'] (first epoch's validation, NaN where not reached);
    stopped bool [P,T]; train_steps int32 [P,T] (train steps run, a stopping step counts).
    """
    _require()
    return trace_target(TRACE_TARGET, spec, config, programs, tasks, keys)


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


# ---------------------------------------------------------------------------------------
# Dead-code elimination (liveness.h), as the kernel applies it before a run.
# ---------------------------------------------------------------------------------------

DCE_OUTCOMES = {-1: "no-op", 0: "dropped", 1: "live", 2: "dead draw kept", 3: "draws skipped"}


def dead_code(spec, program, num_classes: int = 0) -> dict[str, np.ndarray]:
    """What the kernel's dead-code pass does to one unbatched ``program``: per function an
    int32 array over its rows (``spec.max_size(fn)``) of :data:`DCE_OUTCOMES` codes: 1 live
    (runs), 0 dropped, 2 a dead gaussian draw kept to keep the random stream in step, 3 a
    dead uniform op reduced to advancing the stream, -1 a NO_OP or a row past the size.
    ``num_classes = K > 0``: multi-class tasks (the prediction is v2)."""
    _require()
    if program.batch_shape:
        raise ValueError(f"dead_code: program must be unbatched (one program), got batch shape "
                         f"{program.batch_shape}; index the population first")
    fns = [jax.device_get(program.function(fn)) for fn in ("setup", "predict", "learn")]
    L = max(int(f.op.shape[0]) for f in fns)
    op = np.zeros((3, L), np.int32)
    addr = np.zeros((3, L, 3), np.int32)
    data = np.zeros((3, L, 4), np.float64)
    size = np.zeros(3, np.int32)
    for i, f in enumerate(fns):
        n = f.op.shape[0]
        op[i, :n], addr[i, :n], data[i, :n], size[i] = f.op, f.addr, f.data, f.size
    out = np.full((3, L), -1, np.int32)
    lib = LIBRARY.handle()
    fn = lib.evojax_zero_dead_code
    ptr = ctypes.c_void_p
    fn.argtypes = [ctypes.c_int32] * 5 + [ptr] * 4 + [ctypes.c_int32, ptr]
    fn.restype = ctypes.c_int
    fn(spec.num_scalars, spec.num_vectors, spec.num_matrices, spec.feature_size,
       int(num_classes), op.ctypes.data, addr.ctypes.data, data.ctypes.data, size.ctypes.data,
       L, out.ctypes.data)
    return {name: out[i, :fns[i].op.shape[0]].copy()
            for i, name in enumerate(("setup", "predict", "learn"))}
