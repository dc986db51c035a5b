"""Hand-worked tests of the NumPy reference interpreter (tests/reference_interpreter.py).

Every expected value below is computed by hand from the contract, so the interpreter can be
trusted on its own before it is used to check the JAX evaluator.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import reference_interpreter as ri
from reference_interpreter import LINEAR_ALGORITHM, make_task

from evojax_zero.program.ops import NUM_OPS, Op

SQUASH = 2.0 / math.pi


def fit_rms(mean_sq_error: float) -> float:
    return 1.0 - SQUASH * math.atan(math.sqrt(mean_sq_error))


def run(program, task, S=6, V=4, M=3, **kw):
    return ri.run(program, task, S, V, M, **kw)


# ---------------------------------------------------------------------------------------------
# Single ops on a hand-set memory (F = 2)
# ---------------------------------------------------------------------------------------------


def fresh_memory():
    mem = ri.Memory(5, 3, 2, 2, np.float64)
    mem.s[:] = [0.0, 2.0, -3.0, 0.5, 0.0]
    mem.v[:] = [[1.0, 2.0], [3.0, -4.0], [0.0, 0.0]]
    mem.m[:] = [[[1.0, 2.0], [3.0, 4.0]], [[0.0, -1.0], [2.0, 0.5]]]
    return mem


def exec1(instr, sampler=None, order="sequential", mem=None):
    mem = fresh_memory() if mem is None else mem
    ri.Interpreter(mem, 2, np.float64, order, sampler or ri.ForbiddenSampler()).execute(instr)
    return mem


O = Op
# (instruction [op, in1, in2, out, act, f0, f1, f2], kind of output, expected output)
OP_CASES = [
    ([O.NO_OP, 0, 0, 0], "none", None),
    ([O.SCALAR_SUM, 1, 2, 4], "s", -1.0),
    ([O.SCALAR_DIFF, 1, 2, 4], "s", 5.0),
    ([O.SCALAR_PRODUCT, 1, 2, 4], "s", -6.0),
    ([O.SCALAR_DIVISION, 1, 2, 4], "s", -2.0 / 3.0),
    ([O.SCALAR_ABS, 2, 0, 4], "s", 3.0),
    ([O.SCALAR_RECIPROCAL, 3, 0, 4], "s", 2.0),
    ([O.SCALAR_SIN, 3, 0, 4], "s", math.sin(0.5)),
    ([O.SCALAR_COS, 3, 0, 4], "s", math.cos(0.5)),
    ([O.SCALAR_TAN, 3, 0, 4], "s", math.tan(0.5)),
    ([O.SCALAR_ARCSIN, 3, 0, 4], "s", math.asin(0.5)),
    ([O.SCALAR_ARCCOS, 3, 0, 4], "s", math.acos(0.5)),
    ([O.SCALAR_ARCTAN, 3, 0, 4], "s", math.atan(0.5)),
    ([O.SCALAR_EXP, 3, 0, 4], "s", math.exp(0.5)),
    ([O.SCALAR_LOG, 3, 0, 4], "s", math.log(0.5)),
    ([O.SCALAR_HEAVYSIDE, 0, 0, 4], "s", 1.0),  # H(0) = 1 for scalars
    ([O.SCALAR_HEAVYSIDE, 2, 0, 4], "s", 0.0),
    ([O.VECTOR_HEAVYSIDE, 2, 0, 2], "v", [0.0, 0.0]),  # H(0) = 0 for vectors
    ([O.VECTOR_HEAVYSIDE, 1, 0, 2], "v", [1.0, 0.0]),
    ([O.MATRIX_HEAVYSIDE, 1, 0, 0], "m", [[0.0, 0.0], [1.0, 1.0]]),  # H(0) = 0 for matrices
    ([O.SCALAR_VECTOR_PRODUCT, 2, 0, 2], "v", [-3.0, -6.0]),
    ([O.SCALAR_BROADCAST, 2, 0, 2], "v", [-3.0, -3.0]),
    ([O.VECTOR_RECIPROCAL, 1, 0, 2], "v", [1.0 / 3.0, -0.25]),
    ([O.VECTOR_NORM, 1, 0, 4], "s", 5.0),
    ([O.VECTOR_ABS, 1, 0, 2], "v", [3.0, 4.0]),
    ([O.VECTOR_SUM, 0, 1, 2], "v", [4.0, -2.0]),
    ([O.VECTOR_DIFF, 0, 1, 2], "v", [-2.0, 6.0]),
    ([O.VECTOR_PRODUCT, 0, 1, 2], "v", [3.0, -8.0]),
    ([O.VECTOR_DIVISION, 0, 1, 2], "v", [1.0 / 3.0, -0.5]),
    ([O.VECTOR_INNER_PRODUCT, 0, 1, 4], "s", -5.0),
    ([O.VECTOR_OUTER_PRODUCT, 0, 1, 1], "m", [[3.0, -4.0], [6.0, -8.0]]),
    ([O.SCALAR_MATRIX_PRODUCT, 2, 0, 1], "m", [[-3.0, -6.0], [-9.0, -12.0]]),
    ([O.MATRIX_RECIPROCAL, 0, 0, 1], "m", [[1.0, 0.5], [1.0 / 3.0, 0.25]]),
    ([O.MATRIX_VECTOR_PRODUCT, 0, 0, 2], "v", [5.0, 11.0]),
    ([O.VECTOR_COLUMN_BROADCAST, 1, 0, 0], "m", [[3.0, 3.0], [-4.0, -4.0]]),
    ([O.VECTOR_ROW_BROADCAST, 1, 0, 0], "m", [[3.0, -4.0], [3.0, -4.0]]),
    ([O.MATRIX_NORM, 0, 0, 4], "s", math.sqrt(30.0)),
    ([O.MATRIX_COLUMN_NORM, 0, 0, 2], "v", [math.sqrt(10.0), math.sqrt(20.0)]),
    ([O.MATRIX_ROW_NORM, 0, 0, 2], "v", [math.sqrt(5.0), 5.0]),
    ([O.MATRIX_TRANSPOSE, 0, 0, 1], "m", [[1.0, 3.0], [2.0, 4.0]]),
    ([O.MATRIX_ABS, 1, 0, 0], "m", [[0.0, 1.0], [2.0, 0.5]]),
    ([O.MATRIX_SUM, 0, 1, 1], "m", [[1.0, 1.0], [5.0, 4.5]]),
    ([O.MATRIX_DIFF, 0, 1, 1], "m", [[1.0, 3.0], [1.0, 3.5]]),
    ([O.MATRIX_PRODUCT, 0, 1, 1], "m", [[0.0, -2.0], [6.0, 2.0]]),
    ([O.MATRIX_DIVISION, 1, 0, 1], "m", [[0.0, -0.5], [2.0 / 3.0, 0.125]]),
    ([O.MATRIX_MATRIX_PRODUCT, 0, 1, 1], "m", [[4.0, 0.0], [8.0, -1.0]]),
    ([O.SCALAR_MIN, 1, 2, 4], "s", -3.0),
    ([O.VECTOR_MIN, 0, 1, 2], "v", [1.0, -4.0]),
    ([O.MATRIX_MIN, 0, 1, 1], "m", [[0.0, -1.0], [2.0, 0.5]]),
    ([O.SCALAR_MAX, 1, 2, 4], "s", 2.0),
    ([O.VECTOR_MAX, 0, 1, 2], "v", [3.0, 2.0]),
    ([O.MATRIX_MAX, 0, 1, 1], "m", [[1.0, 2.0], [3.0, 4.0]]),
    ([O.VECTOR_MEAN, 1, 0, 4], "s", -0.5),
    ([O.MATRIX_MEAN, 0, 0, 4], "s", 2.5),
    ([O.MATRIX_ROW_MEAN, 0, 0, 2], "v", [1.5, 3.5]),
    ([O.MATRIX_ROW_ST_DEV, 0, 0, 2], "v", [0.5, 0.5]),
    ([O.VECTOR_ST_DEV, 1, 0, 4], "s", 3.5),
    ([O.MATRIX_ST_DEV, 0, 0, 4], "s", math.sqrt(1.25)),
    ([O.SCALAR_CONST_SET, 0, 0, 4, 0.1], "s", 0.1),  # activation_data is a double
    ([O.VECTOR_CONST_SET, 0, 0, 2, 0.0, 0.6, 0.1], "v", [0.0, float(np.float32(0.1))]),
    ([O.MATRIX_CONST_SET, 0, 0, 1, 0.0, 0.3, 0.9, -2.0], "m", [[0.0, -2.0], [2.0, 0.5]]),
    ([O.SCALAR_UNIFORM_SET, 0, 0, 4, 0.0, 0.5, 0.25], "s", 0.5),  # lo >= hi -> lo
    ([O.VECTOR_UNIFORM_SET, 0, 0, 2, 0.0, -0.75, -0.75], "v", [-0.75, -0.75]),
    ([O.MATRIX_UNIFORM_SET, 0, 0, 1, 0.0, 0.25, -0.5], "m", [[0.25, 0.25], [0.25, 0.25]]),
    ([O.SCALAR_GAUSSIAN_SET, 0, 0, 4, 0.0, 0.3, 0.0], "s", float(np.float32(0.3))),
    ([O.VECTOR_GAUSSIAN_SET, 0, 0, 2, 0.0, -0.5, 0.0], "v", [-0.5, -0.5]),
    ([O.MATRIX_GAUSSIAN_SET, 0, 0, 1, 0.0, 0.125, 0.0], "m", [[0.125, 0.125], [0.125, 0.125]]),
]


def test_op_cases_cover_every_op():
    assert {int(c[0][0]) for c in OP_CASES} == set(range(NUM_OPS))


@pytest.mark.parametrize("instr,kind,expected", OP_CASES,
                         ids=[f"{Op(c[0][0]).name}-{i}" for i, c in enumerate(OP_CASES)])
@pytest.mark.parametrize("order", ["sequential", "pairwise"])
def test_single_op(instr, kind, expected, order):
    before = fresh_memory()
    mem = exec1(instr, order=order)
    out = int(instr[3])
    got = {"s": mem.s, "v": mem.v, "m": mem.m}
    if kind != "none":
        np.testing.assert_allclose(got[kind][out], expected, rtol=1e-15, atol=0)
    # Nothing else changed.
    for k in ("s", "v", "m"):
        a, b = getattr(before, k).copy(), got[k].copy()
        if k == kind:
            a[out] = 0.0
            b[out] = 0.0
        np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------------------------------------
# The subtle rules of contract section 7, op level
# ---------------------------------------------------------------------------------------------

NAN = float("nan")


def test_scalar_min_max_nan_rule():
    # min(a, b) = (b < a) ? b : a ; max(a, b) = (a < b) ? b : a
    for a, b, mn, mx in [(NAN, 1.0, NAN, NAN), (1.0, NAN, 1.0, 1.0)]:
        mem = fresh_memory()
        mem.s[1], mem.s[2] = a, b
        exec1([O.SCALAR_MIN, 1, 2, 3], mem=mem)
        exec1([O.SCALAR_MAX, 1, 2, 4], mem=mem)
        np.testing.assert_array_equal([mem.s[3], mem.s[4]], [mn, mx])


def test_vector_min_max_nan_rule_is_the_scalar_rule():
    mem = fresh_memory()
    mem.v[0] = [NAN, 1.0]
    mem.v[1] = [5.0, NAN]
    exec1([O.VECTOR_MIN, 0, 1, 2], mem=mem)
    np.testing.assert_array_equal(mem.v[2], [NAN, 1.0])
    exec1([O.VECTOR_MAX, 0, 1, 2], mem=mem)
    np.testing.assert_array_equal(mem.v[2], [NAN, 1.0])
    exec1([O.VECTOR_MIN, 1, 0, 2], mem=mem)
    np.testing.assert_array_equal(mem.v[2], [5.0, NAN])


def test_matrix_min_max_nan_rule_returns_second():
    # (a < b) ? a : b  and  (a > b) ? a : b: a NaN on either side returns the second operand.
    mem = fresh_memory()
    mem.m[0] = [[NAN, 1.0], [7.0, -1.0]]
    mem.m[1] = [[5.0, NAN], [2.0, 3.0]]
    exec1([O.MATRIX_MIN, 0, 1, 0], mem=mem)  # aliasing: out == in1
    np.testing.assert_array_equal(mem.m[0], [[5.0, NAN], [2.0, -1.0]])
    mem.m[0] = [[NAN, 1.0], [7.0, -1.0]]
    exec1([O.MATRIX_MAX, 0, 1, 1], mem=mem)
    np.testing.assert_array_equal(mem.m[1], [[5.0, NAN], [7.0, 3.0]])


def test_heaviside_nan_is_zero_everywhere():
    mem = fresh_memory()
    mem.s[1] = NAN
    mem.v[1] = [NAN, 0.0]
    mem.m[1] = [[NAN, 0.0], [-0.0, 1e-300]]
    exec1([O.SCALAR_HEAVYSIDE, 1, 0, 2], mem=mem)
    exec1([O.SCALAR_HEAVYSIDE, 0, 0, 3], mem=mem)
    exec1([O.VECTOR_HEAVYSIDE, 1, 0, 2], mem=mem)
    exec1([O.MATRIX_HEAVYSIDE, 1, 0, 0], mem=mem)
    assert (mem.s[2], mem.s[3]) == (0.0, 1.0)
    np.testing.assert_array_equal(mem.v[2], [0.0, 0.0])
    np.testing.assert_array_equal(mem.m[0], [[0.0, 0.0], [0.0, 1.0]])


def test_scalar_heaviside_of_negative_zero_is_one():
    mem = fresh_memory()
    mem.s[1] = -0.0
    exec1([O.SCALAR_HEAVYSIDE, 1, 0, 2], mem=mem)
    assert mem.s[2] == 1.0


@pytest.mark.parametrize("F,f,index", [
    (4, 0.0, 0), (4, 0.249999999, 1),  # float32(0.249999999) == 0.25
    (4, 0.2499999, 0), (4, float(np.nextafter(np.float32(1), np.float32(0))), 3),
    (32, float(np.nextafter(np.float32(1), np.float32(0))), 31), (16, 0.5, 8), (2, 0.49, 0),
])
def test_const_set_index_in_float32(F, f, index):
    assert ri.const_set_index(f, F) == index


def test_const_set_index_out_of_range_is_an_error():
    with pytest.raises(ValueError):
        ri.const_set_index(0.999999999, 4)  # float32 rounds to 1.0 -> index 4


def test_aliasing_inputs_are_read_first():
    mem = fresh_memory()
    exec1([O.MATRIX_TRANSPOSE, 0, 0, 0], mem=mem)
    np.testing.assert_array_equal(mem.m[0], [[1.0, 3.0], [2.0, 4.0]])
    mem = fresh_memory()
    exec1([O.MATRIX_MATRIX_PRODUCT, 0, 0, 0], mem=mem)  # [[1,2],[3,4]]^2
    np.testing.assert_array_equal(mem.m[0], [[7.0, 10.0], [15.0, 22.0]])
    mem = fresh_memory()
    mem.v[1] = [1.0, 1.0]
    mem.m[0] = [[1.0, 2.0], [3.0, 4.0]]
    exec1([O.MATRIX_VECTOR_PRODUCT, 0, 1, 1], mem=mem)
    np.testing.assert_array_equal(mem.v[1], [3.0, 7.0])
    mem = fresh_memory()
    exec1([O.VECTOR_OUTER_PRODUCT, 0, 0, 0], mem=mem)
    np.testing.assert_array_equal(mem.m[0], [[1.0, 2.0], [2.0, 4.0]])


# v.v/F - mean^2 < 0 in every summation order (found by search): std is NaN, not 0.
NEGATIVE_VARIANCE_F64 = [1.2470695634606261, 1.2470695634606261, 1.2470695634606264,
                         1.2470695634606264]


@pytest.mark.parametrize("order", ["sequential", "pairwise"])
def test_std_is_not_clamped(order):
    mem = ri.Memory(3, 2, 1, 4, np.float64)
    mem.v[1] = NEGATIVE_VARIANCE_F64
    mem.m[0] = [NEGATIVE_VARIANCE_F64] * 4
    interp = ri.Interpreter(mem, 4, np.float64, order, ri.ForbiddenSampler())
    interp.execute([O.VECTOR_ST_DEV, 1, 0, 1])
    interp.execute([O.MATRIX_ROW_ST_DEV, 0, 0, 1])
    assert math.isnan(mem.s[1])
    assert np.isnan(mem.v[1]).all()
    # a plain constant vector gives exactly 0
    mem.v[1] = [0.1] * 4
    interp.execute([O.VECTOR_ST_DEV, 1, 0, 2])
    assert mem.s[2] == 0.0


def test_ieee_semantics_without_guards():
    mem = fresh_memory()
    mem.s[1], mem.s[2] = 0.0, 0.0
    exec1([O.SCALAR_DIVISION, 1, 2, 3], mem=mem)  # 0/0
    exec1([O.SCALAR_RECIPROCAL, 1, 0, 4], mem=mem)  # 1/0
    assert math.isnan(mem.s[3]) and mem.s[4] == math.inf
    exec1([O.SCALAR_LOG, 1, 0, 3], mem=mem)
    assert mem.s[3] == -math.inf
    mem.s[1] = 2.0
    exec1([O.SCALAR_ARCSIN, 1, 0, 3], mem=mem)
    assert math.isnan(mem.s[3])
    mem.s[1] = 1000.0
    exec1([O.SCALAR_EXP, 1, 0, 3], mem=mem)
    assert mem.s[3] == math.inf


def test_sigmoid():
    assert ri.sigmoid(0.0) == 0.5
    assert ri.sigmoid(2.0) == 1.0 / (1.0 + math.exp(-2.0))
    assert ri.sigmoid(-1000.0) == 0.0 and ri.sigmoid(1000.0) == 1.0
    assert ri.sigmoid(math.inf) == 1.0 and ri.sigmoid(-math.inf) == 0.0
    assert math.isnan(ri.sigmoid(NAN))


# ---------------------------------------------------------------------------------------------
# Random ops: deterministic cases and sampler calls
# ---------------------------------------------------------------------------------------------


def test_random_ops_call_the_sampler_with_float32_bounds():
    sampler = ri.NumpySampler(0)
    mem = exec1([O.VECTOR_UNIFORM_SET, 0, 0, 2, 0.0, -0.1, 0.7], sampler=sampler)
    assert sampler.calls == [("uniform", float(np.float32(-0.1)), float(np.float32(0.7)), (2,))]
    assert ((mem.v[2] > -0.1) & (mem.v[2] < 0.7)).all()
    exec1([O.MATRIX_GAUSSIAN_SET, 0, 0, 1, 0.0, 0.5, 0.25], sampler=sampler)
    assert sampler.calls[-1] == ("gaussian", 0.5, 0.25, (2, 2))


def test_degenerate_random_ops_do_not_sample():
    for instr in ([O.SCALAR_UNIFORM_SET, 0, 0, 1, 0.0, 0.5, 0.5],
                  [O.MATRIX_UNIFORM_SET, 0, 0, 1, 0.0, 0.5, -0.5],
                  [O.VECTOR_GAUSSIAN_SET, 0, 0, 1, 0.0, 0.5, 0.0]):
        exec1(instr, sampler=ri.ForbiddenSampler())  # would raise if it sampled


# ---------------------------------------------------------------------------------------------
# Whole runs (contract section 3 and 7.3-7.5)
# ---------------------------------------------------------------------------------------------


def test_empty_program_predicts_zero():
    r = run({}, make_task([1.0, -2.0], [3.0, 4.0]))
    assert r.fitness == pytest.approx(fit_rms((9.0 + 16.0) / 2.0), abs=1e-15)
    np.testing.assert_array_equal(r.train_error, [1.0, 2.0])
    np.testing.assert_array_equal(r.train_prediction, [0.0, 0.0])
    np.testing.assert_array_equal(r.valid_error, [3.0, 4.0])
    np.testing.assert_array_equal(r.valid_prediction, [0.0, 0.0])
    assert not r.stopped and r.num_train_steps == 2


def test_learn_sees_label_and_predict_reuses_s1():
    # Learn: s1 = s0 + s5 (s5 == 0). Predict is empty, so the prediction at each step is the
    # previous label (s1 is never reset), and validation keeps predicting the last label.
    prog = {"learn": [[O.SCALAR_SUM, 0, 5, 1]]}
    r = run(prog, make_task([1.0, 2.0, 3.0], [3.0, 5.0]))
    np.testing.assert_array_equal(r.train_prediction, [0.0, 1.0, 2.0])
    np.testing.assert_array_equal(r.train_error, [1.0, 1.0, 1.0])
    np.testing.assert_array_equal(r.valid_prediction, [3.0, 3.0])
    assert r.fitness == pytest.approx(fit_rms((0.0 + 4.0) / 2.0), abs=1e-15)


def test_label_is_zero_during_predict():
    # Predict: s2 = s0 + s2 (accumulates s0); s1 = s2. Learn: s3 = s0 + s3.
    # If s0 leaked the label into Predict, s2 would grow.
    prog = {"predict": [[O.SCALAR_SUM, 0, 2, 2], [O.SCALAR_SUM, 2, 5, 1]],
            "learn": [[O.SCALAR_SUM, 0, 3, 3]]}
    r = run(prog, make_task([1.0, 2.0], [1.0]))
    np.testing.assert_array_equal(r.train_prediction, [0.0, 0.0])
    np.testing.assert_array_equal(r.valid_prediction, [0.0])


def test_features_are_v0_in_predict_and_learn():
    # Predict: s1 = mean(v0). Learn: v1 = v0 + v1 (sum of all train features).
    # Setup/Predict never see the labels; validation predicts mean(x).
    prog = {"predict": [[O.VECTOR_MEAN, 0, 0, 1]], "learn": [[O.VECTOR_SUM, 0, 1, 1]]}
    tx = [[1.0, 2.0, 3.0, 4.0], [0.0, 0.0, 0.0, 8.0]]
    vx = [[4.0, 4.0, 4.0, 4.0]]
    r = run(prog, make_task([2.5, 0.0], [1.0], train_x=tx, valid_x=vx))
    np.testing.assert_array_equal(r.train_prediction, [2.5, 2.0])
    np.testing.assert_array_equal(r.train_error, [0.0, 2.0])
    np.testing.assert_array_equal(r.valid_prediction, [4.0])
    assert r.fitness == pytest.approx(fit_rms(9.0), abs=1e-15)


def test_memory_persists_into_validation():
    # Setup: s3 = 1. Predict: s2 = s2 + s3; s1 = s2 (a counter of Predict calls).
    prog = {"setup": [[O.SCALAR_CONST_SET, 0, 0, 3, 1.0]],
            "predict": [[O.SCALAR_SUM, 2, 3, 2], [O.SCALAR_SUM, 2, 5, 1]]}
    r = run(prog, make_task([1.0, 2.0], [3.0, 4.0, 0.0]))
    np.testing.assert_array_equal(r.train_prediction, [1.0, 2.0])
    np.testing.assert_array_equal(r.valid_prediction, [3.0, 4.0, 5.0])
    assert r.fitness == pytest.approx(fit_rms(25.0 / 3.0), abs=1e-15)


def counter_program(step):
    """Prediction = s2; Learn adds ``step`` to s2 (s3 = step set in Setup)."""
    return {"setup": [[O.SCALAR_CONST_SET, 0, 0, 3, step]],
            "predict": [[O.SCALAR_SUM, 2, 5, 1]],
            "learn": [[O.SCALAR_SUM, 2, 3, 2]]}


@pytest.mark.parametrize("label,stopped", [(100.0, False), (-100.0, False),
                                           (100.0001, True), (float(np.nextafter(100, 101)), True)])
def test_error_of_exactly_max_abs_error_is_accepted(label, stopped):
    r = run({}, make_task([label], [0.0]))
    assert r.stopped == stopped
    assert r.fitness == (0.0 if stopped else 1.0)
    assert r.num_train_steps == 1
    if stopped:  # the stopping step's error is not recorded; its prediction is
        assert math.isnan(r.train_error[0]) and r.train_prediction[0] == 0.0
        assert np.isnan(r.valid_error).all() and np.isnan(r.valid_prediction).all()
        np.testing.assert_array_equal(r.epoch_fitness, [0.0])


def test_validation_error_of_exactly_100_is_accepted_above_gives_epoch_zero():
    # Validation predicts 0 for labels [100, 3]: error 100 is accepted.
    r = run({}, make_task([0.0], [100.0, 3.0]))
    assert r.fitness == pytest.approx(fit_rms((10000.0 + 9.0) / 2.0), abs=1e-15)
    # Error 100.5 on the first example: fitness 0 for that epoch; nothing recorded after.
    r = run({}, make_task([0.0], [100.5, 3.0]))
    assert r.fitness == 0.0 and not r.stopped
    assert math.isnan(r.valid_error[0]) and math.isnan(r.valid_error[1])
    assert r.valid_prediction[0] == 0.0 and math.isnan(r.valid_prediction[1])


def test_epochs_early_stop_and_best_so_far():
    # One train example (y=0), one valid example (y=0). The counter grows by 50 per Learn.
    # epoch 0: train pred 0; valid pred 50  -> f0 = squash(50)
    # epoch 1: train pred 50; valid pred 100 -> f1 = squash(100)  (exactly 100 is accepted)
    # epoch 2: train pred 100; valid pred 150 -> validation error > 100: f2 = 0, no stop
    # epoch 3: train pred 150 -> early stop; fitness = best so far = f0
    prog = counter_program(50.0)
    f0, f1 = fit_rms(50.0 ** 2), fit_rms(100.0 ** 2)
    for E, expected_epochs, stopped in [
        (1, [f0], False), (2, [f0, f1], False), (3, [f0, f1, 0.0], False),
        (4, [f0, f1, 0.0, 0.0], True),
    ]:
        r = run(prog, make_task([0.0], [0.0], epoch_order=[[0]] * E))
        np.testing.assert_allclose(r.epoch_fitness, expected_epochs, rtol=0, atol=1e-15)
        assert r.fitness == pytest.approx(f0, abs=1e-15)
        assert r.stopped == stopped
        assert r.num_train_steps == E


def test_early_stop_in_first_epoch_gives_zero_even_if_partially_trained():
    prog = counter_program(60.0)  # predictions 0, 60, 120 -> stops at the third step
    r = run(prog, make_task([0.0, 0.0, 0.0], [0.0]))
    assert r.fitness == 0.0 and r.stopped and r.num_train_steps == 3
    np.testing.assert_array_equal(r.train_error, [0.0, 60.0, NAN])
    np.testing.assert_array_equal(r.train_prediction, [0.0, 60.0, 120.0])


def test_shuffled_epochs_and_truncated_train_count():
    # Learn: s1 = s0 + s5 -> the prediction is the previous train label.
    prog = {"learn": [[O.SCALAR_SUM, 0, 5, 1]]}
    y = [1.0, 2.0, 3.0]
    order = [[0, 1, 2], [2, 0, 1]]
    task = make_task(y, [0.0], epoch_order=order)
    r = run(prog, task)
    # epoch 0 ends on label 3, epoch 1 ends on label 2 (order 2, 0, 1).
    np.testing.assert_allclose(r.epoch_fitness, [fit_rms(9.0), fit_rms(4.0)], atol=1e-15)
    assert r.fitness == pytest.approx(fit_rms(4.0), abs=1e-15)
    np.testing.assert_array_equal(r.train_prediction, [0.0, 1.0, 2.0])  # first epoch only
    # 4 requested steps: an epoch of 3 and one of 1 (example 2 again -> label 3).
    r = run(prog, task, num_train_examples=4)
    np.testing.assert_allclose(r.epoch_fitness, [fit_rms(9.0), fit_rms(9.0)], atol=1e-15)
    assert r.num_train_steps == 4
    # 2 requested steps: a single partial epoch ending on label 2.
    r = run(prog, task, num_train_examples=2)
    np.testing.assert_allclose(r.epoch_fitness, [fit_rms(4.0)], atol=1e-15)
    assert r.train_prediction.shape == (2,)
    # More than N * E requested: clipped to 6.
    r = run(prog, task, num_train_examples=100)
    assert r.num_train_steps == 6 and r.epoch_fitness.shape == (2,)


def test_partial_validation_divides_by_full_valid_count():
    r = run({}, make_task([0.0], [1.0, 2.0, 3.0, 4.0]), num_valid_examples=2)
    assert r.fitness == pytest.approx(fit_rms((1.0 + 4.0) / 4.0), abs=1e-15)
    np.testing.assert_array_equal(r.valid_error, [1.0, 2.0])
    r = run({}, make_task([0.0], [0.0, 0.0], eval_type="accuracy"), num_valid_examples=1)
    # Training wrote sigmoid(0) = 0.5 into s1; validation logit 0.5 -> p > 0.5 -> class 1,
    # label 0: one wrong out of a divisor of 2.
    assert r.fitness == 0.5


def test_rms_fitness_formula():
    assert ri.flip_and_squash(0.0) == 1.0
    assert ri.flip_and_squash(math.inf) == 0.0 and ri.flip_and_squash(NAN) == 0.0
    assert ri.flip_and_squash(1.0) == pytest.approx(0.5, abs=1e-16)
    assert ri.flip_and_squash(1.5707963e-4) == pytest.approx(0.9999, abs=1e-9)


# ---------------------------------------------------------------------------------------------
# Accuracy tasks
# ---------------------------------------------------------------------------------------------


def test_accuracy_sigmoid_is_written_back_in_training_only():
    # Setup: s1 = 2. Predict and Learn are empty, so each train step replaces s1 by sigmoid(s1)
    # and validation sees the final s1 as a raw logit.
    prog = {"setup": [[O.SCALAR_CONST_SET, 0, 0, 1, 2.0]]}
    p1 = 1.0 / (1.0 + math.exp(-2.0))
    p2 = 1.0 / (1.0 + math.exp(-p1))
    r = run(prog, make_task([1.0, 0.0], [1.0, 0.0, 1.0], eval_type="accuracy"))
    np.testing.assert_allclose(r.train_prediction, [p1, p2], rtol=1e-15)
    np.testing.assert_allclose(r.train_error, [1.0 - p1, p2], rtol=1e-15)
    np.testing.assert_allclose(r.valid_prediction, [p2, p2, p2], rtol=1e-15)
    # sigmoid(p2) > 0.5: class 1 -> right, wrong, right.
    np.testing.assert_array_equal(r.valid_error, [0.0, 1.0, 0.0])
    assert r.fitness == pytest.approx(2.0 / 3.0, abs=1e-15)


def test_accuracy_huge_logits_never_stop_training():
    # s1 = 1e300 * 1e300 = inf in Predict: sigmoid -> 1, error <= 1.
    prog = {"setup": [[O.SCALAR_CONST_SET, 0, 0, 2, 1e300]],
            "predict": [[O.SCALAR_PRODUCT, 2, 2, 1]]}
    r = run(prog, make_task([0.0, 1.0], [1.0, 0.0], eval_type="accuracy"))
    assert not r.stopped
    np.testing.assert_array_equal(r.train_error, [1.0, 0.0])
    np.testing.assert_array_equal(r.valid_prediction, [math.inf, math.inf])
    assert r.fitness == 0.5
    # -inf logits: p = 0 -> class 0.
    prog["predict"] = [[O.SCALAR_PRODUCT, 2, 2, 3], [O.SCALAR_DIFF, 5, 3, 1]]
    r = run(prog, make_task([0.0, 1.0], [1.0, 0.0, 0.0], eval_type="accuracy"))
    assert not r.stopped and r.fitness == pytest.approx(2.0 / 3.0, abs=1e-15)


def nan_after_two_program():
    """Predict: counter c += 1; s1 = arcsin(c - 1.5): finite for c = 1, 2, NaN afterwards."""
    return {"setup": [[O.SCALAR_CONST_SET, 0, 0, 3, 1.0], [O.SCALAR_CONST_SET, 0, 0, 5, 1.5]],
            "predict": [[O.SCALAR_SUM, 2, 3, 2], [O.SCALAR_DIFF, 2, 5, 4],
                        [O.SCALAR_ARCSIN, 4, 0, 1]]}


def test_accuracy_nan_logit_in_validation_is_class_zero():
    r = run(nan_after_two_program(), make_task([0.0, 1.0], [0.0, 1.0, 0.0],
                                               eval_type="accuracy"))
    a = math.asin(0.5)
    np.testing.assert_allclose(r.train_prediction, [ri.sigmoid(-a), ri.sigmoid(a)], rtol=1e-15)
    assert np.isnan(r.valid_prediction).all()
    np.testing.assert_array_equal(r.valid_error, [0.0, 1.0, 0.0])
    assert not r.stopped and r.fitness == pytest.approx(2.0 / 3.0, abs=1e-15)


def test_rms_nan_in_validation_gives_zero():
    r = run(nan_after_two_program(), make_task([0.0, 1.0], [0.0, 1.0]))
    assert not r.stopped and r.fitness == 0.0


def test_accuracy_nan_in_training_stops():
    prog = nan_after_two_program()
    r = run(prog, make_task([0.0, 1.0, 1.0], [0.0], eval_type="accuracy"))
    assert r.stopped and r.fitness == 0.0 and r.num_train_steps == 3


# ---------------------------------------------------------------------------------------------
# Linear SGD (the reference's LINEAR_ALGORITHM) and combination of task fitnesses
# ---------------------------------------------------------------------------------------------


def test_linear_sgd_by_hand_two_steps():
    tx = [[1.0, 0.0, 0.0, 0.0], [1.0, 1.0, 0.0, 0.0]]
    r = run(LINEAR_ALGORITHM, make_task([2.0, 3.0], [1.0],
                                        train_x=tx, valid_x=[[1.0, 1.0, 1.0, 1.0]]), S=4, V=3, M=1)
    # step 0: pred 0, err 2, w = 0.02 e0 ; step 1: pred 0.02, err 2.98, w += 0.0298 (e0 + e1)
    np.testing.assert_allclose(r.train_prediction, [0.0, 0.02], rtol=1e-15)
    np.testing.assert_allclose(r.train_error, [2.0, 2.98], rtol=1e-15)
    np.testing.assert_allclose(r.valid_prediction, [0.02 + 2 * 0.0298], rtol=1e-14)


def test_linear_sgd_solves_linear_regression():
    from evojax_zero.program import tasks as T

    ts = T.linear_regression(num_tasks=2, num_train=1000, num_valid=100, dtype=np.float32)
    for t in range(2):
        task = ri.task_arrays(ts, t)
        task["train_x"], task["train_y"], task["valid_x"], task["valid_y"] = (
            _regen_linear(t))
        r = run(LINEAR_ALGORITHM, task, S=4, V=3, M=1)
        assert r.fitness > 0.999


def _regen_linear(t):
    # float64 copies of the linear task (the Tasks above are float32 outside x64 mode).
    from evojax_zero.program import tasks as T

    w = np.random.default_rng(T.DEFAULT_PARAM_SEEDS[t] + 997958712).standard_normal(4)
    x = np.random.default_rng(T.DEFAULT_DATA_SEEDS[t] + 939723201).standard_normal((1100, 4))
    y = x @ w
    return x[:1000], y[:1000], x[1000:], y[1000:]


def test_combine_mean_and_upper_median():
    assert ri.combine([0.1, 0.2, 0.6], "mean") == pytest.approx(0.3, abs=1e-16)
    assert ri.combine([0.9, 0.1, 0.5], "median") == 0.5
    assert ri.combine([0.4, 0.1, 0.9, 0.2], "median") == 0.4  # nth_element(n/2): upper median
    assert ri.combine([0.3, 0.7], "median") == 0.7


def test_float32_mode_rounds_every_step():
    prog = {"setup": [[O.SCALAR_CONST_SET, 0, 0, 2, 0.1]],
            "predict": [[O.SCALAR_SUM, 2, 2, 1]]}
    r32 = run(prog, make_task([0.0], [0.0]), dtype=np.float32)
    r64 = run(prog, make_task([0.0], [0.0]))
    assert r32.valid_prediction[0] == float(np.float32(0.1) * 2)
    assert r64.valid_prediction[0] == 0.2
    assert r32.valid_prediction[0] != r64.valid_prediction[0]


def test_pairwise_and_sequential_differ_only_in_rounding():
    mem = ri.Memory(3, 2, 1, 4, np.float64)
    mem.v[1] = [1e16, 1.0, -1e16, 1.0]
    for order, expected in [("sequential", 1.0), ("pairwise", 0.0)]:
        ri.Interpreter(mem, 4, np.float64, order, None).execute([O.VECTOR_MEAN, 1, 0, 1])
        assert mem.s[1] * 4 == expected
