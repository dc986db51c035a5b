"""Property tests: the evaluator against the reference interpreter on random programs over all
65 ops (random ops in their deterministic cases), random tasks and crafted extreme values; plus
statistical tests of the random ops.

The all-ops spec takes minutes to compile on a small CPU, so those properties are ``slow``.
Each hypothesis example is a whole batch of programs evaluated in one call with fixed shapes;
a failure message names the program (text form), the field, expected and got.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from test_conformance import close, differences, evaluate, make_task, reference, x64

from evojax_zero import program as P
from evojax_zero.program.ops import FIRST_OUT_ADDRESS, NUM_OPS, OP_SPECS, Kind, Op

ALL_OPS = list(range(NUM_OPS))
ALL_SPEC = P.ProgramSpec(num_scalars=5, num_vectors=4, num_matrices=3, feature_size=4,
                         setup_ops=ALL_OPS, predict_ops=ALL_OPS, learn_ops=ALL_OPS,
                         max_setup_size=6, max_predict_size=6, max_learn_size=6)
NUM_PROGRAMS = 48
N_TRAIN, N_VALID, N_EPOCHS, N_TASKS = 5, 4, 2, 2
SPECIAL = [0.0, 1.0, -1.0, 2.0, 0.5, 100.0, -100.0, 1e3, 1e-30, 50.5, 3.0]


def value(rng) -> float:
    if rng.random() < 0.7:
        return float(rng.uniform(-1.0, 1.0))
    return float(rng.choice(SPECIAL)) * (1 if rng.random() < 0.5 else -1)


def random_instruction(rng, spec, fn):
    op = int(rng.integers(NUM_OPS))
    s = OP_SPECS[op]
    addr = []
    for slot, kind in (("in1", s.in1), ("in2", s.in2), ("out", s.out)):
        if kind == Kind.NONE:
            addr.append(0)
            continue
        lo = FIRST_OUT_ADDRESS[kind] if slot == "out" else 0
        addr.append(int(rng.integers(lo, spec.num_addresses(kind))))
    act, f0, f1, f2 = 0.0, 0.0, 0.0, 0.0
    if op == Op.SCALAR_CONST_SET:
        act = value(rng)
    elif op == Op.VECTOR_CONST_SET:
        f0, f1 = float(rng.uniform(0, 1)), value(rng)
    elif op == Op.MATRIX_CONST_SET:
        f0, f1, f2 = float(rng.uniform(0, 1)), float(rng.uniform(0, 1)), value(rng)
    elif op in (Op.SCALAR_UNIFORM_SET, Op.VECTOR_UNIFORM_SET, Op.MATRIX_UNIFORM_SET):
        f0 = value(rng)  # deterministic case: f1 <= f0 returns f0
        f1 = f0 if rng.random() < 0.3 else f0 - abs(value(rng)) - 1e-3
    elif op in (Op.SCALAR_GAUSSIAN_SET, Op.VECTOR_GAUSSIAN_SET, Op.MATRIX_GAUSSIAN_SET):
        f0, f1 = value(rng), 0.0  # deterministic case: stdev 0 returns the mean
    return [op, *addr, act, f0, f1, f2]


def random_program(rng, spec):
    prog = {}
    for fn in ("setup", "predict", "learn"):
        n = int(rng.integers(0, spec.max_size(fn) + 1))
        prog[fn] = [random_instruction(rng, spec, fn) for _ in range(n)]
    if rng.random() < 0.7:  # usually predict something from the features
        prog["predict"] = (prog["predict"] + [[Op.VECTOR_MEAN, 0, 0, 1, 0, 0, 0, 0]])[-6:]
    return prog


def random_task(rng, eval_type):
    F = 4
    scale = float(rng.choice([0.1, 1.0, 10.0]))
    x = rng.standard_normal((N_TRAIN + N_VALID, F)) * scale
    x[rng.random(x.shape) < 0.1] = 0.0
    if eval_type == "accuracy":
        y = (rng.random(N_TRAIN + N_VALID) < 0.5).astype(np.float64)
    else:
        y = rng.standard_normal(N_TRAIN + N_VALID) * scale
    order = [list(range(N_TRAIN))] + [list(rng.permutation(N_TRAIN))
                                      for _ in range(N_EPOCHS - 1)]
    return make_task(y[:N_TRAIN], y[N_TRAIN:], x[:N_TRAIN], x[N_TRAIN:], epoch_order=order,
                     eval_type=eval_type)


def robust(spec, prog, task, precision, rtol, atol, fitness_atol):
    """Reference result, or None if the program is sensitive to rounding (summation order,
    or float32 vs float64): then no implementation can be expected to match it."""
    ref = reference(spec, prog, task, precision)
    variants = [reference(spec, prog, task, precision, sum_order="pairwise")]
    if precision == "float32":
        variants.append(reference(spec, prog, task, "float64"))
    for other in variants:
        if other.stopped != ref.stopped or abs(other.fitness - ref.fitness) > fitness_atol:
            return None
        for name in ("train_error", "valid_error", "train_prediction", "valid_prediction",
                     "epoch_fitness"):
            if not close(getattr(other, name), getattr(ref, name), rtol, atol):
                return None
    return ref


TOLERANCES = {  # (trace rtol, trace atol, fitness atol) for the evaluator vs the reference
    "float64": (1e-9, 1e-12, 1e-12),
    "float32": (1e-4, 1e-5, 1e-5),
}
FILTER = {  # tighter: the two summation orders (and float64) must agree this well
    "float64": (1e-12, 1e-14, 1e-14),
    "float32": (1e-5, 1e-6, 1e-6),
}


def check_batch(seed, precision, eval_type, backend="auto"):
    rng = np.random.default_rng(seed)
    progs = [random_program(rng, ALL_SPEC) for _ in range(NUM_PROGRAMS)]
    task_list = [random_task(rng, eval_type) for _ in range(N_TASKS)]
    tr = evaluate(ALL_SPEC, progs, task_list, precision, backend=backend)
    rtol, atol, fatol = TOLERANCES[precision]
    problems, compared = [], 0
    for p, prog in enumerate(progs):
        for t, task in enumerate(task_list):
            ref = robust(ALL_SPEC, prog, task, precision, *FILTER[precision])
            if ref is None:
                continue
            compared += 1
            diffs = differences(ref, tr, p, t, rtol, atol, fatol)
            if diffs:
                with x64(precision):
                    text = P.to_text(P.from_lists(ALL_SPEC, **prog))
                problems.append(f"seed {seed} program {p} task {t}:\n{text}" + "\n".join(diffs))
    assert compared >= 0.6 * NUM_PROGRAMS * N_TASKS, f"only {compared} robust comparisons"
    assert not problems, f"{len(problems)} mismatches:\n" + "\n\n".join(problems[:5])


SETTINGS = settings(max_examples=3, deadline=None, derandomize=True,
                    phases=[Phase.explicit, Phase.generate],
                    suppress_health_check=list(HealthCheck))


def _backends():
    from evojax_zero import native

    return ["xla", "native"] if native.available() else ["xla"]


@pytest.mark.slow
@pytest.mark.parametrize("backend", _backends())
@pytest.mark.parametrize("eval_type", ["rms_error", "accuracy"])
@pytest.mark.parametrize("precision", ["float64", "float32"])
@SETTINGS
@given(seed=st.integers(0, 2**32 - 1))
def test_random_programs_match_reference(seed, precision, eval_type, backend):
    check_batch(seed, precision, eval_type, backend)


# ---------------------------------------------------------------------------------------------
# Random ops: statistics of the draws (small spec: fast)
# ---------------------------------------------------------------------------------------------

RAND_OPS = [1, 2, 50, 54, 56, 59, 60, 61, 62, 63, 64]
RAND_SPEC = P.ProgramSpec(num_scalars=5, num_vectors=3, num_matrices=2, feature_size=4,
                          setup_ops=RAND_OPS, predict_ops=RAND_OPS, learn_ops=RAND_OPS,
                          max_setup_size=2, max_predict_size=3, max_learn_size=1)
N_DRAWS = 400


def draws(programs, precision="float32", key=0, num_tasks=1):
    """Train predictions of each program over N_DRAWS steps (labels 0, features 0)."""
    task_list = [make_task([0.0] * N_DRAWS, [0.0] * 2) for _ in range(num_tasks)]
    tr = evaluate(RAND_SPEC, programs, task_list, precision, key=key)
    assert not tr.stopped.any()
    return tr.train_prediction  # [P, T, N_DRAWS]


S_UNI = Op.SCALAR_UNIFORM_SET
S_GAU = Op.SCALAR_GAUSSIAN_SET


def test_random_op_statistics_and_degenerate_cases():
    progs = [
        {"predict": [[S_UNI, 0, 0, 1, 0.0, -0.5, 1.5]]},  # U(-0.5, 1.5)
        {"predict": [[S_GAU, 0, 0, 1, 0.0, 0.25, 2.0]]},  # N(0.25, 2)
        {"predict": [[Op.VECTOR_UNIFORM_SET, 0, 0, 1, 0.0, 2.0, 4.0],  # mean of 4 U(2, 4)
                     [Op.VECTOR_MEAN, 1, 0, 1]]},
        {"predict": [[Op.MATRIX_GAUSSIAN_SET, 0, 0, 1, 0.0, -1.0, 0.5],  # mean of 16 N(-1, .5)
                     [Op.VECTOR_MEAN, 0, 0, 1]]},  # placeholder replaced below
        {"predict": [[S_UNI, 0, 0, 1, 0.0, 0.75, -0.25]]},  # lo > hi: always lo = 0.75
        {"predict": [[S_UNI, 0, 0, 1, 0.0, 0.5, 0.5]]},  # lo == hi: 0.5
        {"predict": [[S_GAU, 0, 0, 1, 0.0, -0.375, 0.0]]},  # stdev 0: the mean
        {"predict": [[Op.VECTOR_UNIFORM_SET, 0, 0, 1, 0.0, 0.3, 0.1],
                     [Op.VECTOR_ST_DEV, 1, 0, 2], [Op.SCALAR_SUM, 2, 3, 1]]},  # std 0
    ]
    # matrix: no matrix mean in RAND_OPS; use the scalar gaussian of a matrix op's sibling
    progs[3] = {"predict": [[Op.VECTOR_GAUSSIAN_SET, 0, 0, 1, 0.0, -1.0, 0.5],
                            [Op.VECTOR_MEAN, 1, 0, 1]]}
    d = draws(progs)[:, 0]
    n = N_DRAWS

    def check_mean_std(sample, mean, std, lo=-np.inf, hi=np.inf):
        assert ((sample > lo) & (sample < hi)).all()
        assert abs(sample.mean() - mean) < 5 * std / math.sqrt(n)
        assert abs(sample.std() - std) < 0.15 * std
        assert len(np.unique(sample)) > 0.95 * n  # different draws on every example

    check_mean_std(d[0], 0.5, 2 / math.sqrt(12), -0.5, 1.5)
    check_mean_std(d[1], 0.25, 2.0)
    check_mean_std(d[2], 3.0, (2 / math.sqrt(12)) / 2, 2.0, 4.0)  # mean of 4 entries
    check_mean_std(d[3], -1.0, 0.5 / 2)
    np.testing.assert_array_equal(d[4], 0.75)
    np.testing.assert_array_equal(d[5], 0.5)
    np.testing.assert_array_equal(d[6], float(np.float32(-0.375)))
    np.testing.assert_array_equal(d[7], 0.0)


def test_random_draws_differ_across_instructions_entries_tasks_and_programs():
    progs = [
        # two instructions with the same bounds: s1 = s2 - s3 != 0
        {"predict": [[S_UNI, 0, 0, 2, 0.0, 0.0, 1.0], [S_UNI, 0, 0, 3, 0.0, 0.0, 1.0],
                     [Op.SCALAR_DIFF, 2, 3, 1]]},
        # entries of one vector differ: std > 0
        {"predict": [[Op.VECTOR_GAUSSIAN_SET, 0, 0, 1, 0.0, 0.0, 1.0],
                     [Op.VECTOR_ST_DEV, 1, 0, 1]]},
        {"predict": [[S_UNI, 0, 0, 1, 0.0, 0.0, 1.0]]},
        {"predict": [[S_UNI, 0, 0, 1, 0.0, 0.0, 1.0]]},  # same program again
        # Setup draws once; Predict reads the same value each step
        {"setup": [[S_GAU, 0, 0, 2, 0.0, 0.0, 1.0]],
         "predict": [[Op.SCALAR_SUM, 2, 4, 1]]},
    ]
    d = draws(progs, num_tasks=2)
    assert (d[0] != 0).all()
    assert (d[1] > 0).all()
    assert not np.array_equal(d[2, 0], d[3, 0])  # programs get different keys
    assert not np.array_equal(d[2, 0], d[2, 1])  # tasks get different keys
    assert len(np.unique(d[4, 0])) == 1 and len(np.unique(d[4, :, 0])) == 2
    # the same key gives the same draws
    np.testing.assert_array_equal(d, draws(progs, num_tasks=2))
    assert not np.array_equal(d, draws(progs, num_tasks=2, key=1))
