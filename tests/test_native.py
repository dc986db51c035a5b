"""The native CPU backend (evojax_zero.native): conformance with the NumPy reference
interpreter (tests/reference_interpreter.py), determinism across thread counts, random ops,
jit/vmap, all feature sizes, loader behaviour. Skipped when the backend is unavailable.

Everything here calls the native kernel directly (no XLA interpreter to compile), so the
random-program conformance over all 65 ops runs in the fast test subset.
"""

from __future__ import annotations

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_conformance import (
    close,
    differences,
    make_task,
    reference,
    to_tasks,
    x64,
)
from test_conformance_properties import ALL_SPEC, check_batch, random_program

from evojax_zero import native
from evojax_zero import program as P
from evojax_zero.evaluate.evaluator import EvalConfig
from evojax_zero.program.ops import FIRST_OUT_ADDRESS, NUM_OPS, OP_SPECS, Kind

pytestmark = pytest.mark.skipif(not native.available(),
                                reason=f"native backend unavailable: {native.why_unavailable()}")

TOL = {"float64": (1e-9, 1e-12, 1e-12), "float32": (1e-4, 1e-5, 1e-5)}
LINEAR_SPEC = P.ProgramSpec(num_scalars=4, num_vectors=3, num_matrices=1, feature_size=4,
                            setup_ops=[56], predict_ops=[27], learn_ops=[2, 3, 18, 23],
                            max_setup_size=5, max_predict_size=1, max_learn_size=4)
# Linear regression by SGD: s2 = lr; s1 = v1 . v0; s3 = (y - s1) * lr; v1 += s3 * x.
SGD = {"setup": [[56, 0, 0, 2, 0.01]], "predict": [[27, 1, 0, 1]],
       "learn": [[2, 0, 1, 3], [3, 3, 2, 3], [18, 3, 0, 2], [23, 1, 2, 1]]}


class Traced:
    """native.trace output with attribute access (the shape the conformance helpers use)."""

    def __init__(self, d):
        for k, v in d.items():
            setattr(self, k, np.asarray(v))


def native_trace(spec, programs, task_dicts, precision="float64", config=None, key=0):
    with x64(precision):
        progs = P.stack([P.from_lists(spec, **p) for p in programs])
        tasks = to_tasks(task_dicts, precision)
        out = native.trace(spec, config, progs, tasks, jax.random.key(key))
        return Traced(jax.device_get(out))


def compare_with_reference(spec, programs, task_dicts, precision, config=None):
    tr = native_trace(spec, programs, task_dicts, precision, config)
    problems = []
    for p, prog in enumerate(programs):
        for t, task in enumerate(task_dicts):
            ref = reference(spec, prog, task, precision, config)
            d = differences(ref, tr, p, t, *TOL[precision])
            if d:
                problems.append(f"program {p} task {t}: " + "; ".join(d))
    assert not problems, "\n".join(problems[:5])
    return tr


def test_available_and_reason():
    assert native.available()
    assert native.why_unavailable() == ""
    assert native.library_path() and os.path.exists(native.library_path())


# ---------------------------------------------------------------------------------------------
# Hand-worked and reference comparisons
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("precision", ["float64", "float32"])
def test_constant_predictor_closed_form(precision):
    # Predict: s1 = 2 (const set). Labels 1, 2, 4 -> errors 1, 0, 2 -> RMS sqrt(5/3).
    spec = P.ProgramSpec(num_scalars=3, num_vectors=2, num_matrices=1, feature_size=4,
                         setup_ops=[56], predict_ops=[56], learn_ops=[1],
                         max_setup_size=1, max_predict_size=1, max_learn_size=1)
    task = make_task([5.0, 5.0, 5.0], [1.0, 2.0, 4.0])
    tr = native_trace(spec, [{"predict": [[56, 0, 0, 1, 2.0]]}], [task], precision)
    expected = 1.0 - 2.0 / np.pi * np.arctan(np.sqrt(5.0 / 3.0))
    assert abs(float(tr.fitness[0, 0]) - expected) < TOL[precision][2]
    assert np.allclose(tr.train_error[0, 0], [3.0, 3.0, 3.0])
    assert np.allclose(tr.valid_error[0, 0], [1.0, 0.0, 2.0])
    assert int(tr.train_steps[0, 0]) == 3 and not bool(tr.stopped[0, 0])


@pytest.mark.parametrize("precision", ["float64", "float32"])
def test_linear_sgd_matches_reference(precision):
    from evojax_zero.program import tasks as T

    tasks = T.linear_regression(num_tasks=3, num_train=200, num_valid=20, num_epochs=3)
    dicts = [dict(train_x=np.asarray(tasks.train_x[t]), train_y=np.asarray(tasks.train_y[t]),
                  valid_x=np.asarray(tasks.valid_x[t]), valid_y=np.asarray(tasks.valid_y[t]),
                  epoch_order=np.asarray(tasks.epoch_order[t]), eval_type="rms_error")
             for t in range(3)]
    tr = compare_with_reference(LINEAR_SPEC, [SGD, {}], dicts, precision)
    assert np.all(tr.fitness[0] > 0.99)
    assert tr.epoch_fitness.shape == (2, 3, 3)


@pytest.mark.parametrize("config", [
    EvalConfig(num_train_examples=10, num_valid_examples=10),  # FEC pre-run shape
    EvalConfig(num_train_examples=7, num_valid_examples=3),  # partial epoch
    EvalConfig(num_train_examples=13),  # one full epoch + a partial second one
    EvalConfig(max_abs_error=1.5),
])
def test_configs_match_reference(config):
    rng = np.random.default_rng(3)
    tasks = [make_task(rng.standard_normal(10), rng.standard_normal(12),
                       rng.standard_normal((10, 4)), rng.standard_normal((12, 4)),
                       epoch_order=[list(range(10)), list(rng.permutation(10))])
             for _ in range(2)]
    tr = compare_with_reference(LINEAR_SPEC, [SGD, {}, {"predict": [[27, 0, 0, 1]]}],
                                tasks, "float64", config)
    n_train = 20 if config.num_train_examples is None else config.num_train_examples
    assert tr.train_error.shape[-1] == min(10, n_train)
    assert tr.epoch_fitness.shape[-1] == -(-n_train // 10)


@pytest.mark.parametrize("eval_type", ["rms_error", "accuracy"])
@pytest.mark.parametrize("precision", ["float64", "float32"])
@pytest.mark.parametrize("seed", [0, 1])
def test_random_programs_all_ops_match_reference(seed, precision, eval_type):
    # 48 random programs over all 65 ops (random ops in their deterministic cases), 2 tasks,
    # 2 epochs, extreme values; programs sensitive to summation order are filtered out.
    check_batch(seed, precision, eval_type, backend="native")


def test_every_op_is_exercised():
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(48 * 2):
        prog = random_program(rng, ALL_SPEC)
        for fn in ("setup", "predict", "learn"):
            seen.update(int(ins[0]) for ins in prog[fn])
    assert seen == set(range(NUM_OPS))


@pytest.mark.parametrize("F", [2, 8, 16, 32])
def test_other_feature_sizes_match_reference(F):
    ops = list(range(NUM_OPS))
    spec = P.ProgramSpec(num_scalars=4, num_vectors=3, num_matrices=2, feature_size=F,
                         setup_ops=ops, predict_ops=ops, learn_ops=ops,
                         max_setup_size=6, max_predict_size=6, max_learn_size=6)
    rng = np.random.default_rng(F)
    progs = [random_program(rng, spec) for _ in range(24)]
    tasks = [make_task(rng.standard_normal(5), rng.standard_normal(4),
                       rng.standard_normal((5, F)), rng.standard_normal((4, F)), F=F)]
    tr = native_trace(spec, progs, tasks, "float64")
    compared = 0
    for p, prog in enumerate(progs):
        ref = reference(spec, prog, tasks[0], "float64")
        other = reference(spec, prog, tasks[0], "float64", sum_order="pairwise")
        if other.stopped != ref.stopped or abs(other.fitness - ref.fitness) > 1e-14:
            continue  # sensitive to summation order
        compared += 1
        d = differences(ref, tr, p, 0, *TOL["float64"])
        assert not d, f"F={F} program {p}: {d}"
    assert compared >= 12


# ---------------------------------------------------------------------------------------------
# Determinism, random ops, jit / vmap
# ---------------------------------------------------------------------------------------------

RAND_OPS = [1, 3, 27, 31, 43, 56, 59, 60, 61, 62, 63, 64]
RAND_SPEC = P.ProgramSpec(num_scalars=4, num_vectors=3, num_matrices=2, feature_size=4,
                          setup_ops=RAND_OPS, predict_ops=RAND_OPS, learn_ops=RAND_OPS,
                          max_setup_size=4, max_predict_size=4, max_learn_size=4)


def _random_ops_population(n=64, seed=0):
    """Random programs over RAND_OPS with non-degenerate random ops (lo < hi, stdev > 0)."""
    rng = np.random.default_rng(seed)
    progs = []
    for _ in range(n):
        prog = {}
        for fn in ("setup", "predict", "learn"):
            rows = []
            for _ in range(int(rng.integers(1, 5))):
                s = OP_SPECS[int(rng.choice(RAND_OPS))]
                addr = []
                for slot, kind in (("in1", s.in1), ("in2", s.in2), ("out", s.out)):
                    lo = FIRST_OUT_ADDRESS.get(kind, 0) if slot == "out" else 0
                    hi = RAND_SPEC.num_addresses(kind) if kind != Kind.NONE else 1
                    addr.append(int(rng.integers(lo, hi)) if kind != Kind.NONE else 0)
                lo, hi = sorted(rng.uniform(-1, 1, 2))
                rows.append([int(s.op), *addr, float(rng.uniform(-1, 1)), lo, hi, 0.0])
            prog[fn] = rows
        progs.append(prog)
    return progs


def _run_trace(programs, tasks, key, threads):
    old = os.environ.get("EVOJAX_ZERO_NUM_THREADS")
    os.environ["EVOJAX_ZERO_NUM_THREADS"] = str(threads)
    try:
        out = native.trace(RAND_SPEC, None, programs, tasks, key)
        return jax.tree.map(np.asarray, jax.device_get(out))
    finally:
        if old is None:
            os.environ.pop("EVOJAX_ZERO_NUM_THREADS")
        else:
            os.environ["EVOJAX_ZERO_NUM_THREADS"] = old


@pytest.fixture(scope="module")
def random_setup():
    from evojax_zero.program import tasks as T

    with jax.enable_x64(True):
        progs = P.stack([P.from_lists(RAND_SPEC, **p) for p in _random_ops_population()])
        tasks = T.linear_regression(num_tasks=3, num_train=20, num_valid=10, num_epochs=2,
                                    dtype=jnp.float64)
    return progs, tasks


def test_results_independent_of_thread_count(random_setup):
    progs, tasks = random_setup
    with jax.enable_x64(True):
        key = jax.random.key(7)
        runs = [_run_trace(progs, tasks, key, th) for th in (1, 2, 3, 8)]
    for other in runs[1:]:
        for name, a in runs[0].items():
            assert np.array_equal(a, other[name], equal_nan=True), name


def test_random_ops_depend_on_key_only(random_setup):
    progs, tasks = random_setup
    with jax.enable_x64(True):
        a = native.evaluate(RAND_SPEC, None, progs, tasks, jax.random.key(1))
        b = native.evaluate(RAND_SPEC, None, progs, tasks, jax.random.key(1))
        c = native.evaluate(RAND_SPEC, None, progs, tasks, jax.random.key(2))
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("precision", ["float64", "float32"])
def test_random_op_draws_in_range_and_moments(precision):
    # Predict: s1 = uniform(-0.5, 0.25) (op 59) or s1 = gaussian(0.3, 2.0) (op 62).
    spec = P.ProgramSpec(num_scalars=3, num_vectors=2, num_matrices=1, feature_size=4,
                         setup_ops=[56], predict_ops=[59, 62], learn_ops=[1],
                         max_setup_size=1, max_predict_size=1, max_learn_size=1)
    n = 4000
    task = make_task(np.zeros(n), np.zeros(2))
    progs = [{"predict": [[59, 0, 0, 1, 0.0, -0.5, 0.25]]},
             {"predict": [[62, 0, 0, 1, 0.0, 0.3, 2.0]]}]
    tr = native_trace(spec, progs, [task], precision)
    u, g = tr.train_prediction[0, 0], tr.train_prediction[1, 0]
    assert np.all((u > -0.5) & (u < 0.25))
    assert abs(u.mean() + 0.125) < 0.01 and abs(u.std() - 0.75 / np.sqrt(12)) < 0.01
    assert abs(g.mean() - 0.3) < 0.1 and abs(g.std() - 2.0) < 0.1
    assert len(np.unique(u)) > n * 0.99


def test_jit_and_vmap(random_setup):
    progs, tasks = random_setup
    with jax.enable_x64(True):
        keys = jax.random.split(jax.random.key(3), progs.batch_shape[0])
        direct = native.evaluate(RAND_SPEC, None, progs, tasks, keys)
        jitted = jax.jit(lambda p, t, k: native.evaluate(RAND_SPEC, None, p, t, k))(
            progs, tasks, keys)
        halves = jax.tree.map(lambda x: x.reshape(2, -1, *x.shape[1:]), progs)
        vmapped = jax.vmap(lambda p, k: native.evaluate(RAND_SPEC, None, p, tasks, k))(
            halves, keys.reshape(2, -1))
    assert np.array_equal(direct, jitted)
    assert np.array_equal(direct, np.asarray(vmapped).reshape(direct.shape))


def test_evaluator_native_matches_direct_call(random_setup):
    from evojax_zero.evaluate.evaluator import Evaluator

    progs, tasks = random_setup
    with jax.enable_x64(True):
        ev = Evaluator(RAND_SPEC, EvalConfig(), backend="native")
        key = jax.random.key(5)
        per_task = ev.per_task(progs, tasks, key)
        keys = jax.random.split(key, progs.batch_shape[0])
        direct = native.evaluate(RAND_SPEC, EvalConfig(), progs, tasks, keys)
    assert ev.backend == "native"
    assert np.array_equal(per_task, direct)


def test_deterministic_random_ops_are_exact():
    # uniform with lo >= hi returns lo; gaussian with stdev 0 returns the mean.
    spec = P.ProgramSpec(num_scalars=3, num_vectors=2, num_matrices=2, feature_size=4,
                         setup_ops=[61, 64], predict_ops=[59, 62, 51], learn_ops=[1],
                         max_setup_size=2, max_predict_size=2, max_learn_size=1)
    task = make_task([0.0] * 3, [0.0] * 3)
    progs = [{"predict": [[59, 0, 0, 1, 0.0, 0.7, 0.7]]},
             {"predict": [[62, 0, 0, 1, 0.0, -0.3, 0.0]]},
             {"setup": [[61, 0, 0, 1, 0.0, 0.25, -1.0]], "predict": [[51, 1, 0, 1]]},
             {"setup": [[64, 0, 0, 0, 0.0, 0.5, 0.0]], "predict": [[51, 0, 0, 1]]}]
    tr = native_trace(spec, progs, [task], "float64")
    for p, v in enumerate([0.7, -0.3, 0.25, 0.5]):
        assert close(tr.train_prediction[p, 0], [np.float32(v)] * 3, 0, 0), p


# ---------------------------------------------------------------------------------------------
# Errors and the loader
# ---------------------------------------------------------------------------------------------


def test_feature_size_mismatch_is_a_value_error():
    with x64("float64"):
        progs = P.stack([P.from_lists(LINEAR_SPEC, **SGD)])
        tasks = to_tasks([make_task([0.0], [0.0], F=8)], "float64")
        with pytest.raises(ValueError, match="features"):
            native.evaluate(LINEAR_SPEC, None, progs, tasks, jax.random.key(0))


def test_unloadable_library_is_reported_and_auto_falls_back(tmp_path):
    code = (
        "from evojax_zero import native\n"
        "from evojax_zero.evaluate.evaluator import Evaluator\n"
        "from evojax_zero.program.programs import ProgramSpec\n"
        "assert not native.available()\n"
        "print('WHY', native.why_unavailable())\n"
        "spec = ProgramSpec(setup_ops=[56], predict_ops=[27], learn_ops=[1])\n"
        "print('AUTO', Evaluator(spec, backend='auto').backend)\n"
        "try:\n"
        "    Evaluator(spec, backend='native')\n"
        "except ValueError as e:\n"
        "    print('FORCED', e)\n"
    )
    env = dict(os.environ, EVOJAX_ZERO_NATIVE_LIB=str(tmp_path / "missing.so"),
               JAX_PLATFORMS="cpu")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    assert "WHY EVOJAX_ZERO_NATIVE_LIB=" in out.stdout
    assert "AUTO xla" in out.stdout
    assert "FORCED backend='native' is unavailable" in out.stdout


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_per_task_results_independent_of_lane_width(dtype):
    """The CPU kernel runs the tasks of a batch in groups of a fixed lane width (1, 4, 8, 12
    or 16 lanes, lanes past the group's tasks computing values nobody reads) and reads the
    examples from a feed in lane order: each task's fitness must not depend on which group
    width it ran in. 13 tasks (one group of width 16) vs the same tasks in batches of 1, 3,
    5 and 10 (widths 1, 4, 8, 12); the demo op set has no random ops, so a task's result
    depends on its data only."""
    from evojax_zero.evaluate.evaluator import Evaluator
    from evojax_zero.program import tasks as T
    from evojax_zero.search.mutation import MutationConfig
    from evojax_zero.search.mutation import random_program as library_random_program

    ops = (56, 27, 2, 3, 18, 23)
    spec = P.ProgramSpec(num_scalars=4, num_vectors=3, num_matrices=1, feature_size=4,
                         setup_ops=ops, predict_ops=ops, learn_ops=ops, max_setup_size=6,
                         max_predict_size=3, max_learn_size=6)
    with jax.enable_x64(dtype == "float64"):
        config = MutationConfig(spec.setup_ops, spec.predict_ops, spec.learn_ops)
        keys = jax.random.split(jax.random.key(3), 24)
        progs = jax.vmap(lambda k: library_random_program(k, spec, config, (6, 3, 6)))(keys)
        tasks = T.linear_regression(num_tasks=13, num_train=12, num_valid=6, num_epochs=2,
                                    dtype=jnp.dtype(dtype))
        ev = Evaluator(spec, EvalConfig(), backend="native")
        key = jax.random.key(0)
        whole = np.asarray(ev.per_task(progs, tasks, key))
        for size in (1, 3, 5, 10):
            for start in range(0, 13, size):
                part = jax.tree.map(lambda x, s=start, n=size: x[s:s + n], tasks)
                got = np.asarray(ev.per_task(progs, part, key))
                want = whole[:, start:start + got.shape[1]]
                assert np.array_equal(got, want), (size, start)
    assert np.unique(whole).size > 3  # the programs do not all score the same
