"""The AutoML-Zero instruction set: 65 ops with the reference's ids and operand kinds.

Every op reads at most two typed inputs and writes one typed output. Operand kinds are
``S`` (scalar), ``V`` (vector of size F), ``M`` (F x F matrix) or ``None`` (unused).
Data fields are ``activation_data`` (double; only SCALAR_CONST_SET) and ``f0, f1, f2``
(float32; indices as fractions, values, bounds, mean/stdev).
"""

from __future__ import annotations

import dataclasses
import enum


class Kind(enum.IntEnum):
    """Operand kinds; ``NONE`` marks an unused operand slot."""

    NONE = 0
    SCALAR = 1
    VECTOR = 2
    MATRIX = 3


_N, _S, _V, _M = Kind.NONE, Kind.SCALAR, Kind.VECTOR, Kind.MATRIX
KIND_PREFIX = {_S: "s", _V: "v", _M: "m"}


class Op(enum.IntEnum):
    """Op ids exactly as in the reference's ``instruction.proto``."""

    NO_OP = 0
    SCALAR_SUM = 1
    SCALAR_DIFF = 2
    SCALAR_PRODUCT = 3
    SCALAR_DIVISION = 4
    SCALAR_ABS = 5
    SCALAR_RECIPROCAL = 6
    SCALAR_SIN = 7
    SCALAR_COS = 8
    SCALAR_TAN = 9
    SCALAR_ARCSIN = 10
    SCALAR_ARCCOS = 11
    SCALAR_ARCTAN = 12
    SCALAR_EXP = 13
    SCALAR_LOG = 14
    SCALAR_HEAVYSIDE = 15
    VECTOR_HEAVYSIDE = 16
    MATRIX_HEAVYSIDE = 17
    SCALAR_VECTOR_PRODUCT = 18
    SCALAR_BROADCAST = 19
    VECTOR_RECIPROCAL = 20
    VECTOR_NORM = 21
    VECTOR_ABS = 22
    VECTOR_SUM = 23
    VECTOR_DIFF = 24
    VECTOR_PRODUCT = 25
    VECTOR_DIVISION = 26
    VECTOR_INNER_PRODUCT = 27
    VECTOR_OUTER_PRODUCT = 28
    SCALAR_MATRIX_PRODUCT = 29
    MATRIX_RECIPROCAL = 30
    MATRIX_VECTOR_PRODUCT = 31
    VECTOR_COLUMN_BROADCAST = 32
    VECTOR_ROW_BROADCAST = 33
    MATRIX_NORM = 34
    MATRIX_COLUMN_NORM = 35
    MATRIX_ROW_NORM = 36
    MATRIX_TRANSPOSE = 37
    MATRIX_ABS = 38
    MATRIX_SUM = 39
    MATRIX_DIFF = 40
    MATRIX_PRODUCT = 41
    MATRIX_DIVISION = 42
    MATRIX_MATRIX_PRODUCT = 43
    SCALAR_MIN = 44
    VECTOR_MIN = 45
    MATRIX_MIN = 46
    SCALAR_MAX = 47
    VECTOR_MAX = 48
    MATRIX_MAX = 49
    VECTOR_MEAN = 50
    MATRIX_MEAN = 51
    MATRIX_ROW_MEAN = 52
    MATRIX_ROW_ST_DEV = 53
    VECTOR_ST_DEV = 54
    MATRIX_ST_DEV = 55
    SCALAR_CONST_SET = 56
    VECTOR_CONST_SET = 57
    MATRIX_CONST_SET = 58
    SCALAR_UNIFORM_SET = 59
    VECTOR_UNIFORM_SET = 60
    MATRIX_UNIFORM_SET = 61
    SCALAR_GAUSSIAN_SET = 62
    VECTOR_GAUSSIAN_SET = 63
    MATRIX_GAUSSIAN_SET = 64


NUM_OPS = 65


@dataclasses.dataclass(frozen=True)
class OpSpec:
    """Static description of one op: operand kinds and how it prints."""

    op: Op
    in1: Kind
    in2: Kind
    out: Kind
    # Format of the right-hand side; {a}/{b} are the printed operands, {f0}.. the data.
    template: str

    @property
    def num_inputs(self) -> int:
        return int(self.in1 != Kind.NONE) + int(self.in2 != Kind.NONE)

    @property
    def is_data_op(self) -> bool:
        """True for const-set, uniform-set and gaussian-set ops (they carry data)."""
        return self.op >= Op.SCALAR_CONST_SET

    @property
    def is_random(self) -> bool:
        return self.op >= Op.SCALAR_UNIFORM_SET


def _spec(op, in1, in2, out, template):
    return OpSpec(Op(op), in1, in2, out, template)


OP_SPECS: tuple[OpSpec, ...] = (
    _spec(0, _N, _N, _N, "NoOp()"),
    _spec(1, _S, _S, _S, "{a} + {b}"),
    _spec(2, _S, _S, _S, "{a} - {b}"),
    _spec(3, _S, _S, _S, "{a} * {b}"),
    _spec(4, _S, _S, _S, "{a} / {b}"),
    _spec(5, _S, _N, _S, "abs({a})"),
    _spec(6, _S, _N, _S, "1 / {a}"),
    _spec(7, _S, _N, _S, "sin({a})"),
    _spec(8, _S, _N, _S, "cos({a})"),
    _spec(9, _S, _N, _S, "tan({a})"),
    _spec(10, _S, _N, _S, "arcsin({a})"),
    _spec(11, _S, _N, _S, "arccos({a})"),
    _spec(12, _S, _N, _S, "arctan({a})"),
    _spec(13, _S, _N, _S, "exp({a})"),
    _spec(14, _S, _N, _S, "log({a})"),
    _spec(15, _S, _N, _S, "heaviside({a}, 1.0)"),
    _spec(16, _V, _N, _V, "heaviside({a}, 1.0)"),
    _spec(17, _M, _N, _M, "heaviside({a}, 1.0)"),
    _spec(18, _S, _V, _V, "{a} * {b}"),
    _spec(19, _S, _N, _V, "bcast({a})"),
    _spec(20, _V, _N, _V, "1 / {a}"),
    _spec(21, _V, _N, _S, "norm({a})"),
    _spec(22, _V, _N, _V, "abs({a})"),
    _spec(23, _V, _V, _V, "{a} + {b}"),
    _spec(24, _V, _V, _V, "{a} - {b}"),
    _spec(25, _V, _V, _V, "{a} * {b}"),
    _spec(26, _V, _V, _V, "{a} / {b}"),
    _spec(27, _V, _V, _S, "dot({a}, {b})"),
    _spec(28, _V, _V, _M, "outer({a}, {b})"),
    _spec(29, _S, _M, _M, "{a} * {b}"),
    _spec(30, _M, _N, _M, "1 / {a}"),
    _spec(31, _M, _V, _V, "dot({a}, {b})"),
    _spec(32, _V, _N, _M, "bcast({a}, axis=0)"),
    _spec(33, _V, _N, _M, "bcast({a}, axis=1)"),
    _spec(34, _M, _N, _S, "norm({a})"),
    _spec(35, _M, _N, _V, "norm({a}, axis=0)"),
    _spec(36, _M, _N, _V, "norm({a}, axis=1)"),
    _spec(37, _M, _N, _M, "transpose({a})"),
    _spec(38, _M, _N, _M, "abs({a})"),
    _spec(39, _M, _M, _M, "{a} + {b}"),
    _spec(40, _M, _M, _M, "{a} - {b}"),
    _spec(41, _M, _M, _M, "{a} * {b}"),
    _spec(42, _M, _M, _M, "{a} / {b}"),
    _spec(43, _M, _M, _M, "matmul({a}, {b})"),
    _spec(44, _S, _S, _S, "minimum({a}, {b})"),
    _spec(45, _V, _V, _V, "minimum({a}, {b})"),
    _spec(46, _M, _M, _M, "minimum({a}, {b})"),
    _spec(47, _S, _S, _S, "maximum({a}, {b})"),
    _spec(48, _V, _V, _V, "maximum({a}, {b})"),
    _spec(49, _M, _M, _M, "maximum({a}, {b})"),
    _spec(50, _V, _N, _S, "mean({a})"),
    _spec(51, _M, _N, _S, "mean({a})"),
    _spec(52, _M, _N, _V, "mean({a}, axis=1)"),
    _spec(53, _M, _N, _V, "std({a}, axis=1)"),
    _spec(54, _V, _N, _S, "std({a})"),
    _spec(55, _M, _N, _S, "std({a})"),
    _spec(56, _N, _N, _S, "{act}"),
    _spec(57, _N, _N, _V, "{f1}"),  # printed as v{out}[{f0}] = {f1}
    _spec(58, _N, _N, _M, "{f2}"),  # printed as m{out}[{f0}, {f1}] = {f2}
    _spec(59, _N, _N, _S, "uniform({f0}, {f1})"),
    _spec(60, _N, _N, _V, "uniform({f0}, {f1}, n_features)"),
    _spec(61, _N, _N, _M, "uniform({f0}, {f1}, (n_features, n_features))"),
    _spec(62, _N, _N, _S, "gaussian({f0}, {f1})"),
    _spec(63, _N, _N, _V, "gaussian({f0}, {f1}, n_features)"),
    _spec(64, _N, _N, _M, "gaussian({f0}, {f1}, (n_features, n_features))"),
)
assert len(OP_SPECS) == NUM_OPS and all(s.op == i for i, s in enumerate(OP_SPECS))

# First writable address per kind: s0 (label) and v0 (features) are read-only.
FIRST_OUT_ADDRESS = {Kind.SCALAR: 1, Kind.VECTOR: 1, Kind.MATRIX: 0}
LABEL_SCALAR = 0
PREDICTION_SCALAR = 1
FEATURES_VECTOR = 0

SUPPORTED_FEATURE_SIZES = (2, 4, 8, 16, 32)


def op_from_name(name: str) -> Op:
    """Parse an op name; accepts the reference's ``*_OP`` spelling and any case."""
    key = name.strip().upper()
    if key.endswith("_OP") and key != "NO_OP":
        key = key[:-3]
    try:
        return Op[key]
    except KeyError:
        raise ValueError(
            f"unknown op name {name!r}; allowed: {', '.join(o.name for o in Op)}"
        ) from None


def as_op(op: int | str | Op) -> Op:
    """Coerce an op id, name or Op to Op, with a clear error."""
    if isinstance(op, str):
        return op_from_name(op)
    if isinstance(op, bool) or not isinstance(op, int):
        raise ValueError(f"op must be an int id in [0, {NUM_OPS}) or a name, got {op!r}")
    if not 0 <= int(op) < NUM_OPS:
        raise ValueError(f"op id {op} is not in [0, {NUM_OPS}) (reference ops 0-64)")
    return Op(int(op))


def as_op_list(ops) -> tuple[Op, ...]:
    """Coerce a sequence of op ids or names to a sorted, de-duplicated tuple of Op."""
    return tuple(sorted({as_op(o) for o in ops}))
