"""The search's ask (tournaments + mutation of a batch) as one native custom call.

``evojax_zero/native/ask.cc`` computes exactly what the jitted XLA ask computes,
``EvolutionEngine.ask(key, state, mutate)`` with :func:`evojax_zero.search.mutation.mutate`
(same threefry keys, same ``jax.random`` arithmetic, same children and parents; tests check
it), but hashes only the draws a child uses and runs no vectorised select over every
mutation branch. The normal draws of ALTER_PARAM go through XLA (``exp(normal(bits))`` from
bits the kernel returns), so those values are XLA's own.

It applies to float32 programs, 32-bit default ints (no ``jax_enable_x64``), threefry keys
with ``jax_threefry_partitionable`` and the CPU backend; :func:`applicable` says when, and
the search falls back to the XLA ask otherwise (or when ``$EVOJAX_ZERO_ASK=xla``).
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np

from evojax_zero.engine import keytree as kt
from evojax_zero.engine.regularized import EvolutionEngine, EvolutionState
from evojax_zero.native.loader import Library
from evojax_zero.program.ops import NUM_OPS
from evojax_zero.program.programs import FUNCTION_NAMES, Function, Program, ProgramSpec
from evojax_zero.search import mutation as mut
from evojax_zero.search.mutation import MutationConfig, MutationType

ASK_TARGET = "evojax_zero_ask"
NORMAL_BITS_TARGET = "evojax_zero_ask_normal_bits"
NUM_NORMALS = 5  # ALTER_PARAM's normal draws per child: act, lsf[0..2], ls1
LIBRARY = Library("ask", "EVOJAX_ZERO_ASK_LIB", "cpu",
                  {ASK_TARGET: "EvojaxZeroAsk", NORMAL_BITS_TARGET: "EvojaxZeroAskNormalBits"})


def available() -> bool:
    """True when the native ask library is loaded and registered (CPU backend)."""
    return (os.environ.get("EVOJAX_ZERO_ASK", "auto") != "xla"
            and jax.default_backend() == "cpu" and LIBRARY.available())


def why_unavailable() -> str:
    if os.environ.get("EVOJAX_ZERO_ASK", "auto") == "xla":
        return "EVOJAX_ZERO_ASK=xla"
    if jax.default_backend() != "cpu":
        return f"the native ask runs on CPU only (default backend {jax.default_backend()})"
    return LIBRARY.why_unavailable()


def applicable(key: jax.Array, population: Program) -> bool:
    """True when :func:`ask` gives the XLA ask's children for these (possibly traced)
    arguments: float32 data, int32 default ints, partitionable threefry keys."""
    if not jnp.issubdtype(key.dtype, jax.dtypes.prng_key) or key.shape != ():
        return False
    return (str(jax.random.key_impl(key)) == "threefry2x32"
            and bool(jax.config.jax_threefry_partitionable)
            and not jax.config.jax_enable_x64
            and all(getattr(population, fn).data.dtype == jnp.float32
                    for fn in FUNCTION_NAMES))


def _op_info() -> np.ndarray:
    return np.stack([mut._IN1, mut._IN2, mut._OUT, mut._CATEGORY,
                     mut._IS_UNIFORM.astype(np.int32),
                     mut._IS_GAUSSIAN.astype(np.int32)]).astype(np.int32)


def _tables(config: MutationConfig, spec: ProgramSpec):
    q = max([len(config.ops(fn)) for fn in FUNCTION_NAMES] + [1])
    op_table = np.zeros((3, q), np.int32)
    for i, fn in enumerate(FUNCTION_NAMES):
        op_table[i, :len(config.ops(fn))] = [int(o) for o in config.ops(fn)]
    return (np.asarray([int(t) for t in config.mutation_types], np.int32), op_table,
            np.asarray([len(config.ops(fn)) for fn in FUNCTION_NAMES], np.int32),
            np.asarray([config.size_bounds(fn, spec) for fn in FUNCTION_NAMES], np.int32),
            np.asarray([fn in config.mutable_functions for fn in FUNCTION_NAMES], np.int32))


def ask(key: jax.Array, state: EvolutionState, engine: EvolutionEngine,
        config: MutationConfig, spec: ProgramSpec) -> tuple[Program, jax.Array]:
    """``engine.ask(key, state, mutate)`` (children, parents) in one native call (jittable).
    Check :func:`available` and :func:`applicable` first."""
    B = engine.batch_size
    raw = jax.random.key_data(key).astype(jnp.uint32)
    if MutationType.ALTER_PARAM in config.mutation_types:
        bits = jax.ffi.ffi_call(NORMAL_BITS_TARGET,
                                jax.ShapeDtypeStruct((B, NUM_NORMALS), jnp.uint32),
                                vmap_method="sequential")(raw)
        scales = jnp.exp(kt.normal(bits, jnp.float32))
    else:
        scales = jnp.zeros((B, NUM_NORMALS), jnp.float32)
    pop = state.population
    args = [raw, state.fitness.astype(jnp.float32)]
    shapes = []
    for fn in FUNCTION_NAMES:
        f = getattr(pop, fn)
        args += [f.op, f.addr, f.data, f.size]
        shapes += [jax.ShapeDtypeStruct((B, *x.shape[1:]), x.dtype)
                   for x in (f.op, f.addr, f.data, f.size)]
    args += [scales, *(jnp.asarray(t) for t in _tables(config, spec)),
             jnp.asarray(_op_info())]
    shapes.append(jax.ShapeDtypeStruct((B,), jnp.int32))
    out = jax.ffi.ffi_call(ASK_TARGET, shapes, vmap_method="sequential")(
        *args, tournament=np.int64(engine.tournament_size),
        num_scalars=np.int64(spec.num_scalars), num_vectors=np.int64(spec.num_vectors),
        num_matrices=np.int64(spec.num_matrices), mutate_prob=np.float64(config.mutate_prob))
    fns = {fn: Function(*out[4 * i:4 * i + 4]) for i, fn in enumerate(FUNCTION_NAMES)}
    return Program(**fns), out[-1]


assert NUM_OPS == 65  # ask.cc's op tables have 65 rows
