"""Conformance of the JAX evaluator with the contract, checked against hand-worked values and
the plain NumPy reference interpreter (tests/reference_interpreter.py).

x64 is only ever switched on inside ``jax.enable_x64(...)`` blocks, so it never leaks into other
test modules. Evaluators are cached per (spec, config, precision, backend) and each group of tests
shares one spec and one task shape, so each compiles once per session.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import reference_interpreter as ri

from evojax_zero import program as P
from evojax_zero import tasks as T

_EVALUATORS: dict = {}


def x64(precision: str):
    return jax.enable_x64(precision == "float64")


def np_dtype(precision: str):
    return np.float64 if precision == "float64" else np.float32


def evaluator(spec, config, precision: str, backend: str = "auto"):
    from evojax_zero.evaluator import Evaluator

    key = (spec, config, precision, backend)
    if key not in _EVALUATORS:
        with x64(precision):
            _EVALUATORS[key] = Evaluator(spec, config, backend=backend)
    return _EVALUATORS[key]


def make_task(train_y, valid_y, train_x=None, valid_x=None, F=4, epoch_order=None,
              eval_type="rms_error"):
    """One task as a dict of float64 numpy arrays (the interpreter's input)."""
    train_y = np.asarray(train_y, np.float64)
    valid_y = np.asarray(valid_y, np.float64)
    N, Nv = len(train_y), len(valid_y)
    train_x = np.zeros((N, F)) if train_x is None else np.asarray(train_x, np.float64)
    valid_x = np.zeros((Nv, F)) if valid_x is None else np.asarray(valid_x, np.float64)
    epoch_order = [list(range(N))] if epoch_order is None else epoch_order
    return dict(train_x=train_x, train_y=train_y, valid_x=valid_x, valid_y=valid_y,
                epoch_order=np.asarray(epoch_order, np.int64), eval_type=eval_type)


def to_tasks(task_dicts, precision: str) -> T.Tasks:
    """Stack task dicts (equal shapes and eval type) into a Tasks batch of that precision."""
    dtype = jnp.float64 if precision == "float64" else jnp.float32
    with x64(precision):
        def stack(name, dt):
            return jnp.asarray(np.stack([d[name] for d in task_dicts]), dt)

        return T.Tasks(stack("train_x", dtype), stack("train_y", dtype), stack("valid_x", dtype),
                       stack("valid_y", dtype), stack("epoch_order", jnp.int32),
                       eval_type=task_dicts[0]["eval_type"])


def evaluate(spec, programs, task_dicts, precision="float64", config=None, backend="auto",
             key=0):
    """Trace of the evaluator for plain-list programs on task dicts, as numpy arrays."""
    from evojax_zero.evaluator import EvalConfig

    config = EvalConfig() if config is None else config
    ev = evaluator(spec, config, precision, backend)
    with x64(precision):
        progs = P.stack([P.from_lists(spec, **p) for p in programs])
        tr = ev.trace(progs, to_tasks(task_dicts, precision), jax.random.key(key))
        return jax.tree.map(np.asarray, jax.device_get(tr))


def reference(spec, program, task, precision="float64", config=None, sum_order="sequential",
              sampler=None):
    from evojax_zero.evaluator import EvalConfig

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
    # Errors: NaN exactly where the reference recorded nothing.
    for name in ("train_error", "valid_error"):
        got, exp = getattr(tr, name)[p, t], getattr(ref, name)
        if not close(got, exp, rtol, atol):
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

from evojax_zero.evaluator import EvalConfig  # noqa: E402
from evojax_zero.ops import Op as O  # noqa: E402

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


@pytest.mark.xfail(strict=False, reason=(
    "evaluator records the stopping step's train error and validation errors after an early "
    "stop / validation abort; the reference (executor.h) records neither (FEC hashes differ)"))
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
