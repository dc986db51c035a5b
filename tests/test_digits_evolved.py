"""benchmarks/digits_evolved.py (issue 13 item 5): the two facts its comparison rests on.

* The hand-written LINEAR_ALGORITHM on accuracy tasks is online logistic-regression SGD
  (the evaluator feeds Learn sigmoid(s1)): checked against a NumPy re-implementation.
* The tasks that choose the search's winner share no (pair, split seed) with the final
  tasks, so the final validation split is never used for selection.
"""

from __future__ import annotations

import importlib.util
import pathlib
import sys

import jax
import numpy as np

from evojax_zero.evaluate.evaluator import EvalConfig, Evaluator
from evojax_zero.program import tasks as T
from evojax_zero.program.programs import ProgramSpec

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _bench():
    name = "digits_evolved_benchmark"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" /
                                                      "digits_evolved.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def _numpy_online_logistic(tx, ty, vx, lr):
    """Online logistic-regression SGD from w = 0; (train probabilities, valid logits)."""
    w = np.zeros(tx.shape[1])
    probs = []
    for x, y in zip(tx, ty, strict=True):
        p = 1.0 / (1.0 + np.exp(-(w @ x)))
        probs.append(p)
        w = w + lr * (y - p) * x
    return np.asarray(probs), vx @ w


def test_linear_algorithm_is_online_logistic_regression():
    bench = _bench()
    t = T.projected_binary([(9, 0), (8, 1), (5, 3)], [0, 1, 2], 16)
    spec = ProgramSpec(4, 3, 1, 16, (56,), (27,), (2, 3, 18, 23), 1, 1, 4)
    lr = 0.05
    tr = Evaluator(spec, EvalConfig(), "xla").trace(
        jax.tree.map(lambda x: x[None], bench.logistic(spec, lr)), t, jax.random.key(0))
    for i in range(t.num_tasks):
        probs, logits = _numpy_online_logistic(*(np.asarray(a[i], np.float64) for a in (
            t.train_x, t.train_y, t.valid_x)), lr)
        np.testing.assert_allclose(np.asarray(tr.train_prediction[0, i]), probs, atol=1e-4)
        np.testing.assert_allclose(np.asarray(tr.valid_prediction[0, i]), logits, atol=1e-3)
        acc = np.mean((logits > 0) == (np.asarray(t.valid_y[i]) > 0.5))
        assert abs(float(tr.fitness[0, i]) - acc) < 1e-6 and acc > 0.8


def test_select_tasks_never_reuse_a_final_task():
    bench = _bench()
    sel = bench.select_tasks(200, 1)  # 200 of 800 free: a leak would show
    pairs, seeds = bench.FINAL_TASKS.digit_pairs()
    final = T.projected_binary(pairs, seeds, 16)
    s = np.asarray(sel.train_x)[:, 0]  # first train example identifies a (pair, seed)
    f = np.asarray(final.train_x)[:, 0]
    same = np.isclose(s[:, None, :], f[None, :, :]).all(-1)
    assert not same.any(), f"select tasks {np.argwhere(same)[:, 0]} are final tasks"
    # both sides are held-out pairs (the selection is on held-out pairs, as the reference)
    assert sel.num_tasks == 200 and sel.num_valid == final.num_valid
