"""Dead-code elimination in the native kernel (evojax_zero/native/liveness.h).

Before running a program the kernel drops the instructions whose results cannot reach a
prediction. Checked three ways: hand-worked programs where specific instructions are dead or
live (loop-carried state through Learn and through Predict, the multi-class branch, the
random-stream rule); the kernel's pass against the Python liveness of
``evojax_zero.evaluate.analysis`` (an independent implementation) plus the random-op rule
re-implemented here, on many random programs; and bit-identical traces with the pass on and
off (``EVOJAX_ZERO_NATIVE_DCE``) on random programs over all 65 ops, random draws included,
binary accuracy, multi-class, one task (one lane) and several (lockstep lanes), f32 and f64.
"""

from __future__ import annotations

import contextlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import test_conformance_properties as props
import test_multiclass as tmc
from test_conformance import to_tasks, x64
from test_native import RAND_SPEC, _random_ops_population

from evojax_zero import native
from evojax_zero import program as P
from evojax_zero.evaluate.analysis import live_instructions
from evojax_zero.program import tasks as T
from evojax_zero.program.ops import Op

pytestmark = pytest.mark.skipif(not native.available(),
                                reason=f"native backend unavailable: {native.why_unavailable()}")

FNS = ("setup", "predict", "learn")
ALL_OPS = tuple(range(1, 65))


def spec_of(S=4, V=3, M=1, F=4, sizes=(6, 6, 6)):
    return P.ProgramSpec(num_scalars=S, num_vectors=V, num_matrices=M, feature_size=F,
                         setup_ops=ALL_OPS, predict_ops=ALL_OPS, learn_ops=ALL_OPS,
                         max_setup_size=sizes[0], max_predict_size=sizes[1],
                         max_learn_size=sizes[2])


def outcomes(spec, lists, num_classes=0):
    with x64("float64"):
        prog = P.from_lists(spec, **{fn: lists.get(fn, []) for fn in FNS})
        out = native.dead_code(spec, prog, num_classes)
    return {fn: [int(v) for v in out[fn][:len(lists.get(fn, []))]] for fn in FNS}


@contextlib.contextmanager
def native_switch(variable: str, enabled: bool):
    """The kernel's on/off environment switch ``variable`` (read at each call) set."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(variable, "1" if enabled else "0")
        yield


def traces_on_and_off(spec, progs, tasks, key, variable="EVOJAX_ZERO_NATIVE_DCE"):
    """``{False: trace, True: trace}`` of the native kernel with ``variable`` off and on."""
    runs = {}
    for flag in (False, True):
        with native_switch(variable, flag):
            runs[flag] = jax.tree.map(np.asarray, jax.device_get(
                native.trace(spec, None, progs, tasks, key)))
    return runs


def assert_same_bits(runs, what=None):
    for name, a in runs[False].items():
        assert np.array_equal(a, runs[True][name], equal_nan=True), (what, name)


# ---------------------------------------------------------------------------------------------
# Hand-worked programs (1 live, 0 dropped, 2 dead draw kept, 3 draws skipped)
# ---------------------------------------------------------------------------------------------

# SGD with three dead instructions. Learn's v1 update is read only by the *next* Predict.
SGD_EXTRA = {
    "setup": [[56, 0, 0, 2, 0.01],     # s2 = lr              live (Learn reads it)
              [56, 0, 0, 3, 5.0]],     # s3 = 5               dead (Learn writes s3 first)
    "predict": [[1, 0, 0, 3],          # s3 = s0 + s0         dead (Learn writes s3 first)
                [27, 1, 0, 1]],        # s1 = v1 . v0         live (the prediction)
    "learn": [[2, 0, 1, 3],            # s3 = s0 - s1         live
              [3, 3, 2, 3],            # s3 = s3 * s2         live
              [18, 3, 0, 2],           # v2 = s3 * v0         live
              [23, 1, 2, 1],           # v1 = v1 + v2         live: loop-carried into Predict
              [23, 0, 0, 2]],          # v2 = v0 + v0         dead (nothing reads v2 later)
}
SGD_EXTRA_OUT = {"setup": [1, 0], "predict": [0, 1], "learn": [1, 1, 1, 1, 0]}

# Predict carries state from one example to the next (no Learn at all).
CARRY = {
    "setup": [[56, 0, 0, 2, 3.0],      # s2 = 3               dead (overwritten next)
              [56, 0, 0, 2, 1.0],      # s2 = 1               live (the first Predict reads it)
              [56, 0, 0, 3, 0.5]],     # s3 = 0.5             live
    "predict": [[1, 2, 3, 1],          # s1 = s2 + s3         live
                [50, 0, 0, 2],         # s2 = mean(v0)        live: read by the next Predict
                [22, 0, 0, 2]],        # v2 = |v0|            dead
}
CARRY_OUT = {"setup": [0, 1, 1], "predict": [1, 1, 0], "learn": []}

# Multi-class: the prediction is v2, v1 is overwritten (zeros / one-hot) before Predict and
# Learn; in the scalar branch s1 is the prediction and v1 is ordinary memory.
MC = {
    "predict": [[22, 0, 0, 1],         # v1 = |v0|            MC: dead; scalar: Learn reads v1
                [31, 0, 0, 2],         # v2 = m0 @ v0         live
                [21, 2, 0, 1]],        # s1 = norm(v2)        MC: dead; scalar: the prediction
    "learn": [[24, 1, 2, 3],           # v3 = v1 - v2         live
              [28, 3, 0, 1],           # m1 = outer(v3, v0)   live
              [39, 0, 1, 0]],          # m0 = m0 + m1         live
}
MC_OUT = {"setup": [], "predict": [0, 1, 0], "learn": [1, 1, 1]}
MC_SCALAR_OUT = {"setup": [], "predict": [1, 1, 1], "learn": [1, 1, 1]}

# Random ops: a dead draw is dropped only when no live draw can follow it.
DRAWS_SETUP = {
    "setup": [[59, 0, 0, 2, 0.0, -1.0, 1.0],   # s2 = U(-1, 1)  dead, a live draw follows: skip
              [59, 0, 0, 2, 0.0, -1.0, 1.0],   # s2 = U(-1, 1)  live
              [60, 0, 0, 2, 0.0, -1.0, 1.0]],  # v2 = U         dead, no live draw after: drop
    "predict": [[1, 2, 2, 1],                  # s1 = s2 + s2   live
                [62, 0, 0, 3, 0.0, 0.0, 1.0]],  # s3 = N(0, 1)  dead, no live draw in the loop
}
DRAWS_SETUP_OUT = {"setup": [3, 1, 0], "predict": [1, 0], "learn": []}
DRAWS_LOOP = {
    "predict": [[59, 0, 0, 1, 0.0, -1.0, 1.0]],  # s1 = U(-1, 1) live: every dead draw counts
    "learn": [[63, 0, 0, 2, 0.0, 0.0, 1.0],      # v2 = N(0, 1)  dead: kept (draws vary)
              [60, 0, 0, 2, 0.0, 1.0, -1.0],     # v2 = U(1, -1) dead, lo >= hi draws nothing
              [61, 0, 0, 0, 0.0, -1.0, 1.0]],    # m0 = U        dead: skip 16 draws
}
DRAWS_LOOP_OUT = {"setup": [], "predict": [1], "learn": [2, 0, 3]}


@pytest.mark.parametrize("lists,want,K", [
    (SGD_EXTRA, SGD_EXTRA_OUT, 0), (CARRY, CARRY_OUT, 0), (MC, MC_OUT, 3),
    (MC, MC_SCALAR_OUT, 0), (DRAWS_SETUP, DRAWS_SETUP_OUT, 0), (DRAWS_LOOP, DRAWS_LOOP_OUT, 0),
], ids=["sgd", "predict-carry", "multiclass", "multiclass-as-scalar", "draws-setup",
        "draws-loop"])
def test_hand_worked_programs(lists, want, K):
    assert outcomes(spec_of(V=4, M=2), lists, K) == want


def test_too_many_addresses_keeps_everything():
    # S + V + M above the pass's limit (512 addresses): the program runs as it is.
    spec = spec_of(S=300, V=200, M=20)
    assert outcomes(spec, SGD_EXTRA)["learn"] == [1] * 5


def test_hand_worked_programs_run_the_same():
    """The hand-worked programs give the same bits with and without the pass (the dead draws
    above change nothing: a skip advances the stream exactly as the dropped op would)."""
    spec = spec_of(V=4, M=2)
    progs = [SGD_EXTRA, CARRY, MC, DRAWS_SETUP, DRAWS_LOOP]
    with x64("float64"):
        pop = P.stack([P.from_lists(spec, **{fn: p.get(fn, []) for fn in FNS}) for p in progs])
        tasks = T.linear_regression(num_tasks=3, num_train=30, num_valid=10, num_epochs=2,
                                    dtype=jnp.float64)
        runs = traces_on_and_off(spec, pop, tasks, jax.random.key(2))
    assert_same_bits(runs)
    # The random programs really draw: other keys give other predictions.
    assert np.unique(runs[True]["train_prediction"][4]).size > 30


# ---------------------------------------------------------------------------------------------
# Against the Python liveness (evaluate/analysis.py) on random programs
# ---------------------------------------------------------------------------------------------

GAUSSIAN = {Op.SCALAR_GAUSSIAN_SET, Op.VECTOR_GAUSSIAN_SET, Op.MATRIX_GAUSSIAN_SET}
UNIFORM = {Op.SCALAR_UNIFORM_SET, Op.VECTOR_UNIFORM_SET, Op.MATRIX_UNIFORM_SET}


def expected_outcomes(lists, keep):
    """The random-stream rule on top of the liveness flags, written independently of C++."""
    def is_random(row):
        return row[0] in GAUSSIAN or row[0] in UNIFORM

    loop_draws = any(k and is_random(r) for fn in ("predict", "learn")
                     for r, k in zip(lists[fn], keep[fn], strict=True))
    out = {}
    for fn in FNS:
        later, res = loop_draws, []
        for row, k in reversed(list(zip(lists[fn], keep[fn], strict=True))):
            if row[0] == 0:
                res.append(-1)
            elif k:
                res.append(1)
                later = later or is_random(row)
            elif is_random(row) and later:
                res.append(2 if row[0] in GAUSSIAN else (3 if row[5] < row[6] else 0))
            else:
                res.append(0)
        out[fn] = res[::-1]
    return out


def _random_lists(n, seed):
    rng = np.random.default_rng(seed)
    out = [(props.ALL_SPEC, props.random_program(rng, props.ALL_SPEC), 0) for _ in range(n)]
    out += [(RAND_SPEC, p, 0) for p in _random_ops_population(n, seed)]
    out += [(tmc.RAND_SPEC, tmc.random_program(rng), 3) for _ in range(n)]
    return out


def test_matches_python_liveness_on_random_programs():
    checked = {"live": 0, "dead": 0, "kept": 0, "skip": 0}
    for spec, lists, K in _random_lists(150, 11):
        with x64("float64"):
            prog = P.from_lists(spec, **lists)
            keep = live_instructions(prog, multiclass=K > 0)
            rows = P.to_lists(prog)
        want = expected_outcomes(rows, keep)
        got = outcomes(spec, rows, K)
        assert got == want, (lists, K)
        for fn in FNS:
            for v in got[fn]:
                checked[{1: "live", 0: "dead", 2: "kept", 3: "skip", -1: "live"}[v]] += 1
    # every outcome occurs many times
    assert min(checked.values()) > 20, checked


# ---------------------------------------------------------------------------------------------
# Bit-identical results with and without the pass
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("precision", ["float64", "float32"])
@pytest.mark.parametrize("eval_type", ["rms_error", "accuracy"])
@pytest.mark.parametrize("num_tasks", [1, 5])
def test_same_bits_all_ops(precision, eval_type, num_tasks):
    rng = np.random.default_rng(3 + num_tasks)
    progs = [props.random_program(rng, props.ALL_SPEC) for _ in range(200)]
    task_list = [props.random_task(rng, eval_type) for _ in range(num_tasks)]
    with x64(precision):
        pop = P.stack([P.from_lists(props.ALL_SPEC, **p) for p in progs])
        runs = traces_on_and_off(props.ALL_SPEC, pop, to_tasks(task_list, precision),
                                 jax.random.key(4))
    assert_same_bits(runs, (precision, eval_type, num_tasks))
    pred = runs[True]["valid_prediction"]
    assert np.unique(pred[np.isfinite(pred)]).size >= 10 and runs[True]["stopped"].any()


@pytest.mark.parametrize("precision", ["float64", "float32"])
@pytest.mark.parametrize("num_tasks", [1, 3, 13])
def test_same_bits_random_draws(precision, num_tasks):
    with x64(precision):
        pop = P.stack([P.from_lists(RAND_SPEC, **p) for p in _random_ops_population(300, 5)])
        tasks = T.linear_regression(num_tasks=num_tasks, num_train=20, num_valid=10,
                                    num_epochs=2, dtype=jnp.dtype(precision))
        runs = traces_on_and_off(RAND_SPEC, pop, tasks, jax.random.key(9))
    assert_same_bits(runs, (precision, num_tasks))
    assert np.unique(runs[True]["fitness"]).size > 50


@pytest.mark.parametrize("precision", ["float64", "float32"])
@pytest.mark.parametrize("num_tasks", [1, 4])
def test_same_bits_multiclass(precision, num_tasks):
    rng = np.random.default_rng(17 + num_tasks)
    progs = [tmc.random_program(rng) for _ in range(200)]
    task_list = [tmc.random_task(rng, 3) for _ in range(num_tasks)]
    with x64(precision):
        pop = P.stack([P.from_lists(tmc.RAND_SPEC, **p) for p in progs])
        runs = traces_on_and_off(tmc.RAND_SPEC, pop, tmc.to_tasks(task_list, precision),
                       jax.random.key(1))
    assert_same_bits(runs, (precision, num_tasks))
    assert np.unique(runs[True]["fitness"]).size > 3

