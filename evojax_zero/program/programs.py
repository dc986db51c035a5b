"""Programs as fixed-length instruction tensors.

A program has three component functions (Setup, Predict, Learn). Each is stored as
``op[L]`` (int32), ``addr[L, 3]`` (int32: in1, in2, out) and ``data[L, 4]`` (float:
activation_data, f0, f1, f2) plus its true ``size``; slots past ``size`` hold NO_OP.
A population is the same pytree with a leading axis.

Plain per-instruction lists use the reference's order
``[op, in1, in2, out, activation_data, f0, f1, f2]``. Unused addresses are 0.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from evojax_zero.program.ops import (
    FIRST_OUT_ADDRESS,
    KIND_PREFIX,
    NUM_OPS,
    OP_SPECS,
    SUPPORTED_FEATURE_SIZES,
    Kind,
    Op,
    as_op_list,
    op_from_name,
)

FUNCTION_NAMES = ("setup", "predict", "learn")
# Which of (activation_data, f0, f1, f2) each data-carrying op uses.
DATA_FIELDS_USED = {Op.SCALAR_CONST_SET: (0,), Op.VECTOR_CONST_SET: (1, 2),
                    Op.MATRIX_CONST_SET: (1, 2, 3),
                    **{Op(o): (1, 2) for o in range(Op.SCALAR_UNIFORM_SET, 65)}}
_TITLES = {"setup": "Setup", "predict": "Predict", "learn": "Learn"}


def float_dtype():
    """float64 when ``jax_enable_x64`` is on, else float32."""
    return jnp.float64 if jax.config.jax_enable_x64 else jnp.float32


@dataclasses.dataclass(frozen=True)
class ProgramSpec:
    """Memory sizes, the ops each function may contain, and maximum function lengths.

    ``setup_ops`` etc. are the ops a program may *contain* (NO_OP is always allowed);
    the evaluator only compiles these. Which ops mutations may *introduce* is the
    search's business (see ``evojax_zero.search.mutation``).
    """

    num_scalars: int = 4
    num_vectors: int = 3
    num_matrices: int = 1
    feature_size: int = 4
    setup_ops: tuple[Op, ...] = ()
    predict_ops: tuple[Op, ...] = ()
    learn_ops: tuple[Op, ...] = ()
    max_setup_size: int = 10
    max_predict_size: int = 10
    max_learn_size: int = 10

    def __post_init__(self):
        for name, lo in (("num_scalars", 2), ("num_vectors", 1), ("num_matrices", 1)):
            value = getattr(self, name)
            if not isinstance(value, int | np.integer) or value < lo:
                raise ValueError(f"ProgramSpec.{name} must be an int >= {lo}, got {value!r}")
        if self.feature_size not in SUPPORTED_FEATURE_SIZES:
            raise ValueError(
                f"ProgramSpec.feature_size must be one of {SUPPORTED_FEATURE_SIZES}, "
                f"got {self.feature_size!r}"
            )
        for fn in FUNCTION_NAMES:
            object.__setattr__(self, f"{fn}_ops", as_op_list(getattr(self, f"{fn}_ops")))
            size = getattr(self, f"max_{fn}_size")
            if not isinstance(size, int | np.integer) or size < 1:
                raise ValueError(f"ProgramSpec.max_{fn}_size must be an int >= 1, got {size!r}")

    def ops(self, fn: str) -> tuple[Op, ...]:
        """Ops allowed in function ``fn`` (NO_OP included)."""
        return tuple(sorted({Op.NO_OP, *getattr(self, f"{fn}_ops")}))

    def max_size(self, fn: str) -> int:
        return int(getattr(self, f"max_{fn}_size"))

    def num_addresses(self, kind: Kind) -> int:
        return {Kind.SCALAR: self.num_scalars, Kind.VECTOR: self.num_vectors,
                Kind.MATRIX: self.num_matrices}[kind]

    def replace(self, **changes) -> ProgramSpec:
        return dataclasses.replace(self, **changes)


@struct.dataclass
class Function:
    """One component function (optionally batched on leading axes)."""

    op: jax.Array  # int32[..., L]
    addr: jax.Array  # int32[..., L, 3]  (in1, in2, out)
    data: jax.Array  # float[..., L, 4]  (activation_data, f0, f1, f2)
    size: jax.Array  # int32[...]


@struct.dataclass
class Program:
    """Setup, Predict and Learn; leading axes (if any) index the population."""

    setup: Function
    predict: Function
    learn: Function

    def function(self, fn: str) -> Function:
        return getattr(self, fn)

    @property
    def batch_shape(self) -> tuple[int, ...]:
        return tuple(self.setup.size.shape)


# ---------------------------------------------------------------------------------------
# Validation and construction from plain lists
# ---------------------------------------------------------------------------------------


def _check_instruction(spec: ProgramSpec, fn: str, pos: int, instr: Sequence) -> list:
    where = f"{_TITLES[fn]} instruction {pos}"
    if not 4 <= len(instr) <= 8:
        raise ValueError(
            f"{where}: expected [op, in1, in2, out, activation_data, f0, f1, f2] "
            f"(4 to 8 entries; missing data is 0), got {len(instr)} entries: {instr!r}"
        )
    values = list(instr) + [0.0] * (8 - len(instr))
    op = values[0]
    if isinstance(op, str):
        try:
            op = op_from_name(op)
        except ValueError as e:
            raise ValueError(f"{where}: {e}") from None
    if isinstance(op, bool) or not isinstance(op, int | np.integer) or not 0 <= op < NUM_OPS:
        raise ValueError(f"{where}: unknown op {values[0]!r}; ops are ints 0-{NUM_OPS - 1}")
    op = Op(int(op))
    if op not in spec.ops(fn):
        raise ValueError(
            f"{where}: op {op.name} ({int(op)}) is not allowed in {_TITLES[fn]}; "
            f"allowed: {[o.name for o in spec.ops(fn)]}"
        )
    op_spec = OP_SPECS[op]
    addrs = []
    for slot, kind in (("in1", op_spec.in1), ("in2", op_spec.in2), ("out", op_spec.out)):
        a = values[1 + ("in1", "in2", "out").index(slot)]
        if isinstance(a, bool) or not isinstance(a, int | np.integer):
            raise ValueError(f"{where} ({op.name}): address {slot}={a!r} must be an int")
        a = int(a)
        if kind == Kind.NONE:
            addrs.append(0)  # unused operands are normalised to 0
            continue
        lo = FIRST_OUT_ADDRESS[kind] if slot == "out" else 0
        hi = spec.num_addresses(kind)
        if not lo <= a < hi:
            raise ValueError(
                f"{where} ({op.name}): {slot} address {KIND_PREFIX[kind]}{a} is out of range; "
                f"{kind.name.lower()} {slot} addresses must be in [{lo}, {hi})"
            )
        addrs.append(a)
    data = [float(values[4])] + [float(np.float32(x)) for x in values[5:8]]
    index_fields = {Op.VECTOR_CONST_SET: (1,), Op.MATRIX_CONST_SET: (1, 2)}.get(op, ())
    for k in index_fields:
        if not 0.0 <= data[k] < 1.0:
            raise ValueError(
                f"{where} ({op.name}): index fraction f{k - 1}={data[k]!r} must be in [0, 1) "
                f"(the entry written is int(F * f{k - 1}))")
    used = DATA_FIELDS_USED.get(op, ())
    data = [x if k in used else 0.0 for k, x in enumerate(data)]  # unused data is normalised
    return [int(op), *addrs, *data]


def function_from_lists(spec: ProgramSpec, fn: str, instructions: Sequence[Sequence]) -> Function:
    """Build one unbatched component function from plain instruction lists."""
    if fn not in FUNCTION_NAMES:
        raise ValueError(f"function must be one of {FUNCTION_NAMES}, got {fn!r}")
    max_len = spec.max_size(fn)
    if len(instructions) > max_len:
        raise ValueError(
            f"{_TITLES[fn]} has {len(instructions)} instructions; max_{fn}_size is {max_len}"
        )
    rows = [_check_instruction(spec, fn, i, ins) for i, ins in enumerate(instructions)]
    op = np.zeros((max_len,), np.int32)
    addr = np.zeros((max_len, 3), np.int32)
    data = np.zeros((max_len, 4), np.float64)
    for i, r in enumerate(rows):
        op[i] = r[0]
        addr[i] = r[1:4]
        data[i] = r[4:8]
    return Function(
        op=jnp.asarray(op),
        addr=jnp.asarray(addr),
        data=jnp.asarray(data, dtype=float_dtype()),
        size=jnp.asarray(len(rows), jnp.int32),
    )


def from_lists(
    spec: ProgramSpec,
    setup: Sequence[Sequence] = (),
    predict: Sequence[Sequence] = (),
    learn: Sequence[Sequence] = (),
) -> Program:
    """Build an unbatched Program from per-instruction lists (reference op ids)."""
    if not isinstance(spec, ProgramSpec):
        raise ValueError(f"spec must be a ProgramSpec, got {type(spec).__name__}")
    return Program(
        setup=function_from_lists(spec, "setup", setup),
        predict=function_from_lists(spec, "predict", predict),
        learn=function_from_lists(spec, "learn", learn),
    )


def to_lists(program: Program) -> dict[str, list[list]]:
    """Export an unbatched Program to plain lists (only the first ``size`` instructions)."""
    if program.batch_shape:
        raise ValueError(f"to_lists takes one program; got batch shape {program.batch_shape}")
    out = {}
    for fn in FUNCTION_NAMES:
        f = jax.device_get(program.function(fn))
        n = int(f.size)
        out[fn] = [
            [int(f.op[i]), *map(int, f.addr[i]), *map(float, f.data[i])] for i in range(n)
        ]
    return out


def stack(programs: Sequence[Program]) -> Program:
    """Stack unbatched programs into a population (leading axis)."""
    if not programs:
        raise ValueError("stack needs at least one program")
    return jax.tree.map(lambda *xs: jnp.stack(xs), *programs)


def unstack(programs: Program) -> list[Program]:
    """Split a population with one leading axis into a list of programs."""
    n = programs.batch_shape[0]
    return [jax.tree.map(lambda x, i=i: x[i], programs) for i in range(n)]


def index(programs: Program, i) -> Program:
    """The i-th program of a population."""
    return jax.tree.map(lambda x: x[i], programs)


def empty(spec: ProgramSpec, batch_shape: tuple[int, ...] = (), sizes=None) -> Program:
    """All-NO_OP programs. ``sizes`` gives (setup, predict, learn) sizes (default 0)."""
    sizes = (0, 0, 0) if sizes is None else tuple(sizes)
    fns = {}
    for fn, n in zip(FUNCTION_NAMES, sizes, strict=True):
        L = spec.max_size(fn)
        if not 0 <= n <= L:
            raise ValueError(f"size of {fn} must be in [0, {L}], got {n}")
        fns[fn] = Function(
            op=jnp.zeros((*batch_shape, L), jnp.int32),
            addr=jnp.zeros((*batch_shape, L, 3), jnp.int32),
            data=jnp.zeros((*batch_shape, L, 4), float_dtype()),
            size=jnp.full(batch_shape, n, jnp.int32),
        )
    return Program(**fns)


_INT_MIN, _INT_MAX = np.iinfo(np.int32).min, np.iinfo(np.int32).max


@functools.lru_cache(maxsize=64)
def _op_tables(spec: ProgramSpec, fn: str):
    """Per-op lookup tables of function ``fn``: allowed[op], address bounds lo/hi[op, slot]
    (unused slots unbounded) and which data columns are index fractions in [0, 1)."""
    allowed = np.zeros(NUM_OPS, bool)
    allowed[[int(o) for o in spec.ops(fn)]] = True
    lo = np.full((NUM_OPS, 3), _INT_MIN, np.int32)
    hi = np.full((NUM_OPS, 3), _INT_MAX, np.int32)
    frac = np.zeros((NUM_OPS, 4), bool)
    for s in OP_SPECS:
        for slot, kind in enumerate((s.in1, s.in2, s.out)):
            if kind != Kind.NONE:
                lo[s.op, slot] = FIRST_OUT_ADDRESS[kind] if slot == 2 else 0
                hi[s.op, slot] = spec.num_addresses(kind) - 1
    frac[Op.VECTOR_CONST_SET, 1] = True
    frac[Op.MATRIX_CONST_SET, 1:3] = True
    return allowed, lo, hi, frac


def _bad_mask(xp, spec: ProgramSpec, fn: str, f) -> tuple:
    """Per program: bad size; per instruction: bad instruction, bad padding. ``xp`` is
    NumPy (for the messages) or jax.numpy (for the one jitted reduction)."""
    L = spec.max_size(fn)
    allowed, lo, hi, frac = (xp.asarray(t) for t in _op_tables(spec, fn))
    ops, addr, size = f.op.reshape(-1, L), f.addr.reshape(-1, L, 3), f.size.reshape(-1)
    d32 = f.data.reshape(-1, L, 4).astype(np.float32)
    bad_size = (size < 0) | (size > L)
    active = xp.arange(L)[None, :] < size[:, None]
    known = (ops >= 0) & (ops < NUM_OPS)
    safe = xp.where(known, ops, 0)
    bad_addr = ((addr < lo[safe]) | (addr > hi[safe])).any(-1)
    bad_frac = (frac[safe] & ~((d32 >= 0) & (d32 < 1))).any(-1)
    bad_pad = ~active & (ops != 0)
    bad = (active & (~known | ~allowed[safe] | bad_addr | bad_frac)) | bad_pad
    return bad_size, bad, bad_pad


# From this many programs on, ``validate`` first runs one jitted reduction (cheaper per call
# than the host copy and NumPy masks, but compiled once per spec and population shape).
JIT_CHECK_MIN_PROGRAMS = 128


@functools.lru_cache(maxsize=16)
def _any_invalid(spec: ProgramSpec):
    """One jitted reduction over the population: is any program invalid? (compiled once per
    spec and population shape)."""
    def any_bad(program):
        flags = []
        for fn in FUNCTION_NAMES:
            bad_size, bad, _ = _bad_mask(jnp, spec, fn, program.function(fn))
            flags += [bad_size.any(), bad.any()]
        return jnp.stack(flags).any()

    return jax.jit(any_bad)


def check_structure(spec: ProgramSpec, program) -> tuple[int, ...]:
    """Types, dtypes and shapes of a (possibly batched, possibly traced) Program against
    ``spec``; returns the batch shape. Cheap: no values are read."""
    if not isinstance(program, Program):
        raise ValueError(f"programs must be a Program (from program.from_lists/from_text/"
                         f"stack), got {type(program).__name__}")
    batch = None
    for fn in FUNCTION_NAMES:
        f = program.function(fn)
        if not isinstance(f, Function):
            raise ValueError(f"programs.{fn} must be a Function, got {type(f).__name__}")
        L = spec.max_size(fn)
        for field, kind, tail in (("op", "iu", (L,)), ("addr", "iu", (L, 3)),
                                  ("data", "f", (L, 4)), ("size", "iu", ())):
            x = getattr(f, field)
            shape, dt = getattr(x, "shape", None), getattr(x, "dtype", None)
            if shape is None or dt is None:
                raise ValueError(f"programs.{fn}.{field} must be an array, got "
                                 f"{type(x).__name__}")
            if np.dtype(dt).kind not in kind:
                want = "a float" if kind == "f" else "an int"
                raise ValueError(f"programs.{fn}.{field} must have {want} dtype, got {dt}; "
                                 f"fix: build programs with program.from_lists or empty")
            if len(shape) < len(tail) or tuple(shape[len(shape) - len(tail):]) != tail:
                raise ValueError(
                    f"programs.{fn}.{field} has shape {tuple(shape)}; the spec needs [..., "
                    f"{', '.join(map(str, tail))}] (max_{fn}_size={L})" if tail else
                    f"programs.{fn}.size has shape {tuple(shape)}")
            b = tuple(shape[:len(shape) - len(tail)])
            if batch is None:
                batch = b
            elif b != batch:
                raise ValueError(f"programs.{fn}.{field} has batch shape {b}, other fields "
                                 f"{batch}; fix: stack whole programs with program.stack")
    return batch


def validate(spec: ProgramSpec, program: Program) -> None:
    """Raise ValueError if any program of a (possibly batched) population is invalid:
    wrong types/shapes for ``spec``, size outside [0, L], ops unknown or not allowed in the
    function, non-NO_OP padding, addresses out of range, index fractions outside [0, 1).

    Vectorised: populations of at least ``JIT_CHECK_MIN_PROGRAMS`` go through one jitted
    reduction (compiled once per spec and shape; the arrays are copied to the host only if
    it finds a bad program), smaller ones through the same masks in NumPy (no compile). The
    message names the first bad program, function and instruction."""
    batch = check_structure(spec, program)
    num = int(np.prod(batch))
    if num >= JIT_CHECK_MIN_PROGRAMS and not bool(_any_invalid(spec)(program)):
        return  # large populations: no host copy unless something is wrong
    progs = jax.tree.map(np.asarray, jax.device_get(program))
    for fn in FUNCTION_NAMES:
        f = progs.function(fn)
        L = spec.max_size(fn)
        ops, addr, data = f.op.reshape(-1, L), f.addr.reshape(-1, L, 3), f.data.reshape(-1, L, 4)
        size = f.size.reshape(-1)
        bad_size, bad, bad_pad = _bad_mask(np, spec, fn, f)

        def where(b):
            return f"program {b} " if batch else ""

        if bad_size.any():
            b = int(np.argmax(bad_size))
            raise ValueError(f"{where(b)}{fn}: size {size[b]} not in [0, {L}] "
                             f"(max_{fn}_size); {int(bad_size.sum())} program(s) affected")
        if bad.any():
            b, i = (int(v) for v in np.argwhere(bad)[0])
            more = int(bad.sum()) - 1
            tail = f" ({more} more bad instruction(s) in {fn})" if more else ""
            if bad_pad[b, i]:
                raise ValueError(f"{where(b)}{fn} instruction {i}: padding must be NO_OP "
                                 f"(op 0) past size {size[b]}, got op {ops[b, i]}{tail}")
            row = [int(ops[b, i]), *map(int, addr[b, i]), *map(float, data[b, i])]
            try:
                _check_instruction(spec, fn, i, row)
            except ValueError as e:
                raise ValueError(f"{where(b)}{fn}: {e}{tail}") from None
            raise AssertionError(f"validate: unexplained bad instruction {row}")  # unreachable


# ---------------------------------------------------------------------------------------
# Text form in the reference's style
# ---------------------------------------------------------------------------------------


def _fmt32(x: float) -> str:
    return np.format_float_positional(np.float32(x), unique=True, trim="-")


def _fmt64(x: float) -> str:
    return repr(float(x))


def instruction_to_text(row: Sequence, single: bool = False) -> str:
    """One instruction (plain list) as reference-style code, e.g. ``s1 = dot(v1, v0)``.

    ``single`` prints activation data as float32 (programs stored in float32)."""
    op, in1, in2, out, act, f0, f1, f2 = (list(row) + [0.0] * 8)[:8]
    s = OP_SPECS[int(op)]
    if s.op == Op.NO_OP:
        return "NoOp()"
    lhs = f"{KIND_PREFIX[s.out]}{int(out)}"
    if s.op == Op.VECTOR_CONST_SET:
        lhs += f"[{_fmt32(f0)}]"
    elif s.op == Op.MATRIX_CONST_SET:
        lhs += f"[{_fmt32(f0)}, {_fmt32(f1)}]"
    a = f"{KIND_PREFIX[s.in1]}{int(in1)}" if s.in1 else ""
    b = f"{KIND_PREFIX[s.in2]}{int(in2)}" if s.in2 else ""
    rhs = s.template.format(
        a=a, b=b, act=_fmt32(act) if single else _fmt64(act),
        f0=_fmt32(f0), f1=_fmt32(f1), f2=_fmt32(f2))
    return f"{lhs} = {rhs}"


def to_text(program: Program) -> str:
    """Readable code for one program, in the reference's ``def Setup():`` style."""
    lists = to_lists(program)
    single = program.setup.data.dtype == np.float32
    lines = []
    for fn in FUNCTION_NAMES:
        lines.append(f"def {_TITLES[fn]}():")
        lines.extend("  " + instruction_to_text(r, single) for r in lists[fn])
    return "\n".join(lines) + "\n"


_NUM = r"([-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?|inf|nan))"


def _build_patterns():
    patterns = []
    for s in OP_SPECS:
        if s.op == Op.NO_OP:
            patterns.append((s.op, re.compile(r"^NoOp\(\)$"), ()))
            continue
        lhs = KIND_PREFIX[s.out] + r"(\d+)"
        fields = ["out"]
        if s.op == Op.VECTOR_CONST_SET:
            lhs += r"\[" + _NUM + r"\]"
            fields.append("f0")
        elif s.op == Op.MATRIX_CONST_SET:
            lhs += r"\[" + _NUM + r",\s*" + _NUM + r"\]"
            fields += ["f0", "f1"]
        operand = {
            "a": (KIND_PREFIX.get(s.in1, "") + r"(\d+)", "in1"),
            "b": (KIND_PREFIX.get(s.in2, "") + r"(\d+)", "in2"),
            "act": (_NUM, "act"), "f0": (_NUM, "f0"), "f1": (_NUM, "f1"), "f2": (_NUM, "f2"),
        }
        # Split the template into literal text and {placeholders}; literals are escaped and
        # spaces made flexible, placeholders become capture groups.
        order, out_rhs = [], ""
        for k, part in enumerate(re.split(r"\{(\w+)\}", s.template)):
            if k % 2 == 0:
                out_rhs += re.escape(part).replace(r"\ ", r"\s*")
            else:
                out_rhs += operand[part][0]
                order.append(operand[part][1])
        regex = re.compile("^" + lhs + r"\s*=\s*" + out_rhs + "$")
        patterns.append((s.op, regex, tuple(fields + order)))
    return patterns


_PATTERNS = _build_patterns()


def parse_instruction(line: str) -> list:
    """Parse one line of reference-style code into a plain instruction list."""
    text = line.strip()
    for op, regex, fields in _PATTERNS:
        m = regex.match(text)
        if m:
            row = {"in1": 0, "in2": 0, "out": 0, "act": 0.0, "f0": 0.0, "f1": 0.0, "f2": 0.0}
            for field, value in zip(fields, m.groups(), strict=True):
                row[field] = int(value) if field in ("in1", "in2", "out") else float(value)
            return [int(op), row["in1"], row["in2"], row["out"], row["act"],
                    row["f0"], row["f1"], row["f2"]]
    raise ValueError(f"cannot parse instruction {line.strip()!r}")


def from_text(spec: ProgramSpec, text: str) -> Program:
    """Parse the output of :func:`to_text` (or hand-written code in that style)."""
    if not isinstance(spec, ProgramSpec):
        raise ValueError(f"spec must be a ProgramSpec, got {type(spec).__name__}")
    if isinstance(text, bytes | bytearray):
        raise ValueError("text must be a str, got bytes; fix: from_text(spec, data.decode())")
    if not isinstance(text, str):
        raise ValueError(f"text must be a str (the program's code), got {type(text).__name__};"
                         f" fix: e.g. from_text(spec, open(path).read())")
    lists: dict[str, list] = {fn: [] for fn in FUNCTION_NAMES}
    current = None
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        m = re.match(r"^def\s+(Setup|Predict|Learn)\s*\(\s*\)\s*:$", line)
        if m:
            current = m.group(1).lower()
            continue
        if current is None:
            raise ValueError(f"line {lineno}: instruction before any 'def Setup():' header")
        try:
            lists[current].append(parse_instruction(line))
        except ValueError as e:
            raise ValueError(f"line {lineno}: {e}") from None
    return from_lists(spec, **lists)
