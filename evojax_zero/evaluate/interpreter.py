"""Pure-JAX execution of one component function on typed memory.

The interpreter is written for one program and vmapped over the population. It only
compiles the ops a function may contain (``ProgramSpec.ops(fn)``), so a configuration
pays for its op set, not for all 65 ops. Instruction decoding (which op, which
addresses) is done once per evaluation, outside the loop over examples; inside, every
instruction is a handful of elementwise selects, which XLA fuses.

Semantics follow the reference executor exactly (contract sections 2 and 7): NaN rules
of min/max and heaviside, float32 const-set indices, unclamped standard deviations,
aliasing-safe reads, and ``absl::Uniform``'s ``lo >= hi -> lo`` rule.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from evojax_zero.program.fitness import atan
from evojax_zero.program.ops import OP_SPECS, Kind, Op
from evojax_zero.program.programs import Function, ProgramSpec

# Largest address count for which reads are where-chains (elementwise); above it, gathers.
_SELECT_CHAIN_MAX = 8
# Unroll the instruction loop when (instructions x allowed ops) is at most this; otherwise
# a fori_loop keeps compile time flat (65 ops unrolled over 20 instructions took minutes).
_UNROLL_BUDGET = 64


@struct.dataclass
class Memory:
    """Scalars [S], vectors [V, F], matrices [M, F, F] of one (program, task)."""

    s: jax.Array
    v: jax.Array
    m: jax.Array


def zero_memory(spec: ProgramSpec, dtype) -> Memory:
    F = spec.feature_size
    return Memory(
        s=jnp.zeros((spec.num_scalars,), dtype),
        v=jnp.zeros((spec.num_vectors, F), dtype),
        m=jnp.zeros((spec.num_matrices, F, F), dtype),
    )


@struct.dataclass
class Decoded:
    """Loop-invariant decoding of one function: per instruction, which op and where."""

    op_sel: jax.Array  # bool[L, K]: instruction l executes the k-th allowed op
    in1: jax.Array  # int32[L]
    in2: jax.Array  # int32[L]
    out: jax.Array  # int32[L]
    data: jax.Array  # float[L, 4]


def _read(mem_kind: jax.Array, addr: jax.Array) -> jax.Array:
    n = mem_kind.shape[0]
    if n == 1:
        return mem_kind[0]
    if n > _SELECT_CHAIN_MAX:
        return mem_kind[addr]
    x = mem_kind[0]
    for a in range(1, n):
        x = jnp.where(addr == a, mem_kind[a], x)
    return x


def _write(mem_kind: jax.Array, addr: jax.Array, value: jax.Array, enabled: jax.Array):
    idx = jnp.arange(mem_kind.shape[0])
    mask = (idx == addr) & enabled
    mask = mask.reshape((-1,) + (1,) * (mem_kind.ndim - 1))
    return jnp.where(mask, value[None], mem_kind)


def _sv_min(a, b):  # scalar/vector: (b < a) ? b : a
    return jnp.where(b < a, b, a)


def _sv_max(a, b):  # scalar/vector: (a < b) ? b : a
    return jnp.where(a < b, b, a)


def _m_min(a, b):  # matrix: (a < b) ? a : b
    return jnp.where(a < b, a, b)


def _m_max(a, b):  # matrix: (a > b) ? a : b
    return jnp.where(a > b, a, b)


def _tree_sum(x, axis: int = -1):
    """Sum over a power-of-two axis as a fixed pairwise tree (halves added elementwise).

    A fixed order keeps results bit-identical whatever the batch size or device count
    (XLA's own reductions may vectorise differently), and matches Eigen's packet order."""
    x = jnp.moveaxis(x, axis, -1)
    while x.shape[-1] > 1:
        h = x.shape[-1] // 2
        x = x[..., :h] + x[..., h:]
    return x[..., 0]


def _sum_all(x):
    return _tree_sum(x.reshape(-1))


def _dot(a, b):
    return _tree_sum(a * b)


def _mat_vec(m, v):
    return _tree_sum(m * v[None, :], axis=1)


def _mat_mat(a, b):
    return _tree_sum(a[:, :, None] * b[None, :, :], axis=1)


def _std(x, n):
    mean = _sum_all(x) / n
    return jnp.sqrt(_sum_all(x * x) / n - mean * mean)


def _float_index(f, F):
    """(int)(float32(F) * f) computed in float32, as the reference's FloatToIndex."""
    i = (jnp.float32(F) * f.astype(jnp.float32)).astype(jnp.int32)
    return jnp.clip(i, 0, F - 1)


class FunctionRunner:
    """Executes one component function with a static set of allowed ops."""

    def __init__(self, spec: ProgramSpec, fn: str):
        self.spec = spec
        self.fn = fn
        self.ops = tuple(o for o in spec.ops(fn) if o != Op.NO_OP)
        self.length = spec.max_size(fn)
        specs = [OP_SPECS[o] for o in self.ops]
        self.in1_kinds = {s.in1 for s in specs} - {Kind.NONE}
        self.in2_kinds = {s.in2 for s in specs} - {Kind.NONE}
        self.out_kinds = {s.out for s in specs} - {Kind.NONE}
        self.uses_random = any(s.is_random for s in specs)
        self.empty = not self.ops

    def decode(self, f: Function) -> Decoded:
        ops = jnp.asarray(self.ops, jnp.int32) if self.ops else jnp.zeros((0,), jnp.int32)
        return Decoded(
            op_sel=f.op[:, None] == ops[None, :],
            in1=f.addr[:, 0], in2=f.addr[:, 1], out=f.addr[:, 2], data=f.data,
        )

    def _random(self, key, kind: Kind, dtype):
        F = self.spec.feature_size
        shape = {Kind.SCALAR: (), Kind.VECTOR: (F,), Kind.MATRIX: (F, F)}[kind]
        ku, kn = jax.random.split(key)
        return (jax.random.uniform(ku, shape, dtype), jax.random.normal(kn, shape, dtype))

    def _results(self, ins, data, key, mem: Memory, out_addr):
        """Candidate result of every allowed op, grouped by output kind."""
        F = self.spec.feature_size
        dtype = mem.s.dtype
        s1, s2 = ins.get((1, Kind.SCALAR)), ins.get((2, Kind.SCALAR))
        v1, v2 = ins.get((1, Kind.VECTOR)), ins.get((2, Kind.VECTOR))
        m1, m2 = ins.get((1, Kind.MATRIX)), ins.get((2, Kind.MATRIX))
        act, f0, f1, f2 = data[0], data[1], data[2], data[3]
        one = jnp.asarray(1.0, dtype)
        zero = jnp.asarray(0.0, dtype)
        rnd = {}
        if self.uses_random:
            for i, kind in enumerate((Kind.SCALAR, Kind.VECTOR, Kind.MATRIX)):
                if any(OP_SPECS[o].is_random and OP_SPECS[o].out == kind for o in self.ops):
                    rnd[kind] = self._random(jax.random.fold_in(key, i), kind, dtype)

        def uniform(kind):
            u = rnd[kind][0]
            return jnp.where(f0 < f1, f0 + (f1 - f0) * u, f0 * jnp.ones_like(u))

        def gaussian(kind):
            return f0 + f1 * rnd[kind][1]

        def vconst():
            old = _read(mem.v, out_addr)
            idx = _float_index(f0, F)
            return jnp.where(jnp.arange(F) == idx, f1, old)

        def mconst():
            old = _read(mem.m, out_addr)
            i, j = _float_index(f0, F), _float_index(f1, F)
            mask = (jnp.arange(F)[:, None] == i) & (jnp.arange(F)[None, :] == j)
            return jnp.where(mask, f2, old)

        table = {
            Op.SCALAR_SUM: lambda: s1 + s2,
            Op.SCALAR_DIFF: lambda: s1 - s2,
            Op.SCALAR_PRODUCT: lambda: s1 * s2,
            Op.SCALAR_DIVISION: lambda: s1 / s2,
            Op.SCALAR_ABS: lambda: jnp.abs(s1),
            Op.SCALAR_RECIPROCAL: lambda: one / s1,
            Op.SCALAR_SIN: lambda: jnp.sin(s1),
            Op.SCALAR_COS: lambda: jnp.cos(s1),
            Op.SCALAR_TAN: lambda: jnp.tan(s1),
            Op.SCALAR_ARCSIN: lambda: jnp.arcsin(s1),
            Op.SCALAR_ARCCOS: lambda: jnp.arccos(s1),
            Op.SCALAR_ARCTAN: lambda: atan(s1),
            Op.SCALAR_EXP: lambda: jnp.exp(s1),
            Op.SCALAR_LOG: lambda: jnp.log(s1),
            Op.SCALAR_HEAVYSIDE: lambda: jnp.where(s1 >= 0, one, zero),
            Op.VECTOR_HEAVYSIDE: lambda: jnp.where(v1 > 0, one, zero),
            Op.MATRIX_HEAVYSIDE: lambda: jnp.where(m1 > 0, one, zero),
            Op.SCALAR_VECTOR_PRODUCT: lambda: s1 * v2,
            Op.SCALAR_BROADCAST: lambda: jnp.broadcast_to(s1, (F,)),
            Op.VECTOR_RECIPROCAL: lambda: one / v1,
            Op.VECTOR_NORM: lambda: jnp.sqrt(_dot(v1, v1)),
            Op.VECTOR_ABS: lambda: jnp.abs(v1),
            Op.VECTOR_SUM: lambda: v1 + v2,
            Op.VECTOR_DIFF: lambda: v1 - v2,
            Op.VECTOR_PRODUCT: lambda: v1 * v2,
            Op.VECTOR_DIVISION: lambda: v1 / v2,
            Op.VECTOR_INNER_PRODUCT: lambda: _dot(v1, v2),
            Op.VECTOR_OUTER_PRODUCT: lambda: v1[:, None] * v2[None, :],
            Op.SCALAR_MATRIX_PRODUCT: lambda: s1 * m2,
            Op.MATRIX_RECIPROCAL: lambda: one / m1,
            Op.MATRIX_VECTOR_PRODUCT: lambda: _mat_vec(m1, v2),
            Op.VECTOR_COLUMN_BROADCAST: lambda: jnp.broadcast_to(v1[:, None], (F, F)),
            Op.VECTOR_ROW_BROADCAST: lambda: jnp.broadcast_to(v1[None, :], (F, F)),
            Op.MATRIX_NORM: lambda: jnp.sqrt(_sum_all(m1 * m1)),
            Op.MATRIX_COLUMN_NORM: lambda: jnp.sqrt(_tree_sum(m1 * m1, axis=0)),
            Op.MATRIX_ROW_NORM: lambda: jnp.sqrt(_tree_sum(m1 * m1, axis=1)),
            Op.MATRIX_TRANSPOSE: lambda: m1.T,
            Op.MATRIX_ABS: lambda: jnp.abs(m1),
            Op.MATRIX_SUM: lambda: m1 + m2,
            Op.MATRIX_DIFF: lambda: m1 - m2,
            Op.MATRIX_PRODUCT: lambda: m1 * m2,
            Op.MATRIX_DIVISION: lambda: m1 / m2,
            Op.MATRIX_MATRIX_PRODUCT: lambda: _mat_mat(m1, m2),
            Op.SCALAR_MIN: lambda: _sv_min(s1, s2),
            Op.VECTOR_MIN: lambda: _sv_min(v1, v2),
            Op.MATRIX_MIN: lambda: _m_min(m1, m2),
            Op.SCALAR_MAX: lambda: _sv_max(s1, s2),
            Op.VECTOR_MAX: lambda: _sv_max(v1, v2),
            Op.MATRIX_MAX: lambda: _m_max(m1, m2),
            Op.VECTOR_MEAN: lambda: _tree_sum(v1) / F,
            Op.MATRIX_MEAN: lambda: _sum_all(m1) / (F * F),
            Op.MATRIX_ROW_MEAN: lambda: _tree_sum(m1, axis=1) / F,
            Op.MATRIX_ROW_ST_DEV: lambda: jnp.sqrt(
                _tree_sum(m1 * m1, axis=1) / F - (_tree_sum(m1, axis=1) / F) ** 2),
            Op.VECTOR_ST_DEV: lambda: _std(v1, F),
            Op.MATRIX_ST_DEV: lambda: _std(m1, F * F),
            Op.SCALAR_CONST_SET: lambda: act,
            Op.VECTOR_CONST_SET: vconst,
            Op.MATRIX_CONST_SET: mconst,
            Op.SCALAR_UNIFORM_SET: lambda: uniform(Kind.SCALAR),
            Op.VECTOR_UNIFORM_SET: lambda: uniform(Kind.VECTOR),
            Op.MATRIX_UNIFORM_SET: lambda: uniform(Kind.MATRIX),
            Op.SCALAR_GAUSSIAN_SET: lambda: gaussian(Kind.SCALAR),
            Op.VECTOR_GAUSSIAN_SET: lambda: gaussian(Kind.VECTOR),
            Op.MATRIX_GAUSSIAN_SET: lambda: gaussian(Kind.MATRIX),
        }
        return {o: table[o]().astype(dtype) for o in self.ops}

    def run(self, decoded: Decoded, mem: Memory, key: jax.Array | None) -> Memory:
        """Execute all L instructions (padding is NO_OP) in order."""
        if self.empty:
            return mem
        if self.length * len(self.ops) <= _UNROLL_BUDGET:
            for i in range(self.length):
                mem = self._step(decoded, i, mem, key)
            return mem

        def body(i, m):
            return self._step(decoded, i, m, key)

        return jax.lax.fori_loop(0, self.length, body, mem)

    def _step(self, d: Decoded, i, mem: Memory, key) -> Memory:
        sel = d.op_sel[i]
        in1, in2, out, data = d.in1[i], d.in2[i], d.out[i], d.data[i]
        mems = {Kind.SCALAR: mem.s, Kind.VECTOR: mem.v, Kind.MATRIX: mem.m}
        ins = {}
        for kind in self.in1_kinds:
            ins[(1, kind)] = _read(mems[kind], in1)
        for kind in self.in2_kinds:
            ins[(2, kind)] = _read(mems[kind], in2)
        ikey = None if key is None or not self.uses_random else jax.random.fold_in(key, i)
        results = self._results(ins, data, ikey, mem, out)
        new = dict(mems)
        for kind in self.out_kinds:
            idx = [k for k, o in enumerate(self.ops) if OP_SPECS[o].out == kind]
            value = results[self.ops[idx[0]]]
            for k in idx[1:]:
                value = jnp.where(sel[k], results[self.ops[k]], value)
            enabled = sel[idx[0]]
            for k in idx[1:]:
                enabled = enabled | sel[k]
            new[kind] = _write(mems[kind], out, value, enabled)
        return Memory(s=new[Kind.SCALAR], v=new[Kind.VECTOR], m=new[Kind.MATRIX])


def sigmoid(x: jax.Array) -> jax.Array:
    """1 / (1 + exp(-x)), as the reference computes it."""
    return 1.0 / (1.0 + jnp.exp(-x))


