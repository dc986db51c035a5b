"""Program lanes (evojax_zero/native/interpreter.cc): with one task, programs of a batch that
share Predict and Learn run as the lanes of one group, each with its own Setup, key and
outputs. Every trace field must be bit-identical to running each program alone
(``EVOJAX_ZERO_NATIVE_PROGRAM_LANES=0``), whatever the group sizes (lane widths 1, 4, 8, 12,
16 and several groups per shared loop), with random draws in Setup, Predict and Learn,
early stops, binary and multi-class accuracy, f32 and f64.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest
import test_conformance_properties as props
import test_multiclass as tmc
from test_conformance import to_tasks, x64
from test_native_dce import assert_same_bits, traces_on_and_off

from evojax_zero import native
from evojax_zero import program as P

pytestmark = pytest.mark.skipif(not native.available(),
                                reason=f"native backend unavailable: {native.why_unavailable()}")


def families(rng, make_program, make_setup, sizes):
    """Programs in families that share Predict and Learn: family i has sizes[i] members,
    each with its own Setup. Shuffled, so a family's members are not adjacent."""
    progs = []
    for n in sizes:
        base = make_program(rng)
        for _ in range(n):
            progs.append({**base, "setup": make_setup(rng)})
    order = rng.permutation(len(progs))
    return [progs[i] for i in order]


def run_both(spec, progs, tasks, precision):
    with x64(precision):
        pop = P.stack([P.from_lists(spec, **p) for p in progs])
        runs = traces_on_and_off(spec, pop, tasks, jax.random.key(5),
                                 "EVOJAX_ZERO_NATIVE_PROGRAM_LANES")
    assert_same_bits(runs)
    return runs[True]


SIZES = [1, 2, 3, 5, 9, 13, 16, 20, 40, 1, 1]  # widths 1, 4, 8, 12, 16; 20 and 40 split


@pytest.mark.parametrize("precision", ["float64", "float32"])
@pytest.mark.parametrize("eval_type", ["rms_error", "accuracy"])
def test_all_ops_families_same_bits(precision, eval_type):
    rng = np.random.default_rng(23)
    spec = props.ALL_SPEC

    def setup(r):
        return [props.random_instruction(r, spec, "setup")
                for _ in range(int(r.integers(0, spec.max_size("setup") + 1)))]

    progs = families(rng, lambda r: props.random_program(r, spec), setup, SIZES)
    task = [props.random_task(rng, eval_type)]
    out = run_both(spec, progs, to_tasks(task, precision), precision)
    pred = out["valid_prediction"]
    assert np.unique(pred[np.isfinite(pred)]).size >= 10 and out["stopped"].any()


@pytest.mark.parametrize("precision", ["float64", "float32"])
def test_multiclass_families_same_bits(precision):
    rng = np.random.default_rng(29)

    def setup(r):
        return tmc.random_program(r)["setup"]

    progs = families(rng, tmc.random_program, setup, SIZES)
    task = [tmc.random_task(rng, 3)]
    run_both(tmc.RAND_SPEC, progs, tmc.to_tasks(task, precision), precision)


def test_nonlinear_preset_shape_same_bits():
    """The nonlinear preset's situation: the hand-written net's Predict and Learn, Setups
    with gaussian weight draws (what its mutations change), one teacher task of 200 steps."""
    from evojax_zero.program import tasks as T
    from evojax_zero.search.initial import neural_net_lists

    net = {k: [[int(r[0]), *map(int, r[1:4]), *map(float, r[4:])] for r in v]
           for k, v in neural_net_lists().items()}
    spec = P.ProgramSpec(num_scalars=5, num_vectors=9, num_matrices=2, feature_size=4,
                         setup_ops=tuple(range(1, 65)), predict_ops=tuple(range(1, 65)),
                         learn_ops=tuple(range(1, 65)), max_setup_size=7,
                         max_predict_size=len(net["predict"]), max_learn_size=len(net["learn"]))
    rng = np.random.default_rng(31)

    def setup(r):
        rows = [list(row) for row in net["setup"]]
        for row in rows:
            if row[0] in (63, 64):
                row[6] = float(r.choice([0.1, 0.5, 1.0]))
        if r.random() < 0.5:
            rows.append([63, 0, 0, int(r.integers(1, 9)), 0.0, 0.0, float(r.uniform(0, 1))])
        return rows

    progs = families(rng, lambda r: dict(net), setup, [37, 5, 1])
    tasks = T.teacher_regression(1, 4, 200, 50)
    with x64("float32"):
        out = run_both(spec, progs, tasks, "float32")
    assert np.unique(out["fitness"]).size > 20
