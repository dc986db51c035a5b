"""program.py: plain lists and text round trips over all ops, and clear validation errors."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evojax_zero import program as P
from evojax_zero.program.ops import FIRST_OUT_ADDRESS, NUM_OPS, OP_SPECS, Kind, Op

ALL = list(range(NUM_OPS))
SPEC = P.ProgramSpec(num_scalars=5, num_vectors=4, num_matrices=3, feature_size=4,
                     setup_ops=ALL, predict_ops=ALL, learn_ops=ALL,
                     max_setup_size=4, max_predict_size=4, max_learn_size=4)
f32 = st.floats(-2.0, 2.0, width=32, allow_subnormal=False)
frac = st.floats(0.0, 0.75, width=32)


@st.composite
def instruction(draw, op=None):
    op = draw(st.integers(0, NUM_OPS - 1)) if op is None else op
    s = OP_SPECS[op]
    addr = []
    for slot, kind in (("in1", s.in1), ("in2", s.in2), ("out", s.out)):
        if kind == Kind.NONE:
            addr.append(0)
        else:
            lo = FIRST_OUT_ADDRESS[kind] if slot == "out" else 0
            addr.append(draw(st.integers(lo, SPEC.num_addresses(kind) - 1)))
    act = f0 = f1 = f2 = 0.0
    if op == Op.SCALAR_CONST_SET:
        act = draw(st.floats(-1e6, 1e6, allow_subnormal=False))  # a double
    elif op == Op.VECTOR_CONST_SET:
        f0, f1 = draw(frac), draw(f32)
    elif op == Op.MATRIX_CONST_SET:
        f0, f1, f2 = draw(frac), draw(frac), draw(f32)
    elif op >= Op.SCALAR_UNIFORM_SET:
        f0, f1 = draw(f32), draw(f32)
    return [op, *addr, act, f0, f1, f2]


programs = st.fixed_dictionaries(
    {fn: st.lists(instruction(), max_size=4) for fn in P.FUNCTION_NAMES})


def test_every_op_round_trips_through_lists_and_text():
    for op in range(NUM_OPS):
        s = OP_SPECS[op]
        ins = [op,
               1 if s.in1 else 0, 2 if s.in2 else 0,
               (2 if s.out != Kind.MATRIX else 1) if s.out else 0,
               0.25 if op == Op.SCALAR_CONST_SET else 0.0,
               0.5 if s.is_data_op and op != Op.SCALAR_CONST_SET else 0.0,
               (0.75 if op == Op.MATRIX_CONST_SET else -0.75) if op >= Op.VECTOR_CONST_SET
               else 0.0,  # f1 is an index fraction for MATRIX_CONST_SET
               0.125 if op == Op.MATRIX_CONST_SET else 0.0]
        lists = {"setup": [], "predict": [ins], "learn": []}
        prog = P.from_lists(SPEC, **lists)
        assert P.to_lists(prog) == lists, Op(op).name
        text = P.to_text(prog)
        assert P.to_lists(P.from_text(SPEC, text)) == lists, text


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs)
def test_random_programs_round_trip(lists):
    prog = P.from_lists(SPEC, **lists)
    got = P.to_lists(prog)
    # Data are stored as float32 except activation_data (a double).
    # (activation_data is held in the float dtype: float32 unless x64 is on.)
    act = np.dtype(P.float_dtype()).type
    expected = {fn: [[*i[:4], float(act(i[4])), *[float(np.float32(x)) for x in i[5:]]]
                     for i in ins] for fn, ins in lists.items()}
    assert got == expected
    assert P.to_lists(P.from_text(SPEC, P.to_text(prog))) == got
    P.validate(SPEC, prog)


def test_text_form_of_linear_algorithm():
    spec = P.ProgramSpec(setup_ops=[56], predict_ops=[27], learn_ops=[2, 3, 18, 23],
                         max_setup_size=5, max_predict_size=1, max_learn_size=4)
    prog = P.from_lists(spec, setup=[[56, 0, 0, 2, 0.01]], predict=[[27, 1, 0, 1]],
                        learn=[[2, 0, 1, 3], [3, 2, 3, 3], [18, 3, 0, 2], [23, 1, 2, 1]])
    assert P.to_text(prog) == (
        "def Setup():\n  s2 = 0.01\ndef Predict():\n  s1 = dot(v1, v0)\n"
        "def Learn():\n  s3 = s0 - s1\n  s3 = s2 * s3\n  v2 = s3 * v0\n  v1 = v1 + v2\n")


SMALL = P.ProgramSpec(num_scalars=4, num_vectors=3, num_matrices=1, feature_size=4,
                      setup_ops=[56], predict_ops=[27], learn_ops=[2, 3, 18, 23],
                      max_setup_size=2, max_predict_size=1, max_learn_size=4)


@pytest.mark.parametrize("kwargs,words", [
    ({"learn": [[99, 0, 0, 1]]}, ["Learn instruction 0", "unknown op", "99"]),
    ({"learn": [[-1, 0, 0, 1]]}, ["Learn instruction 0", "unknown op"]),
    ({"learn": [["NOT_AN_OP", 0, 0, 1]]}, ["Learn instruction 0", "unknown op"]),
    ({"learn": [[2, 0, 4, 1]]}, ["Learn instruction 0", "SCALAR_DIFF", "in2", "s4",
                                 "out of range"]),
    ({"learn": [[2, 0, 1, 0]]}, ["Learn instruction 0", "out", "s0", "out of range"]),
    ({"learn": [[18, 0, 0, 0]]}, ["Learn instruction 0", "SCALAR_VECTOR_PRODUCT", "out",
                                  "v0"]),
    ({"predict": [[27, 1, 3, 1]]}, ["Predict instruction 0", "in2", "v3"]),
    ({"learn": [[2, 0, 1.5, 1]]}, ["Learn instruction 0", "in2", "must be an int"]),
    ({"setup": [[56, 0, 0, 1]] * 3}, ["Setup", "3 instructions", "max_setup_size is 2"]),
    ({"setup": [[27, 1, 0, 1]]}, ["Setup instruction 0", "VECTOR_INNER_PRODUCT",
                                  "not allowed in Setup"]),
    ({"learn": [[2, 0, 1, 2], [56, 0, 0, 1]]}, ["Learn instruction 1", "SCALAR_CONST_SET",
                                                "not allowed in Learn"]),
    ({"learn": [[2, 0]]}, ["Learn instruction 0", "4 to 8 entries"]),
])
def test_invalid_instructions_raise_clear_errors(kwargs, words):
    with pytest.raises(ValueError) as e:
        P.from_lists(SMALL, **kwargs)
    for w in words:
        assert w in str(e.value), (w, str(e.value))


def test_wrong_operand_kind_is_reported():
    # VECTOR_SUM reads vectors: address 3 is a valid scalar but not a valid vector address
    with pytest.raises(ValueError, match=r"VECTOR_SUM.*in1 address v3 is out of range"):
        P.from_lists(SMALL, learn=[[23, 3, 1, 1]])
    # MATRIX ops cannot be used where the spec has only one matrix address beyond range
    spec = SMALL.replace(learn_ops=[39])
    with pytest.raises(ValueError, match=r"MATRIX_SUM.*m1"):
        P.from_lists(spec, learn=[[39, 0, 1, 0]])


def test_from_text_errors_name_the_line():
    with pytest.raises(ValueError, match="line 2"):
        P.from_text(SMALL, "def Setup():\n  s2 = bogus(s1)\n")
    with pytest.raises(ValueError, match="before any"):
        P.from_text(SMALL, "s2 = 0.5\n")
    with pytest.raises(ValueError, match="not allowed in Predict"):
        P.from_text(SMALL, "def Predict():\n  s2 = 0.5\n")


def test_validate_rejects_bad_tensors():
    prog = P.from_lists(SMALL, learn=[[2, 0, 1, 2]])
    P.validate(SMALL, prog)
    bad = prog.replace(learn=prog.learn.replace(op=prog.learn.op.at[3].set(2)))
    with pytest.raises(ValueError, match="padding must be NO_OP"):
        P.validate(SMALL, bad)
    bad = prog.replace(learn=prog.learn.replace(addr=prog.learn.addr.at[0, 2].set(0)))
    with pytest.raises(ValueError, match="out address s0"):
        P.validate(SMALL, bad)


def _reference_first_error(spec, pop):
    """The per-instruction loop ``validate`` replaced, written out plainly: the first bad
    (program, function, instruction) in program-major order per function, or None."""
    for fn in ("setup", "predict", "learn"):
        f = pop.function(fn)
        L = spec.max_size(fn)
        for b in range(pop.batch_shape[0]):
            n = int(f.size[b])
            if not 0 <= n <= L:
                return (b, fn, "size")
            for i in range(L):
                op = int(f.op[b, i])
                if i >= n:
                    if op != 0:
                        return (b, fn, i)
                    continue
                o = OP_SPECS[op] if 0 <= op < NUM_OPS else None
                if o is None or op not in spec.ops(fn):
                    return (b, fn, i)
                for slot, kind in enumerate((o.in1, o.in2, o.out)):
                    if kind == Kind.NONE:
                        continue
                    lo = FIRST_OUT_ADDRESS[kind] if slot == 2 else 0
                    if not lo <= int(f.addr[b, i, slot]) < spec.num_addresses(kind):
                        return (b, fn, i)
                cols = {Op.VECTOR_CONST_SET: (1,), Op.MATRIX_CONST_SET: (1, 2)}.get(op, ())
                if any(not 0.0 <= float(np.float32(f.data[b, i, k])) < 1.0 for k in cols):
                    return (b, fn, i)
    return None


@pytest.mark.parametrize("jit_from", [10**9, 0], ids=["numpy", "jitted"])
def test_vectorised_validate_matches_a_per_instruction_loop(jit_from, monkeypatch):
    """200 random single corruptions of a valid population: validate raises exactly when the
    plain loop finds an error, and names the same program, function and instruction (on the
    NumPy path and with the jitted reduction in front)."""
    monkeypatch.setattr(P.programs, "JIT_CHECK_MIN_PROGRAMS", jit_from)
    rng = np.random.default_rng(0)
    spec = SPEC.replace(setup_ops=(0, 1, 27, 56, 57, 58), predict_ops=(0, 23, 31),
                        learn_ops=(0, 2, 18, 41))
    good = P.from_lists(spec, setup=[[57, 0, 0, 1, 0, 0.5, 2.0], [58, 0, 0, 0, 0, 0.25, 0.5, 1],
                                     [56, 0, 0, 3, 1.5]],
                        predict=[[23, 0, 1, 2], [31, 2, 0, 3]], learn=[[18, 1, 2, 3]])
    base = jax.device_get(P.stack([good] * 5))
    raised = 0
    for _ in range(200):
        fn = str(rng.choice(["setup", "predict", "learn"]))
        f = base.function(fn)
        field = str(rng.choice(["op", "addr", "data", "size"]))
        arr = np.array(getattr(f, field))
        b = int(rng.integers(5))
        if field == "size":
            arr[b] = rng.integers(-2, 7)
        elif field == "op":
            arr[b, rng.integers(4)] = rng.choice([0, 1, 2, 18, 23, 27, 41, 57, 58, 64, 99, -1])
        elif field == "addr":
            arr[b, rng.integers(4), rng.integers(3)] = rng.integers(-1, 6)
        else:
            arr[b, rng.integers(4), rng.integers(4)] = rng.choice([0.0, 0.5, 0.99999, 1.0,
                                                                   -0.1, np.nan])
        pop = base.replace(**{fn: f.replace(**{field: arr})})
        want = _reference_first_error(spec, pop)
        if want is None:
            P.validate(spec, pop)
            continue
        raised += 1
        with pytest.raises(ValueError) as info:
            P.validate(spec, pop)
        b, fn_, i = want
        msg = str(info.value)
        assert msg.startswith(f"program {b} {fn_}"), (want, msg)
        if i != "size":
            assert f"instruction {i}" in msg, (want, msg)
    assert 50 < raised < 200  # both verdicts were exercised


def test_unused_operands_and_data_are_normalised():
    prog = P.from_lists(SMALL, learn=[[2, 0, 1, 2, 0.5, 0.25, 0.125, 1.0]],
                        setup=[[56, 3, 2, 1, 0.1, 0.9, 0.9, 0.9]])
    lists = P.to_lists(prog)
    assert lists["learn"] == [[2, 0, 1, 2, 0.0, 0.0, 0.0, 0.0]]
    act = float(np.dtype(P.float_dtype()).type(0.1))
    assert lists["setup"] == [[56, 0, 0, 1, act, 0.0, 0.0, 0.0]]


def test_stack_and_index():
    a = P.from_lists(SMALL, learn=[[2, 0, 1, 2]])
    b = P.from_lists(SMALL, setup=[[56, 0, 0, 1, 0.5]])
    pop = P.stack([a, b])
    assert pop.batch_shape == (2,)
    assert P.to_lists(P.index(pop, 1)) == P.to_lists(b)
    assert [P.to_lists(p) for p in P.unstack(pop)] == [P.to_lists(a), P.to_lists(b)]
    with pytest.raises(ValueError):
        P.to_lists(pop)
