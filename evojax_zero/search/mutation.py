"""Mutations of AutoML-Zero programs as pure, jittable functions on program tensors.

Follows the reference's ``mutator.cc`` / ``instruction.cc`` (contract sections 2 and 5):
with probability ``mutate_prob`` (1.0 = always) the child gets exactly one mutation, drawn
uniformly from ``mutation_types``; the component function is drawn uniformly among the
mutable ones (non-empty op list) and the instruction position uniformly. Otherwise the
child is an unmodified clone.

Everything works on ONE program with static shapes (``vmap`` it for a batch): insert and
remove shift rows inside the fixed-length arrays and keep NO_OP padding; random choices
are made with ``jnp.where`` / ``lax.switch``. Every result passes ``program.validate``.
The random numbers are those of plain ``jax.random`` calls on a fixed tree of keys, but
all of a child's draws are declared first and evaluated level by level
(``evojax_zero.engine.keytree``): bit-identical, and several times cheaper on CPU.

Random instructions (``Instruction(op, rand_gen)`` in the reference): op uniform from the
function's allowed list; inputs uniform in [0,S)/[0,V)/[0,M), outputs in [1,S)/[1,V)/[0,M);
data as RandomizeData: SCALAR_CONST activation ~ U(-1,1); VECTOR_CONST f0 ~ U[0,1),
f1 ~ U[-1,1); MATRIX_CONST f0,f1 ~ U[0,1), f2 ~ U[-1,1); GAUSSIAN f0 ~ U[-1,1),
f1 ~ U[0,1); UNIFORM f0, f1 ~ U[-1,1) each, *not* sorted (as the reference). Unused
addresses and data are 0.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from evojax_zero.engine import keytree as kt
from evojax_zero.program.ops import FIRST_OUT_ADDRESS, NUM_OPS, OP_SPECS, Kind, Op, as_op
from evojax_zero.program.programs import FUNCTION_NAMES, Function, Program, ProgramSpec, empty


class MutationType(enum.IntEnum):
    """The reference's ``MutationType`` ids (mutator.proto)."""

    ALTER_PARAM = 0
    RANDOMIZE_INSTRUCTION = 1
    RANDOMIZE_COMPONENT_FUNCTION = 2
    IDENTITY = 3
    INSERT_INSTRUCTION = 4
    REMOVE_INSTRUCTION = 5
    TRADE_INSTRUCTION = 6
    RANDOMIZE_ALGORITHM = 7


def as_mutation_type(t) -> MutationType:
    """Coerce an id or name (``"ALTER_PARAM"`` or ``"ALTER_PARAM_MUTATION_TYPE"``)."""
    if isinstance(t, str):
        key = t.strip().upper().removesuffix("_MUTATION_TYPE")
        try:
            return MutationType[key]
        except KeyError:
            raise ValueError(
                f"unknown mutation type {t!r}; allowed: {[m.name for m in MutationType]}"
            ) from None
    if isinstance(t, bool) or not isinstance(t, int | np.integer) or not 0 <= int(t) < 8:
        raise ValueError(
            f"mutation type must be an id 0-7 or a name, got {t!r}; "
            f"allowed: {[f'{m.value}={m.name}' for m in MutationType]}"
        )
    return MutationType(int(t))


_NEED_FUNCTION = {MutationType.ALTER_PARAM, MutationType.RANDOMIZE_INSTRUCTION,
                  MutationType.RANDOMIZE_COMPONENT_FUNCTION, MutationType.INSERT_INSTRUCTION,
                  MutationType.REMOVE_INSTRUCTION, MutationType.TRADE_INSTRUCTION}


@dataclasses.dataclass(frozen=True)
class MutationConfig:
    """What mutations may do.

    * ``setup_ops`` / ``predict_ops`` / ``learn_ops``: ops a mutation (or a random
      program) may *introduce* in that function; a subset of the ProgramSpec's. An empty
      list freezes the function (never randomized or mutated), as in the reference.
      Duplicates are kept: the op is drawn uniformly from the list as given.
    * ``mutation_types``: drawn uniformly (duplicates weight a type, as in the reference).
    * ``mutate_prob``: probability that a child is mutated (else it is a clone).
    * ``{fn}_size_min`` / ``{fn}_size_max``: insert only while ``size < max - 1``, remove
      only while ``size > min`` (the reference's bounds). ``None`` max means "up to the
      ProgramSpec's length" (max = L + 1); ``None`` min means 0.
    """

    setup_ops: tuple = ()
    predict_ops: tuple = ()
    learn_ops: tuple = ()
    mutation_types: tuple = (MutationType.ALTER_PARAM, MutationType.RANDOMIZE_INSTRUCTION,
                             MutationType.RANDOMIZE_COMPONENT_FUNCTION)
    mutate_prob: float = 0.9
    setup_size_min: int | None = None
    setup_size_max: int | None = None
    predict_size_min: int | None = None
    predict_size_max: int | None = None
    learn_size_min: int | None = None
    learn_size_max: int | None = None

    def __post_init__(self):
        for fn in FUNCTION_NAMES:
            raw = getattr(self, f"{fn}_ops")
            if isinstance(raw, str | int):
                raise ValueError(f"MutationConfig.{fn}_ops must be a list of ops, got {raw!r}")
            try:
                ops = tuple(as_op(o) for o in raw)
            except ValueError as e:
                raise ValueError(f"MutationConfig.{fn}_ops: {e}") from None
            object.__setattr__(self, f"{fn}_ops", ops)
            for bound in ("min", "max"):
                v = getattr(self, f"{fn}_size_{bound}")
                if v is not None and (isinstance(v, bool) or not isinstance(v, int | np.integer)
                                      or v < 0):
                    raise ValueError(
                        f"MutationConfig.{fn}_size_{bound} must be None or an int >= 0, got {v!r}")
            lo, hi = getattr(self, f"{fn}_size_min"), getattr(self, f"{fn}_size_max")
            if lo is not None and hi is not None and lo > hi:
                raise ValueError(f"MutationConfig.{fn}_size_min ({lo}) > {fn}_size_max ({hi})")
        types = self.mutation_types
        if isinstance(types, str | int):
            types = (types,)
        types = tuple(as_mutation_type(t) for t in types)
        if not types:
            raise ValueError("MutationConfig.mutation_types must not be empty; allowed: "
                             f"{[m.name for m in MutationType]}")
        object.__setattr__(self, "mutation_types", types)
        p = self.mutate_prob
        if isinstance(p, bool) or not isinstance(p, int | float) or not 0.0 <= p <= 1.0:
            raise ValueError(f"MutationConfig.mutate_prob must be a float in [0, 1], got {p!r}")
        if not self.mutable_functions and _NEED_FUNCTION.intersection(types):
            raise ValueError(
                "MutationConfig: every function is frozen (empty op lists) but mutation_types "
                f"{[t.name for t in types]} need a mutable function; give setup_ops, "
                "predict_ops or learn_ops, or use only IDENTITY / RANDOMIZE_ALGORITHM")

    @property
    def mutable_functions(self) -> tuple[str, ...]:
        return tuple(fn for fn in FUNCTION_NAMES if getattr(self, f"{fn}_ops"))

    def ops(self, fn: str) -> tuple[Op, ...]:
        return getattr(self, f"{fn}_ops")

    def size_bounds(self, fn: str, spec: ProgramSpec) -> tuple[int, int]:
        """(min, max) in the reference's sense, with None filled from the spec."""
        lo = getattr(self, f"{fn}_size_min")
        hi = getattr(self, f"{fn}_size_max")
        return (0 if lo is None else int(lo)), (spec.max_size(fn) + 1 if hi is None else int(hi))

    def check(self, spec: ProgramSpec) -> None:
        """Raise ValueError unless this config fits ``spec``."""
        for fn in FUNCTION_NAMES:
            allowed = set(spec.ops(fn))
            bad = [o.name for o in self.ops(fn) if o not in allowed]
            if bad:
                raise ValueError(
                    f"MutationConfig.{fn}_ops has ops {bad} that ProgramSpec.{fn}_ops does not "
                    f"allow; allowed: {[o.name for o in spec.ops(fn)]}")
            lo, hi = self.size_bounds(fn, spec)
            grows = MutationType.INSERT_INSTRUCTION in self.mutation_types
            if grows and hi - 1 > spec.max_size(fn):
                raise ValueError(
                    f"MutationConfig.{fn}_size_max={hi} lets insertions grow {fn} to {hi - 1} "
                    f"instructions but ProgramSpec.max_{fn}_size is {spec.max_size(fn)}; "
                    f"use {fn}_size_max <= {spec.max_size(fn) + 1}")


# ---------------------------------------------------------------------------------------
# Static op tables
# ---------------------------------------------------------------------------------------

_IN1 = np.array([int(s.in1) for s in OP_SPECS], np.int32)
_IN2 = np.array([int(s.in2) for s in OP_SPECS], np.int32)
_OUT = np.array([int(s.out) for s in OP_SPECS], np.int32)
# 0 = NO_OP, 1 = one input, 2 = two inputs, 3 = data op (const/uniform/gaussian set)
_CATEGORY = np.array(
    [0 if s.op == Op.NO_OP else 3 if s.is_data_op else s.num_inputs for s in OP_SPECS], np.int32)
_SC, _VC, _MC = int(Op.SCALAR_CONST_SET), int(Op.VECTOR_CONST_SET), int(Op.MATRIX_CONST_SET)
_IS_UNIFORM = np.zeros(NUM_OPS, bool)
_IS_UNIFORM[Op.SCALAR_UNIFORM_SET:Op.VECTOR_GAUSSIAN_SET - 1] = True
_IS_GAUSSIAN = np.zeros(NUM_OPS, bool)
_IS_GAUSSIAN[Op.SCALAR_GAUSSIAN_SET:NUM_OPS] = True
assert _IS_UNIFORM.sum() == 3 and _IS_GAUSSIAN.sum() == 3


def _f32(x):
    """Round to float32 (the reference stores float_data as float)."""
    return x.astype(jnp.float32)


# ---------------------------------------------------------------------------------------
# Random instructions (Instruction(op, rand_gen) and RandomizeData)
# ---------------------------------------------------------------------------------------
#
# Each random piece comes in two halves: ``_x_draws(node)`` declares its draws on a
# ``keytree`` node (the splits spell out which key each number comes from: changing them
# changes every saved experiment's children), ``_x(d, ...)`` computes from the drawn bits.


def _address_tables(spec: ProgramSpec):
    """(in_hi[kind], out_lo[kind], out_hi[kind]) with kind NONE mapping to {0}."""
    n = [1, spec.num_scalars, spec.num_vectors, spec.num_matrices]
    out_lo = [0] + [FIRST_OUT_ADDRESS[k] for k in (Kind.SCALAR, Kind.VECTOR, Kind.MATRIX)]
    return (jnp.asarray(n, jnp.int32), jnp.asarray(out_lo, jnp.int32), jnp.asarray(n, jnp.int32))


def _instruction_draws(node: kt.KeyNode):
    k1, k2, k3, kd = node.split(4)
    ka, k0, k1d, _ = kd.split(4)
    f32, i32 = jnp.float32, jnp.int32
    return {"in1": kt.randint_draw(k1, i32), "in2": kt.randint_draw(k2, i32),
            "out": kt.randint_draw(k3, i32), "act": kt.float_draw(ka, f32),
            "u01": kt.float_draw(k0, f32, (3,)), "um11": kt.float_draw(k1d, f32, (3,))}


def _instruction(d, op, spec: ProgramSpec, dtype):
    """Addresses uniform in their ranges; data as RandomizeData."""
    in_hi, out_lo, out_hi = _address_tables(spec)
    addr = jnp.stack([
        kt.randint(d["in1"], 0, in_hi[jnp.asarray(_IN1)[op]], jnp.int32),
        kt.randint(d["in2"], 0, in_hi[jnp.asarray(_IN2)[op]], jnp.int32),
        kt.randint(d["out"], out_lo[jnp.asarray(_OUT)[op]], out_hi[jnp.asarray(_OUT)[op]],
                   jnp.int32),
    ])
    # activation U(-1, 1) open at both ends (absl IntervalOpen)
    act = kt.uniform(d["act"], jnp.nextafter(jnp.float32(-1.0), jnp.float32(1.0)), 1.0,
                     jnp.float32)
    u01 = kt.uniform(d["u01"], 0.0, 1.0, jnp.float32)
    um11 = kt.uniform(d["um11"], -1.0, 1.0, jnp.float32)
    is_unif = jnp.asarray(_IS_UNIFORM)[op]
    is_gauss = jnp.asarray(_IS_GAUSSIAN)[op]
    f0 = jnp.where((op == _VC) | (op == _MC), u01[0], jnp.where(is_unif | is_gauss, um11[0], 0.0))
    f1 = jnp.where(op == _VC, um11[1], jnp.where(
        (op == _MC) | is_gauss, u01[1], jnp.where(is_unif, um11[1], 0.0)))
    f2 = jnp.where(op == _MC, um11[2], 0.0)
    a = jnp.where(op == _SC, act, 0.0)
    data = jnp.stack([a.astype(dtype), _f32(f0).astype(dtype), _f32(f1).astype(dtype),
                      _f32(f2).astype(dtype)])
    return addr, data


def random_instruction(key, op, spec: ProgramSpec, dtype):
    """A fresh random instruction with the given op: (addr int32[3], data[4])."""
    tree = kt.KeyTree(key)
    return _instruction(tree.run(_instruction_draws(tree.root)), op, spec, dtype)


def _op_table(ops) -> jax.Array:
    return jnp.asarray([int(o) for o in ops] or [0], jnp.int32)


def _row_draws(node: kt.KeyNode):
    ko, ki = node.split(2)
    return {"op": kt.randint_draw(ko), "instr": _instruction_draws(ki)}


def _row(d, ops, spec, dtype, num_ops=None):
    """A random instruction with op uniform from ``ops`` (a tuple, or a padded int32 table
    with ``num_ops`` valid entries, possibly traced)."""
    if num_ops is None:
        num_ops = len(ops)
        ops = _op_table(ops)
    op = ops[kt.randint(d["op"], 0, num_ops)]
    addr, data = _instruction(d["instr"], op, spec, dtype)
    return op, addr, data


# ---------------------------------------------------------------------------------------
# AlterParam (instruction.cc)
# ---------------------------------------------------------------------------------------


def _log_scale_or_flip_draws(node: kt.KeyNode, dtype):
    kf, kg = node.split(2)
    return {"flip": kt.float_draw(kf), "normal": kt.float_draw(kg, dtype)}


def _log_scale_or_flip(d, x):
    """W.p. 0.1 flip the sign, else multiply by exp(N(0, 1))."""
    flip = kt.uniform(d["flip"]) < 0.1
    return jnp.where(flip, -x, x * jnp.exp(kt.normal(d["normal"], x.dtype)))


def _alter_data_draws(node: kt.KeyNode, dtype):
    kc, k1, k2 = node.split(3)
    return {"c": kt.randint_draw(kc), "new_index": kt.float_draw(k1, jnp.float32),
            "act": _log_scale_or_flip_draws(k1, dtype),
            "lsf": _log_scale_or_flip_draws(k2.split_vec(3), jnp.float32),
            "ls1": kt.float_draw(k2, jnp.float32)}


def _alter_data_from(d, op, data):
    c2 = kt.randint(d["c"], 0, 2)
    c3 = kt.randint(d["c"], 0, 3)
    f = _f32(data[1:])  # float data are float32 values
    new_index = kt.uniform(d["new_index"], 0.0, 1.0, jnp.float32)
    act = jnp.where(op == _SC, _log_scale_or_flip(d["act"], data[0]), data[0])
    lsf = jax.vmap(_log_scale_or_flip)(d["lsf"], f)
    ls1 = f[1] * jnp.exp(kt.normal(d["ls1"], jnp.float32))  # log-scale only
    is_unif = jnp.asarray(_IS_UNIFORM)[op]
    is_gauss = jnp.asarray(_IS_GAUSSIAN)[op]
    # VECTOR_CONST: Choice2 {f0 = U[0,1), f1 log-scale-or-flip}
    vc = jnp.where(c2 == 0, f.at[0].set(new_index), f.at[1].set(lsf[1]))
    # MATRIX_CONST: Choice3 {f0 new, f1 new, f2 log-scale-or-flip}
    mc = jnp.select([c3 == 0, c3 == 1], [f.at[0].set(new_index), f.at[1].set(new_index)],
                    f.at[2].set(lsf[2]))
    # GAUSSIAN: Choice2 {mean log-scale-or-flip, stdev log-scale}
    ga = jnp.where(c2 == 0, f.at[0].set(lsf[0]), f.at[1].set(ls1))
    # UNIFORM: Choice2 {low, high} log-scale-or-flip, then sort
    un = jnp.where(c2 == 0, f.at[0].set(lsf[0]), f.at[1].set(lsf[1]))
    un = un.at[0].set(jnp.minimum(un[0], un[1])).at[1].set(jnp.maximum(un[0], un[1]))
    new_f = jnp.select([op == _VC, op == _MC, is_gauss, is_unif], [vc, mc, ga, un], f)
    new_f = _f32(new_f).astype(data.dtype)
    return jnp.concatenate([act[None].astype(data.dtype), new_f])


def _alter_data(key, op, data):
    """The reference's ``Instruction::AlterData`` (only called for data ops)."""
    tree = kt.KeyTree(key)
    return _alter_data_from(tree.run(_alter_data_draws(tree.root, data.dtype)), op, data)


def _alter_param_draws(node: kt.KeyNode, dtype):
    kc, ka, kb, kd = node.split(4)
    return {"c": kt.randint_draw(kc), "a": kt.randint_draw(ka, jnp.int32),
            "b": kt.randint_draw(kb, jnp.int32), "data": _alter_data_draws(kd, dtype)}


def _alter_param(d, op, addr, data, spec: ProgramSpec):
    in_hi, out_lo, out_hi = _address_tables(spec)
    cat = jnp.asarray(_CATEGORY)[op]
    new_in1 = kt.randint(d["a"], 0, in_hi[jnp.asarray(_IN1)[op]], jnp.int32)
    new_in2 = kt.randint(d["a"], 0, in_hi[jnp.asarray(_IN2)[op]], jnp.int32)
    new_out = kt.randint(d["b"], out_lo[jnp.asarray(_OUT)[op]], out_hi[jnp.asarray(_OUT)[op]],
                         jnp.int32)
    c2 = kt.randint(d["c"], 0, 2)
    c3 = kt.randint(d["c"], 0, 3)
    # 1-input: Choice2 {in1, out}; 2-input: Choice3 {in1, in2, out}; data: Choice2 {out, data}
    set_in1 = ((cat == 1) & (c2 == 0)) | ((cat == 2) & (c3 == 0))
    set_in2 = (cat == 2) & (c3 == 1)
    set_out = ((cat == 1) & (c2 == 1)) | ((cat == 2) & (c3 == 2)) | ((cat == 3) & (c2 == 0))
    alter_data = (cat == 3) & (c2 == 1)
    addr = jnp.stack([jnp.where(set_in1, new_in1, addr[0]), jnp.where(set_in2, new_in2, addr[1]),
                      jnp.where(set_out, new_out, addr[2])])
    data = jnp.where(alter_data, _alter_data_from(d["data"], op, data), data)
    return addr, data


def alter_param(key, op, addr, data, spec: ProgramSpec):
    """The reference's ``Instruction::AlterParam`` on one instruction."""
    tree = kt.KeyTree(key)
    return _alter_param(tree.run(_alter_param_draws(tree.root, data.dtype)), op, addr, data, spec)


# ---------------------------------------------------------------------------------------
# Per-function mutations
# ---------------------------------------------------------------------------------------


def _where_row(i, x, row):
    """``x`` with row ``i`` (traced; none if out of range) set to ``row``: a select,
    cheaper than a scatter under vmap."""
    hit = (jnp.arange(x.shape[0]) == i).reshape((-1,) + (1,) * (x.ndim - 1))
    return jnp.where(hit, row, x)


def _set_row(f: Function, pos, op, addr, data) -> Function:
    return f.replace(op=_where_row(pos, f.op, op), addr=_where_row(pos, f.addr, addr),
                     data=_where_row(pos, f.data, data))


def _randomize_function(d, f: Function, ops, spec, num_ops=None) -> Function:
    """``f`` with every live row from ``d`` (row draws of shape [L]); padding stays NO_OP."""
    L = f.op.shape[-1]
    op, addr, data = jax.vmap(lambda r: _row(r, ops, spec, f.data.dtype, num_ops))(d)
    live = jnp.arange(L) < f.size
    return f.replace(op=jnp.where(live, op, 0), addr=jnp.where(live[:, None], addr, 0),
                     data=jnp.where(live[:, None], data, 0).astype(f.data.dtype))


def randomize_function(key, f: Function, ops, spec, num_ops=None) -> Function:
    """Re-randomize every instruction of ``f`` (size kept; padding stays NO_OP)."""
    tree = kt.KeyTree(key)
    d = tree.run(_row_draws(tree.root.split_vec(f.op.shape[-1])))
    return _randomize_function(d, f, ops, spec, num_ops)


def _insert(f: Function, pos, op, addr, data) -> Function:
    """Insert a row at ``pos`` into an L+1 buffer (caller truncates)."""
    def ext(x):
        return jnp.concatenate([x, jnp.zeros((1, *x.shape[1:]), x.dtype)])

    def shift(x, row):
        x = ext(x)
        i = jnp.arange(x.shape[0]).reshape((-1,) + (1,) * (x.ndim - 1))
        prev = jnp.roll(x, 1, axis=0)
        return jnp.where(i < pos, x, jnp.where(i == pos, row, prev))

    return Function(op=shift(f.op, op), addr=shift(f.addr, addr), data=shift(f.data, data),
                    size=f.size + 1)


def _remove(f: Function, pos) -> Function:
    def shift(x):
        i = jnp.arange(x.shape[0]).reshape((-1,) + (1,) * (x.ndim - 1))
        nxt = jnp.roll(x, -1, axis=0).at[-1].set(0)
        return jnp.where(i < pos, x, nxt)

    return Function(op=shift(f.op), addr=shift(f.addr), data=shift(f.data), size=f.size - 1)


def _truncate(f: Function, L: int) -> Function:
    return Function(op=f.op[:L], addr=f.addr[:L], data=f.data[:L], size=f.size)


def _kinds(config: MutationConfig) -> list[int]:
    """The per-function mutation bodies this config can draw (RANDOMIZE_ALGORITHM
    re-randomizes like RANDOMIZE_COMPONENT_FUNCTION)."""
    return sorted({2 if int(t) == 7 else int(t) for t in config.mutation_types})


def _function_draws(node: kt.KeyNode, L: int, dtype, kinds):
    """Draws of one per-function mutation (only those of the bodies in ``kinds``)."""
    kp, kr, kq, ka = node.split(4)
    d = {"pos": kt.randint_draw(kp)}  # pos in [0, size), ins_pos in [0, size]
    if {1, 4, 6} & set(kinds):
        d["row"] = _row_draws(kr)
    if 6 in kinds:
        d["q"] = kt.randint_draw(kq)
    if 0 in kinds:
        d["alter"] = _alter_param_draws(ka, dtype)
    if 2 in kinds:
        d["rows"] = _row_draws(ka.split_vec(L))
    return d


def mutate_function(key, f: Function, mtype, fn: str, config: MutationConfig,
                    spec: ProgramSpec) -> Function:
    """Apply mutation ``mtype`` (traced int) to component function ``f`` (unbatched)."""
    lo, hi = config.size_bounds(fn, spec)
    ops = config.ops(fn)
    tree = kt.KeyTree(key)
    d = tree.run(_function_draws(tree.root, f.op.shape[-1], f.data.dtype, _kinds(config)))
    return _mutate_function(d, f, mtype, config, spec, _op_table(ops), len(ops), lo, hi)


def _mutate_function(d, f: Function, mtype, config: MutationConfig, spec: ProgramSpec,
                     ops, num_ops, lo, hi) -> Function:
    """``mutate_function`` from its draws ``d``, with the function's op table
    (``ops[:num_ops]``) and size bounds ``lo``, ``hi`` given as (possibly traced) values,
    so one traced body serves every component function (padded to a common length)."""
    L = f.op.shape[-1]
    dtype = f.data.dtype
    size = f.size
    kinds = _kinds(config)
    pos = kt.randint(d["pos"], 0, jnp.maximum(size, 1))  # uniform in [0, size)
    ins_pos = kt.randint(d["pos"], 0, size + 1)  # uniform in [0, size]
    if "row" in d:
        r_op, r_addr, r_data = _row(d["row"], ops, spec, dtype, num_ops)
    nonempty = size > 0

    def alter(_):
        addr, data = _alter_param(d["alter"], f.op[pos], f.addr[pos], f.data[pos], spec)
        g = _set_row(f, pos, f.op[pos], addr, data)
        return jax.tree.map(lambda a, b: jnp.where(nonempty, a, b), g, f)

    def rand_instr(_):
        g = _set_row(f, pos, r_op, r_addr, r_data)
        return jax.tree.map(lambda a, b: jnp.where(nonempty, a, b), g, f)

    def rand_fn(_):
        return _randomize_function(d["rows"], f, ops, spec, num_ops)

    def identity(_):
        return f

    def insert(_):
        g = _truncate(_insert(f, ins_pos, r_op, r_addr, r_data), L)
        return jax.tree.map(lambda a, b: jnp.where(size < hi - 1, a, b), g, f)

    def remove(_):
        g = _remove(f, pos)
        return jax.tree.map(lambda a, b: jnp.where(size > lo, a, b), g, f)

    def trade(_):
        g = _insert(f, ins_pos, r_op, r_addr, r_data)  # L+1 rows
        q = kt.randint(d["q"], 0, g.size)
        return _truncate(_remove(g, q), L)

    # Trace only the branches this config can draw (fewer branches compile much faster;
    # under vmap every branch is computed). RANDOMIZE_ALGORITHM re-randomizes like 2.
    by_type = [alter, rand_instr, rand_fn, identity, insert, remove, trade, rand_fn]
    if len(kinds) == 1:
        return by_type[kinds[0]](None)
    table = np.zeros(len(by_type), np.int32)
    for i, t in enumerate(kinds):
        table[t] = i
    table[7] = table[2]
    return jax.lax.switch(jnp.asarray(table)[mtype], [by_type[t] for t in kinds], None)


def _choice_draws(node: kt.KeyNode, config: MutationConfig):
    k_prob, k_type, k_fn = node.split(3)
    d = {"type": kt.randint_draw(k_type), "fn": kt.randint_draw(k_fn)}
    if float(config.mutate_prob) < 1.0:
        d["prob"] = kt.float_draw(k_prob)
    return d


def _mutation_choice(d, config: MutationConfig):
    p = float(config.mutate_prob)
    do = jnp.asarray(True) if p >= 1.0 else kt.uniform(d["prob"]) < p
    types = jnp.asarray([int(t) for t in config.mutation_types], jnp.int32)
    mtype = types[kt.randint(d["type"], 0, len(types))]
    chosen = kt.randint(d["fn"], 0, max(len(config.mutable_functions), 1))
    return do, mtype, chosen


def mutation_choice(key: jax.Array, config: MutationConfig):
    """(mutated?, mutation type, index into ``config.mutable_functions``) for one child:
    mutated with prob ``mutate_prob`` (always if >= 1), type uniform over the list,
    function uniform over the mutable ones."""
    tree = kt.KeyTree(key)
    return _mutation_choice(tree.run(_choice_draws(tree.root, config)), config)


def mutate(key: jax.Array, program: Program, config: MutationConfig,
           spec: ProgramSpec) -> Program:
    """Mutate ONE program as the reference's ``Mutator::Mutate`` (pure, jittable).

    ``vmap`` over keys and programs for a batch. Static arguments: ``config``, ``spec``.
    """
    if program.batch_shape:
        raise ValueError(f"mutate takes one program (vmap it); got batch {program.batch_shape}")
    config.check(spec)
    mutable = config.mutable_functions
    tree = kt.KeyTree(key)
    k_choice, k_mut = tree.root.split(2)
    draws = {"choice": _choice_draws(k_choice, config)}
    if not mutable:  # only IDENTITY / RANDOMIZE_ALGORITHM with every function frozen
        return program
    # The chosen function is mutated by ONE traced body: the mutable functions are padded
    # to a common length and stacked, per-function op tables and size bounds are
    # gathered with the traced index (compiles ~n times faster than one body each).
    stacked, tables, counts = _stack_functions(program, config, spec)
    Lmax = stacked.op.shape[-1]
    k_one, k_all = k_mut.split(2)
    draws["one"] = _function_draws(k_one, Lmax, stacked.data.dtype, _kinds(config))
    randomize_all = MutationType.RANDOMIZE_ALGORITHM in config.mutation_types
    if randomize_all:
        draws["all"] = _row_draws(k_all.split_vec(len(mutable)).split_vec(Lmax))
    d = tree.run(draws)
    do, mtype, chosen = _mutation_choice(d["choice"], config)
    bounds = jnp.asarray([config.size_bounds(fn, spec) for fn in mutable], jnp.int32)
    one = jax.tree.map(lambda x: x[chosen], stacked)
    g = _mutate_function(d["one"], one, mtype, config, spec, tables[chosen], counts[chosen],
                         bounds[chosen, 0], bounds[chosen, 1])
    new = jax.tree.map(lambda s_, x: _where_row(jnp.where(do, chosen, -1), s_, x[None]),
                       stacked, g)
    if randomize_all:
        rand_all = jax.vmap(lambda r, f, t, c: _randomize_function(r, f, t, spec, c))(
            d["all"], stacked, tables, counts)
        all_ = do & (mtype == MutationType.RANDOMIZE_ALGORITHM)
        new = jax.tree.map(lambda a, b: jnp.where(all_, a, b), rand_all, new)
    return _unstack_functions(program, new, config, spec)


def random_program(key: jax.Array, spec: ProgramSpec, config: MutationConfig,
                   sizes: Sequence[int]) -> Program:
    """The reference's RANDOM_ALGORITHM: functions of the given sizes filled with random
    instructions from each function's allowed ops (frozen functions stay all NO_OP)."""
    prog = empty(spec, sizes=sizes)
    mutable = config.mutable_functions
    if not mutable:
        return prog
    stacked, tables, counts = _stack_functions(prog, config, spec)
    tree = kt.KeyTree(key)
    d = tree.run(_row_draws(tree.root.split_vec(len(mutable)).split_vec(stacked.op.shape[-1])))
    new = jax.vmap(lambda r, f, t, c: _randomize_function(r, f, t, spec, c))(
        d, stacked, tables, counts)
    return _unstack_functions(prog, new, config, spec)


def _stack_functions(program: Program, config: MutationConfig, spec: ProgramSpec):
    """The mutable functions padded to a common length and stacked, with their op tables
    (padded) and op counts."""
    mutable = config.mutable_functions
    Lmax = max(spec.max_size(fn) for fn in mutable)

    def pad(f: Function) -> Function:
        n = Lmax - f.op.shape[-1]
        return Function(op=jnp.pad(f.op, (0, n)), addr=jnp.pad(f.addr, ((0, n), (0, 0))),
                        data=jnp.pad(f.data, ((0, n), (0, 0))), size=f.size)

    stacked = jax.tree.map(lambda *xs: jnp.stack(xs),
                           *[pad(program.function(fn)) for fn in mutable])
    n_ops = max(len(config.ops(fn)) for fn in mutable)
    tables = jnp.asarray([[int(o) for o in config.ops(fn)]
                          + [0] * (n_ops - len(config.ops(fn))) for fn in mutable], jnp.int32)
    counts = jnp.asarray([len(config.ops(fn)) for fn in mutable], jnp.int32)
    return stacked, tables, counts


def _unstack_functions(program: Program, stacked: Function, config: MutationConfig,
                       spec: ProgramSpec) -> Program:
    out = {}
    for fn in FUNCTION_NAMES:
        if fn not in config.mutable_functions:
            out[fn] = program.function(fn)
            continue
        j, L = config.mutable_functions.index(fn), spec.max_size(fn)
        out[fn] = Function(op=stacked.op[j, :L], addr=stacked.addr[j, :L],
                           data=stacked.data[j, :L], size=stacked.size[j])
    return Program(**out)
