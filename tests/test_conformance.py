"""Conformance of the JAX evaluator with the contract, checked against hand-worked values and
the plain NumPy reference interpreter (tests/reference_interpreter.py).

x64 is only ever switched on inside ``jax.enable_x64(...)`` blocks, so it never leaks into other
test modules. Evaluators are cached per (spec, config, precision, backend) and each group of tests
shares one spec and one task shape, so each compiles once per session.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import reference_interpreter as ri
from reference_interpreter import LINEAR_ALGORITHM, make_task

from evojax_zero import program as P
from evojax_zero.program import tasks as T

_EVALUATORS: dict = {}


def x64(precision: str):
    return jax.enable_x64(precision == "float64")


def np_dtype(precision: str):
    return np.float64 if precision == "float64" else np.float32


# The hand-worked tests run on the default backend ("auto": native on CPU when built);
# test_hand_worked_tests_on_xla reruns this module with the XLA backend (slow).
DEFAULT_BACKEND = os.environ.get("EVOJAX_CONFORMANCE_BACKEND", "auto")


def evaluator(spec, config, precision: str, backend: str | None = None):
    backend = DEFAULT_BACKEND if backend is None else backend
    from evojax_zero.evaluate.evaluator import Evaluator

    key = (spec, config, precision, backend)
    if key not in _EVALUATORS:
        with x64(precision):
            _EVALUATORS[key] = Evaluator(spec, config, backend=backend)
    return _EVALUATORS[key]


def to_tasks(task_dicts, precision: str) -> T.Tasks:
    """Stack task dicts (equal shapes and eval type) into a Tasks batch of that precision."""
    dtype = jnp.float64 if precision == "float64" else jnp.float32
    with x64(precision):
        def stack(name, dt):
            return jnp.asarray(np.stack([d[name] for d in task_dicts]), dt)

        return T.Tasks(stack("train_x", dtype), stack("train_y", dtype), stack("valid_x", dtype),
                       stack("valid_y", dtype), stack("epoch_order", jnp.int32),
                       eval_type=task_dicts[0]["eval_type"])


def evaluate(spec, programs, task_dicts, precision="float64", config=None, backend=None,
             key=0):
    """Trace of the evaluator for plain-list programs on task dicts, as numpy arrays."""
    from evojax_zero.evaluate.evaluator import EvalConfig

    config = EvalConfig() if config is None else config
    ev = evaluator(spec, config, precision, backend)
    with x64(precision):
        progs = P.stack([P.from_lists(spec, **p) for p in programs])
        tr = ev.trace(progs, to_tasks(task_dicts, precision), jax.random.key(key))
        return jax.tree.map(np.asarray, jax.device_get(tr))


def reference(spec, program, task, precision="float64", config=None, sum_order="sequential",
              sampler=None):
    from evojax_zero.evaluate.evaluator import EvalConfig

    config = EvalConfig() if config is None else config
    return ri.run(program, task, spec.num_scalars, spec.num_vectors, spec.num_matrices,
                  num_train_examples=config.num_train_examples,
                  num_valid_examples=config.num_valid_examples,
                  max_abs_error=config.max_abs_error,
                  sampler=ri.ForbiddenSampler() if sampler is None else sampler,
                  dtype=np_dtype(precision), sum_order=sum_order)


def close(a, b, rtol, atol) -> bool:
    """Elementwise closeness with NaN == NaN and exact equality of infinities."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    if a.shape != b.shape:
        return False
    return bool(np.all(np.isclose(a, b, rtol=rtol, atol=atol, equal_nan=True)))


def differences(ref: ri.Result, tr, p: int, t: int, rtol: float, atol: float,
                fitness_atol: float) -> list[str]:
    """Where the evaluator's trace for (program p, task t) disagrees with the reference."""
    out = []
    if abs(float(tr.fitness[p, t]) - ref.fitness) > fitness_atol or math.isnan(
            float(tr.fitness[p, t])):
        out.append(f"fitness: expected {ref.fitness!r}, got {float(tr.fitness[p, t])!r}")
    if bool(tr.stopped[p, t]) != ref.stopped:
        out.append(f"stopped: expected {ref.stopped}, got {bool(tr.stopped[p, t])}")
    ef = tr.epoch_fitness[p, t]
    if not close(ef, ref.epoch_fitness, 0, fitness_atol):
        out.append(f"epoch_fitness: expected {ref.epoch_fitness}, got {ef}")
    # Errors where the reference recorded one (test_trace_recording_like_the_reference
    # checks that nothing else is recorded).
    for name in ("train_error", "valid_error"):
        got, exp = getattr(tr, name)[p, t], getattr(ref, name)
        mask = ~np.isnan(exp)
        if got.shape != exp.shape or not close(got[mask], exp[mask], rtol, atol):
            out.append(f"{name}: expected {exp}, got {got}")
    # Predictions: compare where the reference recorded an error (steps that completed);
    # the stopping step's prediction is compared too when the evaluator reports it.
    for name, err in (("train_prediction", ref.train_error),
                      ("valid_prediction", ref.valid_error)):
        got, exp = getattr(tr, name)[p, t], getattr(ref, name)
        if got.shape != exp.shape:
            out.append(f"{name}: shape expected {exp.shape}, got {got.shape}")
            continue
        mask = ~np.isnan(err)
        if not close(got[mask], exp[mask], rtol, atol):
            out.append(f"{name}: expected {exp}, got {got}")
    if hasattr(tr, "train_steps") and int(tr.train_steps[p, t]) != ref.num_train_steps:
        out.append(f"train_steps: expected {ref.num_train_steps}, got {int(tr.train_steps[p, t])}")
    return out


# =============================================================================================
# Hand-worked tests, one per rule. Expected values are computed by hand in the comments; the
# reference interpreter is checked against the same values.
# =============================================================================================

import pytest  # noqa: E402

from evojax_zero.evaluate.evaluator import EvalConfig  # noqa: E402
from evojax_zero.program.ops import Op as O  # noqa: E402

PRECISIONS = ["float64", "float32"]
SQUASH = 2.0 / math.pi
NAN = float("nan")


def fit_rms(mean_sq_error: float) -> float:
    return 1.0 - SQUASH * math.atan(math.sqrt(mean_sq_error))


def tol(precision):
    return 1e-12 if precision == "float64" else 2e-6


def check_hand(spec, programs, task, precision, expected, config=None):
    """Evaluate ``programs`` on one ``task``; compare with hand values for each program.

    ``expected[p]`` is a dict with any of: fitness, stopped, train_prediction, train_error,
    valid_prediction, valid_error, epoch_fitness. Returns the trace.
    """
    tr = evaluate(spec, programs, [task], precision, config)
    t = tol(precision)
    problems = []
    for p, exp in enumerate(expected):
        ref = reference(spec, programs[p], task, precision, config)
        for name, value in exp.items():
            for who, got in (("evaluator", getattr(tr, name)[p, 0]),
                             ("reference interpreter", getattr(ref, name))):
                if name == "stopped":
                    ok = bool(got) == value
                else:
                    ok = close(got, value, rtol=t, atol=t)
                if not ok:
                    problems.append(f"program {p} {programs[p]}: {who} {name}: expected "
                                    f"{value!r}, got {got!r}")
    assert not problems, "\n".join(problems)
    return tr


def pad(programs, n):
    return list(programs) + [{}] * (n - len(programs))


# ---------------------------------------------------------------------------------------------
# Scalar rules (one spec, one task shape: N=3, Nv=3, E=1, T=1, P=4)
# ---------------------------------------------------------------------------------------------

SCALAR_SPEC = P.ProgramSpec(num_scalars=6, num_vectors=2, num_matrices=1, feature_size=4,
                            setup_ops=[1, 2, 3, 4, 10, 15, 44, 47, 56],
                            predict_ops=[1, 2, 3, 4, 10, 15, 44, 47, 56],
                            learn_ops=[1, 2, 3, 4, 10, 15, 44, 47, 56],
                            max_setup_size=4, max_predict_size=4, max_learn_size=4)
MAKE_NAN = [[O.SCALAR_DIVISION, 4, 4, 3]]  # s3 = s4 / s4 = 0 / 0 = NaN
SET3 = [[O.SCALAR_CONST_SET, 0, 0, 5, 3.0]]  # s5 = 3


@pytest.mark.parametrize("precision", PRECISIONS)
def test_rule1_scalar_min_max_nan(precision):
    # min(a, b) = (b < a) ? b : a ; max(a, b) = (a < b) ? b : a. s3 = NaN, s5 = 3.
    progs = [
        {"setup": MAKE_NAN + SET3, "predict": [[O.SCALAR_MIN, 3, 5, 1]]},  # min(NaN, 3) = NaN
        {"setup": MAKE_NAN + SET3, "predict": [[O.SCALAR_MIN, 5, 3, 1]]},  # min(3, NaN) = 3
        {"setup": MAKE_NAN + SET3, "predict": [[O.SCALAR_MAX, 3, 5, 1]]},  # max(NaN, 3) = NaN
        {"setup": MAKE_NAN + SET3, "predict": [[O.SCALAR_MAX, 5, 3, 1]]},  # max(3, NaN) = 3
    ]
    task = make_task([3.0, 3.0, 3.0], [3.0, 3.0, 3.0])
    stop = {"fitness": 0.0, "stopped": True, "train_error": [NAN] * 3}
    good = {"fitness": 1.0, "stopped": False, "train_prediction": [3.0] * 3,
            "valid_prediction": [3.0] * 3}
    check_hand(SCALAR_SPEC, progs, task, precision, [stop, good, stop, good])


@pytest.mark.parametrize("precision", PRECISIONS)
def test_rule2_scalar_heaviside(precision):
    progs = [
        {"predict": [[O.SCALAR_HEAVYSIDE, 0, 0, 1]]},  # s0 = 0 during Predict: H(0) = 1
        {"setup": MAKE_NAN, "predict": [[O.SCALAR_HEAVYSIDE, 3, 0, 1]]},  # H(NaN) = 0
        {"setup": [[O.SCALAR_CONST_SET, 0, 0, 2, -1e-300]],
         "predict": [[O.SCALAR_HEAVYSIDE, 2, 0, 1]]},  # H(-1e-300) = 0
        # H(-0.0) = 1: s2 = 0 * -1 = -0.0
        {"setup": [[O.SCALAR_CONST_SET, 0, 0, 3, -1.0], [O.SCALAR_PRODUCT, 2, 3, 2]],
         "predict": [[O.SCALAR_HEAVYSIDE, 2, 0, 1]]},
    ]
    task = make_task([1.0, 1.0, 1.0], [1.0, 1.0, 1.0])
    one = {"fitness": 1.0, "valid_prediction": [1.0] * 3}
    zero = {"fitness": fit_rms(1.0), "valid_prediction": [0.0] * 3}
    if precision == "float32":  # -1e-300 is -0.0 in float32: H = 1
        check_hand(SCALAR_SPEC, progs, task, precision, [one, zero, one, one])
    else:
        check_hand(SCALAR_SPEC, progs, task, precision, [one, zero, zero, one])


def counter(step):
    """Prediction s1 = s2; Learn adds ``step`` (s3) to s2."""
    return {"setup": [[O.SCALAR_CONST_SET, 0, 0, 3, step]],
            "predict": [[O.SCALAR_SUM, 2, 4, 1]], "learn": [[O.SCALAR_SUM, 2, 3, 2]]}


def constant(c):
    return {"setup": [[O.SCALAR_CONST_SET, 0, 0, 1, c]]}


@pytest.mark.parametrize("precision", PRECISIONS)
def test_rule4_error_of_exactly_100_is_accepted(precision):
    progs = [constant(100.0), constant(-100.0), constant(100.0001), counter(50.0)]
    task = make_task([0.0, 0.0, 0.0], [0.0, 0.0, 0.0])
    f100 = fit_rms(100.0 ** 2)
    check_hand(SCALAR_SPEC, progs, task, precision, [
        {"fitness": f100, "stopped": False, "train_error": [100.0] * 3,
         "valid_error": [100.0] * 3},
        {"fitness": f100, "stopped": False, "valid_prediction": [-100.0] * 3},
        # 100.0001 > 100: stops at the first step
        {"fitness": 0.0, "stopped": True, "epoch_fitness": [0.0]},
        # train predictions 0, 50, 100 (accepted); validation predicts 150 > 100: the
        # epoch's fitness is 0 without an early stop
        {"fitness": 0.0, "stopped": False, "train_error": [0.0, 50.0, 100.0],
         "epoch_fitness": [0.0]},
    ])


def test_trace_recording_like_the_reference():
    # The reference pushes |y - s1| only after the early-stop check passes, does not validate
    # after a training stop, and stops recording validation errors at an error > 100.
    progs = [constant(100.0001), counter(50.0), {}, {}]
    task = make_task([0.0, 0.0, 0.0], [0.0, 0.0, 0.0])
    check_hand(SCALAR_SPEC, progs, task, "float64", [
        {"train_error": [NAN] * 3, "valid_error": [NAN] * 3},
        {"train_error": [0.0, 50.0, 100.0], "valid_error": [NAN] * 3},
    ])


@pytest.mark.parametrize("precision", PRECISIONS)
def test_rule5_s1_not_reset_s0_zero_memory_persists(precision):
    progs = [
        # Learn: s1 = s0 + s4 (= label). Predict is empty: prediction = previous label.
        {"learn": [[O.SCALAR_SUM, 0, 4, 1]]},
        # Predict: s2 = s0 + s2; s1 = s2 + s4. s0 is 0 in Predict, so always 0.
        {"predict": [[O.SCALAR_SUM, 0, 2, 2], [O.SCALAR_SUM, 2, 4, 1]],
         "learn": [[O.SCALAR_SUM, 0, 2, 2]]},  # ...while Learn adds labels 1, 2 into s2
        # Counter of Predict calls: 1, 2, 3 in training, 4, 5, 6 in validation.
        {"setup": [[O.SCALAR_CONST_SET, 0, 0, 3, 1.0]],
         "predict": [[O.SCALAR_SUM, 2, 3, 2], [O.SCALAR_SUM, 2, 4, 1]]},
    ]
    task = make_task([1.0, 2.0, 3.0], [3.0, 5.0, 3.0])
    check_hand(SCALAR_SPEC, pad(progs, 4), task, precision, [
        {"train_prediction": [0.0, 1.0, 2.0], "valid_prediction": [3.0] * 3,
         "fitness": fit_rms(4.0 / 3.0)},
        # Predict of step k sees s2 = labels of steps < k: 0, 1, 3; validation: 6.
        {"train_prediction": [0.0, 1.0, 3.0], "valid_prediction": [6.0] * 3,
         "fitness": fit_rms((9.0 + 1.0 + 9.0) / 3.0)},
        {"train_prediction": [1.0, 2.0, 3.0], "valid_prediction": [4.0, 5.0, 6.0],
         "fitness": fit_rms((1.0 + 0.0 + 9.0) / 3.0)},
    ] + [{}])


def nan_in_validation():
    """Predict: c += 1; s1 = arcsin(0.3 c): finite for c <= 3 (training), NaN afterwards."""
    return {"setup": [[O.SCALAR_CONST_SET, 0, 0, 3, 1.0], [O.SCALAR_CONST_SET, 0, 0, 5, 0.3]],
            "predict": [[O.SCALAR_SUM, 2, 3, 2], [O.SCALAR_PRODUCT, 2, 5, 4],
                        [O.SCALAR_ARCSIN, 4, 0, 1]]}


@pytest.mark.parametrize("precision", PRECISIONS)
def test_rms_nan_in_validation_gives_zero_without_stop(precision):
    progs = pad([nan_in_validation()], 4)
    task = make_task([0.0, 0.0, 0.0], [0.0, 0.0, 0.0])
    a = [math.asin(0.3), math.asin(0.6), math.asin(0.9)]
    check_hand(SCALAR_SPEC, progs, task, precision, [
        {"fitness": 0.0, "stopped": False, "train_prediction": a, "train_error": a,
         "valid_error": [NAN] * 3}])


def sig(x):
    return 1.0 / (1.0 + math.exp(-x))


@pytest.mark.parametrize("precision", PRECISIONS)
def test_rule3_accuracy_tasks(precision):
    progs = [
        # s1 = 2 in Setup; nothing else. Training replaces s1 by sigmoid(s1) each step.
        {"setup": [[O.SCALAR_CONST_SET, 0, 0, 1, 2.0]]},
        # NaN logits only in validation: class 0, no stop.
        nan_in_validation(),
        # +inf logit (1e300 * 1e300): p = 1, never stops training.
        {"setup": [[O.SCALAR_CONST_SET, 0, 0, 2, 1e300]], "predict": [[O.SCALAR_PRODUCT, 2, 2, 1]]},
        # -inf logit: p = 0.
        {"setup": [[O.SCALAR_CONST_SET, 0, 0, 2, 1e300]],
         "predict": [[O.SCALAR_PRODUCT, 2, 2, 3], [O.SCALAR_DIFF, 4, 3, 1]]},
    ]
    if precision == "float32":  # 1e300 is inf in float32: inf * inf is still inf
        pass
    task = make_task([1.0, 0.0, 1.0], [1.0, 0.0, 1.0], eval_type="accuracy")
    p1 = sig(2.0)
    p2 = sig(p1)
    p3 = sig(p2)
    s = [sig(math.asin(0.3)), sig(math.asin(0.6)), sig(math.asin(0.9))]
    check_hand(SCALAR_SPEC, progs, task, precision, [
        {"train_prediction": [p1, p2, p3], "train_error": [1 - p1, p2, 1 - p3],
         "valid_prediction": [p3] * 3, "valid_error": [0.0, 1.0, 0.0],
         "fitness": 2.0 / 3.0, "stopped": False},
        {"train_prediction": s, "train_error": [1 - s[0], s[1], 1 - s[2]],
         "valid_prediction": [NAN] * 3, "valid_error": [1.0, 0.0, 1.0],
         "fitness": 1.0 / 3.0, "stopped": False},
        {"train_prediction": [1.0] * 3, "train_error": [0.0, 1.0, 0.0],
         "valid_prediction": [math.inf] * 3, "valid_error": [0.0, 1.0, 0.0],
         "fitness": 2.0 / 3.0, "stopped": False},
        {"train_prediction": [0.0] * 3, "valid_prediction": [-math.inf] * 3,
         "valid_error": [1.0, 0.0, 1.0], "fitness": 1.0 / 3.0, "stopped": False},
    ])


@pytest.mark.parametrize("precision", PRECISIONS)
def test_accuracy_nan_in_training_stops(precision):
    prog = nan_in_validation()
    prog["setup"][1] = [O.SCALAR_CONST_SET, 0, 0, 5, 0.5]  # arcsin(1.5) at the third step
    task = make_task([1.0, 0.0, 1.0], [1.0, 0.0, 1.0], eval_type="accuracy")
    check_hand(SCALAR_SPEC, pad([prog], 4), task, precision, [
        {"fitness": 0.0, "stopped": True,
         "train_error": [1 - sig(math.asin(0.5)), sig(math.asin(1.0)), NAN]}])


@pytest.mark.parametrize("combine", ["mean", "median"])
def test_combination_mean_and_upper_median(combine):
    # Empty program: prediction 0; task k has labels c_k: fitness squash(|c_k|).
    cs = [0.0, 1.0, 2.0, 3.0]
    fits = [fit_rms(c * c) for c in cs]
    task_list = [make_task([c] * 3, [c] * 3) for c in cs]
    ev = evaluator(SCALAR_SPEC, EvalConfig(combine=combine), "float64")
    with x64("float64"):
        progs = P.stack([P.from_lists(SCALAR_SPEC) for _ in range(4)])
        combined = np.asarray(ev(progs, to_tasks(task_list, "float64"), jax.random.key(0)))
    # mean: plain average; median: the reference's nth_element at n // 2 = upper median
    # (0.5 here, not the average of the two middle values).
    expected = sum(fits) / 4 if combine == "mean" else sorted(fits)[2]
    assert ri.combine(fits, combine) == pytest.approx(expected, abs=1e-15)
    np.testing.assert_allclose(combined, [expected] * 4, rtol=0, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# Vector / matrix rules (one spec, one task shape: N=3, Nv=3, E=1, T=1, P=8)
# ---------------------------------------------------------------------------------------------

VM_OPS = [4, 16, 17, 19, 27, 28, 31, 32, 33, 37, 43, 45, 46, 48, 49, 50, 51, 53, 54, 55, 56,
          57, 58]
VM_SPEC = P.ProgramSpec(num_scalars=6, num_vectors=4, num_matrices=3, feature_size=4,
                        setup_ops=VM_OPS, predict_ops=VM_OPS, learn_ops=VM_OPS,
                        max_setup_size=6, max_predict_size=3, max_learn_size=1)
X1234 = [[1.0, 2.0, 3.0, 4.0]] * 3
# s3 = NaN, s5 = 3; v1 = NaN-vector, v2 = 3-vector; m0 = NaN-matrix, m1 = 3-matrix
NAN_AND_3 = [[O.SCALAR_DIVISION, 4, 4, 3], [O.SCALAR_CONST_SET, 0, 0, 5, 3.0],
             [O.SCALAR_BROADCAST, 3, 0, 1], [O.SCALAR_BROADCAST, 5, 0, 2],
             [O.VECTOR_COLUMN_BROADCAST, 1, 0, 0], [O.VECTOR_COLUMN_BROADCAST, 2, 0, 1]]


def vm_task(train_y=(0.0,) * 3, valid_y=(0.0,) * 3, x=X1234, eval_type="rms_error"):
    return make_task(list(train_y), list(valid_y), train_x=x, valid_x=x, eval_type=eval_type)


@pytest.mark.parametrize("precision", PRECISIONS)
def test_rule1_vector_and_matrix_min_max_nan(precision):
    def prog(op, a, b, kind):
        reduce = [O.VECTOR_MEAN, 3, 0, 1] if kind == "v" else [O.MATRIX_MEAN, 2, 0, 1]
        out = 3 if kind == "v" else 2
        return {"setup": NAN_AND_3, "predict": [[op, a, b, out], reduce]}

    progs = [
        prog(O.VECTOR_MIN, 1, 2, "v"), prog(O.VECTOR_MIN, 2, 1, "v"),  # NaN ; 3 (std::min)
        prog(O.VECTOR_MAX, 1, 2, "v"), prog(O.VECTOR_MAX, 2, 1, "v"),  # NaN ; 3 (std::max)
        prog(O.MATRIX_MIN, 0, 1, "m"), prog(O.MATRIX_MIN, 1, 0, "m"),  # 3 ; NaN (second)
        prog(O.MATRIX_MAX, 0, 1, "m"), prog(O.MATRIX_MAX, 1, 0, "m"),  # 3 ; NaN (second)
    ]
    stop = {"fitness": 0.0, "stopped": True}
    three = {"fitness": 1.0, "stopped": False, "train_prediction": [3.0] * 3,
             "valid_prediction": [3.0] * 3}
    check_hand(VM_SPEC, progs, vm_task([3.0] * 3, [3.0] * 3), precision,
               [stop, three, stop, three, three, stop, three, stop])


@pytest.mark.parametrize("precision", PRECISIONS)
def test_rule2_vector_and_matrix_heaviside(precision):
    progs = [
        # H(zero vector) = 0 (x > 0): mean 0
        {"predict": [[O.VECTOR_HEAVYSIDE, 2, 0, 3], [O.VECTOR_MEAN, 3, 0, 1]]},
        # H(zero matrix) = 0
        {"predict": [[O.MATRIX_HEAVYSIDE, 2, 0, 2], [O.MATRIX_MEAN, 2, 0, 1]]},
        # H(NaN) = 0 for vectors and matrices
        {"setup": NAN_AND_3, "predict": [[O.VECTOR_HEAVYSIDE, 1, 0, 3], [O.VECTOR_MEAN, 3, 0, 1]]},
        {"setup": NAN_AND_3, "predict": [[O.MATRIX_HEAVYSIDE, 0, 0, 2], [O.MATRIX_MEAN, 2, 0, 1]]},
        # H(x) on x = (1, 2, 3, 4) and its matrix: all 1
        {"predict": [[O.VECTOR_HEAVYSIDE, 0, 0, 3], [O.VECTOR_MEAN, 3, 0, 1]]},
        {"predict": [[O.VECTOR_ROW_BROADCAST, 0, 0, 2], [O.MATRIX_HEAVYSIDE, 2, 0, 2],
                     [O.MATRIX_MEAN, 2, 0, 1]]},
    ]
    zero = {"fitness": 1.0, "valid_prediction": [0.0] * 3}
    one = {"fitness": fit_rms(1.0), "valid_prediction": [1.0] * 3}
    check_hand(VM_SPEC, pad(progs, 8), vm_task(), precision, [zero] * 4 + [one] * 2)


F32_BELOW_ONE = float(np.nextafter(np.float32(1.0), np.float32(0.0)))


@pytest.mark.parametrize("precision", PRECISIONS)
def test_rule6_const_set_index_in_float32(precision):
    def vec_prog(f0, value=1.0):  # v1[idx(f0)] = value; s1 = dot(v0, v1) = x[idx] * value
        return {"setup": [[O.VECTOR_CONST_SET, 0, 0, 1, 0.0, f0, value]],
                "predict": [[O.VECTOR_INNER_PRODUCT, 0, 1, 1]]}

    progs = [
        vec_prog(0.249999999),  # float32(0.249999999) = 0.25 -> index 1 -> x[1] = 2
        vec_prog(0.2499999),  # stays below 0.25 in float32 -> index 0 -> x[0] = 1
        vec_prog(F32_BELOW_ONE),  # 4 * 0.99999994 = 3.9999998 -> index 3 -> 4
        vec_prog(0.5, 0.1),  # index 2; the stored value is float32(0.1): 3 * float32(0.1)
        # m0[idx(0.5), idx(0.749999999)] = 1 -> m0[2, 3]; v3 = m0 @ x = (0, 0, 4, 0); mean 1
        {"setup": [[O.MATRIX_CONST_SET, 0, 0, 0, 0.0, 0.5, 0.749999999, 1.0]],
         "predict": [[O.MATRIX_VECTOR_PRODUCT, 0, 0, 3], [O.VECTOR_MEAN, 3, 0, 1]]},
        # scalar const set keeps activation_data as a double: s1 = 0.1 (float64)
        {"setup": [[O.SCALAR_CONST_SET, 0, 0, 1, 0.1]]},
    ]
    f32_01 = float(np.float32(0.1))
    third = 3.0 * f32_01 if precision == "float64" else float(np.float32(3) * np.float32(0.1))
    act = 0.1 if precision == "float64" else f32_01
    expected = [{"valid_prediction": [v] * 3} for v in (2.0, 1.0, 4.0, third, 1.0, act)]
    check_hand(VM_SPEC, pad(progs, 8), vm_task(), precision, expected)


NEGATIVE_VARIANCE = {
    # v.v/F - mean^2 < 0 in every summation order of 4 terms (found by search)
    "float64": [1.2470695634606261, 1.2470695634606261, 1.2470695634606264, 1.2470695634606264],
    "float32": [7.631809234619141, 7.631809234619141, 7.631808757781982, 7.631808757781982],
}


@pytest.mark.parametrize("precision", PRECISIONS)
def test_rule8_std_is_not_clamped(precision):
    x = [NEGATIVE_VARIANCE[precision]] * 3
    progs = [
        {"predict": [[O.VECTOR_ST_DEV, 0, 0, 1]]},  # sqrt(negative) = NaN: stops
        {"predict": [[O.VECTOR_ROW_BROADCAST, 0, 0, 0], [O.MATRIX_ROW_ST_DEV, 0, 0, 1],
                     [O.VECTOR_MEAN, 1, 0, 1]]},  # every row is x: NaN
        {"predict": [[O.VECTOR_MEAN, 0, 0, 1]]},  # control: no stop
    ]
    check_hand(VM_SPEC, pad(progs, 8), vm_task(x=x), precision, [
        {"stopped": True, "fitness": 0.0}, {"stopped": True, "fitness": 0.0},
        {"stopped": False}])


@pytest.mark.parametrize("precision", PRECISIONS)
def test_std_values(precision):
    # x = (1, 2, 3, 4): population std sqrt(7.5 - 6.25) = sqrt(1.25)
    progs = [
        {"predict": [[O.VECTOR_ST_DEV, 0, 0, 1]]},
        {"predict": [[O.VECTOR_ROW_BROADCAST, 0, 0, 0], [O.MATRIX_ST_DEV, 0, 0, 1]]},
        {"predict": [[O.VECTOR_COLUMN_BROADCAST, 0, 0, 0], [O.MATRIX_ROW_ST_DEV, 0, 0, 1],
                     [O.VECTOR_MEAN, 1, 0, 1]]},  # rows are constant: std 0
    ]
    check_hand(VM_SPEC, pad(progs, 8), vm_task(), precision, [
        {"valid_prediction": [math.sqrt(1.25)] * 3}, {"valid_prediction": [math.sqrt(1.25)] * 3},
        {"valid_prediction": [0.0] * 3}])


# v1 = (1, 2, 0, 0), v2 = (0, 0, 0, 1) built with const sets
V1_V2 = [[O.VECTOR_CONST_SET, 0, 0, 1, 0.0, 0.0, 1.0],
         [O.VECTOR_CONST_SET, 0, 0, 1, 0.0, 0.25, 2.0],
         [O.VECTOR_CONST_SET, 0, 0, 2, 0.0, 0.75, 1.0]]


@pytest.mark.parametrize("precision", PRECISIONS)
def test_rule7_aliasing_reads_inputs_first(precision):
    progs = [
        # m0 = outer(v1, v2): m0[0,3] = 1, m0[1,3] = 2; in-place transpose: m0[3,0] = 1,
        # m0[3,1] = 2; v3 = m0 @ x = (0, 0, 0, 1 + 4); s1 = mean = 1.25
        {"setup": V1_V2 + [[O.VECTOR_OUTER_PRODUCT, 1, 2, 0], [O.MATRIX_TRANSPOSE, 0, 0, 0]],
         "predict": [[O.MATRIX_VECTOR_PRODUCT, 0, 0, 3], [O.VECTOR_MEAN, 3, 0, 1]]},
        # m0 = outer(v1, v1) = [[1, 2], [2, 4]] block; m0 = m0 @ m0 = [[5, 10], [10, 20]];
        # v3 = m0 @ x = (25, 50, 0, 0); mean 18.75
        {"setup": V1_V2[:2] + [[O.VECTOR_OUTER_PRODUCT, 1, 1, 0],
                               [O.MATRIX_MATRIX_PRODUCT, 0, 0, 0]],
         "predict": [[O.MATRIX_VECTOR_PRODUCT, 0, 0, 3], [O.VECTOR_MEAN, 3, 0, 1]]},
        # v = m @ v in place each Predict: v1 = (1, 2) -> (5, 10) -> (25, 50) -> ...
        # means 3.75, 18.75, 93.75, 468.75, 2343.75, 11718.75
        {"setup": V1_V2[:2] + [[O.VECTOR_OUTER_PRODUCT, 1, 1, 0]],
         "predict": [[O.MATRIX_VECTOR_PRODUCT, 0, 1, 1], [O.VECTOR_MEAN, 1, 0, 1]]},
    ]
    means = [3.75, 18.75, 93.75, 468.75, 2343.75, 11718.75]
    check_hand(VM_SPEC, pad(progs[:2], 8), vm_task(), precision, [
        {"valid_prediction": [1.25] * 3}, {"valid_prediction": [18.75] * 3}])
    check_hand(VM_SPEC, pad(progs[2:], 8), vm_task(means[:3], means[3:]), precision, [
        {"train_prediction": means[:3], "valid_prediction": means[3:], "fitness": 1.0}])


# ---------------------------------------------------------------------------------------------
# Epochs: shuffling, best-so-far on a later early stop, truncated train counts (float64)
# ---------------------------------------------------------------------------------------------


def test_epochs_best_so_far_and_later_early_stop():
    # One train and one valid example (labels 0); the counter grows by 50 per Learn.
    # epoch fitness: squash(50), squash(100) (exactly 100 accepted), 0 (validation error 150),
    # then training stops in epoch 3 (prediction 150): fitness = best so far = squash(50).
    f0, f1 = fit_rms(2500.0), fit_rms(10000.0)
    task = make_task([0.0], [0.0], epoch_order=[[0]] * 4)
    check_hand(SCALAR_SPEC, pad([counter(50.0)], 4), task, "float64", [
        {"epoch_fitness": [f0, f1, 0.0, 0.0], "fitness": f0, "stopped": True}])


def test_epochs_follow_epoch_order_and_truncation():
    # Learn: s1 = s0 + s4: the prediction is the previous train label.
    prog = {"learn": [[O.SCALAR_SUM, 0, 4, 1]]}
    task = make_task([1.0, 2.0, 3.0], [0.0], epoch_order=[[0, 1, 2], [2, 0, 1]])
    # epoch 0 ends on label 3 (valid error 3); epoch 1 (order 2, 0, 1) ends on label 2.
    check_hand(SCALAR_SPEC, pad([prog], 4), task, "float64", [
        {"epoch_fitness": [fit_rms(9.0), fit_rms(4.0)], "fitness": fit_rms(4.0),
         "train_prediction": [0.0, 1.0, 2.0]}])
    # 4 steps: epochs of 3 and 1 (example 2 again: label 3)
    check_hand(SCALAR_SPEC, pad([prog], 4), task, "float64", [
        {"epoch_fitness": [fit_rms(9.0), fit_rms(9.0)], "fitness": fit_rms(9.0)}],
        config=EvalConfig(num_train_examples=4))


def test_partial_validation_keeps_full_divisor():
    task = make_task([0.0, 0.0, 0.0], [1.0, 2.0, 3.0])
    check_hand(SCALAR_SPEC, pad([{}], 4), task, "float64", [
        {"fitness": fit_rms((1.0 + 4.0) / 3.0), "valid_error": [1.0, 2.0]}],
        config=EvalConfig(num_valid_examples=2))


# ---------------------------------------------------------------------------------------------
# The reference's LINEAR_ALGORITHM (SGD) on linear regression
# ---------------------------------------------------------------------------------------------

LINEAR_SPEC = P.ProgramSpec(num_scalars=4, num_vectors=3, num_matrices=1, feature_size=4,
                            setup_ops=[56], predict_ops=[27], learn_ops=[2, 3, 18, 23],
                            max_setup_size=5, max_predict_size=1, max_learn_size=4)


@pytest.mark.parametrize("precision", PRECISIONS)
def test_linear_sgd_reaches_high_fitness_and_matches_reference(precision):
    with x64(precision):
        ts = T.linear_regression(num_tasks=3, num_train=1000, num_valid=100)
    task_list = [ri.task_arrays(ts, t) for t in range(3)]
    tr = evaluate(LINEAR_SPEC, [LINEAR_ALGORITHM], task_list, precision)
    for t, task in enumerate(task_list):
        ref = reference(LINEAR_SPEC, LINEAR_ALGORITHM, task, precision)
        assert ref.fitness > 0.999
        assert float(tr.fitness[0, t]) > 0.999
        atol = 1e-12 if precision == "float64" else 1e-5
        assert abs(float(tr.fitness[0, t]) - ref.fitness) < atol
        rtol = 1e-9 if precision == "float64" else 1e-4
        assert close(tr.valid_prediction[0, t], ref.valid_prediction, rtol, 1e-6)


@pytest.mark.slow
@pytest.mark.skipif(DEFAULT_BACKEND != "auto", reason="already a backend-specific rerun")
def test_hand_worked_tests_on_xla():
    env = {**os.environ, "EVOJAX_CONFORMANCE_BACKEND": "xla"}
    res = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-m", "not slow",
                          "-p", "no:cacheprovider", __file__], env=env, capture_output=True,
                         text=True, timeout=3000)
    assert res.returncode == 0, res.stdout[-5000:] + res.stderr[-2000:]


@pytest.mark.parametrize("precision", PRECISIONS)
def test_validation_abort_freezes_memory_for_later_epochs(precision):
    # Predict counts its calls in s2 and predicts s1 = 40 * count. The reference returns from
    # Validate at the first error > 100, so Predict does not run on the remaining validation
    # examples and the count carries into epoch 1 from where validation aborted.
    prog = {"setup": [[O.SCALAR_CONST_SET, 0, 0, 3, 1.0], [O.SCALAR_CONST_SET, 0, 0, 5, 40.0]],
            "predict": [[O.SCALAR_SUM, 2, 3, 2], [O.SCALAR_PRODUCT, 2, 5, 1]]}
    # Epoch 0: train counts 1, 2 (preds 40, 80; errors 60, 60); validation count 3 -> 120,
    # error 110 -> abort (fitness 0). Epoch 1: train counts 4, 5 (preds 160, 200; errors
    # 60, 60); validation counts 6, 7, 8 -> 240, 280, 320 vs labels 230, 280, 320.
    # Had validation kept running, epoch 1 would see counts 6, 7 and stop (error 140).
    task = make_task([100.0, 140.0], [230.0, 280.0, 320.0], epoch_order=[[0, 1], [0, 1]])
    check_hand(SCALAR_SPEC, [prog], task, precision, [
        {"epoch_fitness": [0.0, fit_rms(100.0 / 3)], "fitness": fit_rms(100.0 / 3),
         "stopped": False, "train_prediction": [40.0, 80.0], "valid_error": [NAN] * 3,
         "valid_prediction": [120.0, NAN, NAN]},
    ])
