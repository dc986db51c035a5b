"""Evaluator API: compile-once behaviour, boundary errors, schedules, tasks, sharding."""

import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

from evojax_zero import program as P
from evojax_zero.evaluate.evaluator import EvalConfig, Evaluator, epoch_schedule
from evojax_zero.program import tasks as T

SPEC = P.ProgramSpec(setup_ops=[56], predict_ops=[27], learn_ops=[2, 3, 18, 23],
                     max_setup_size=5, max_predict_size=1, max_learn_size=4)
LINEAR = dict(setup=[[56, 0, 0, 2, 0.01]], predict=[[27, 1, 0, 1]],
              learn=[[2, 0, 1, 3], [3, 2, 3, 3], [18, 3, 0, 2], [23, 1, 2, 1]])


def linear_program(lr=0.01):
    return P.from_lists(SPEC, **{**LINEAR, "setup": [[56, 0, 0, 2, lr]]})


@pytest.fixture(scope="module")
def small_tasks():
    return T.linear_regression(num_tasks=3, num_train=20, num_valid=10)


def test_sgd_linear_regression_is_solved():
    tasks = T.linear_regression(num_tasks=4, num_train=1000, num_valid=100)
    fit = Evaluator(SPEC, backend="xla")(P.stack([linear_program()]), tasks, jax.random.key(0))
    assert float(fit[0]) > 0.999


def test_empty_program_fitness_is_squashed_rms_of_labels(small_tasks):
    # Predict never writes s1, so the prediction is 0: RMS = sqrt(mean(y^2)).
    fit = Evaluator(SPEC, backend="xla").per_task(
        P.empty(SPEC, (1,)), small_tasks, jax.random.key(0))
    rms = np.sqrt(np.mean(np.asarray(small_tasks.valid_y, np.float64) ** 2, axis=1))
    np.testing.assert_allclose(fit[0], 1 - 2 / np.pi * np.arctan(rms), rtol=1e-5)


def test_second_call_with_new_programs_does_not_recompile(small_tasks, compile_count):
    ev = Evaluator(SPEC, backend="xla")
    a = P.stack([linear_program(0.01), P.empty(SPEC)])
    b = P.stack([linear_program(0.5), linear_program(-0.1)])
    key = jax.random.key(0)
    with compile_count() as first:
        ev(a, small_tasks, key)
        ev.per_task(a, small_tasks, key)
    assert first.count >= 2  # the counter sees this evaluator's compilations
    with compile_count() as again:
        r1 = ev(b, small_tasks, jax.random.key(1))
        r2 = ev.per_task(b, small_tasks, key)
        jax.block_until_ready((r1, r2))
    assert again.count == 0  # new programs, same shapes: no recompile
    assert r1.shape == (2,) and r2.shape == (2, 3)


# Early stops. A program that adds ``d`` to s3 at every Predict call and predicts s3
# (Setup: s2 = d; Predict: s3 = s3 + s2, s1 = s3 + s0, with s0 = 0 in Predict) predicts d, 2d,
# 3d, ... on alternating train and validation examples. With one train example (label 0), one
# validation example and 4 epochs: d = 120 stops at the first train step (fitness 0 although its
# validation error would be 240 - 180 = 60); d = 30 stops in epoch 2 (fitness = epoch 1's, the
# best so far; its validation in epoch 2 would have been perfect, 180); d = 0.25 never stops.
EARLY_STOP_SPEC = P.ProgramSpec(setup_ops=[56], predict_ops=[1], max_setup_size=1,
                                max_predict_size=2, max_learn_size=1)


def accumulate_program(d):
    return P.from_lists(EARLY_STOP_SPEC, setup=[[56, 0, 0, 2, d]],
                        predict=[[1, 3, 2, 3], [1, 3, 0, 1]])


@pytest.fixture(scope="module")
def early_stop_tasks():
    x = np.random.default_rng(0).standard_normal((2, 2, 1, 4))
    return T.from_arrays(x[0], [[0.0], [0.0]], x[1], [[180.0], [1.0]],
                         epoch_order=[[0]] * 4)


@pytest.mark.parametrize("backend", ["xla", "auto"])
def test_early_stopped_rows_match_the_reference(early_stop_tasks, ri, backend):
    """Rows (program, task) that stop early in the first epoch have fitness exactly 0, later
    stops keep the best epoch before the stop, and every row (fitness, stop flag, train steps
    run, fitness per epoch) equals the plain NumPy reference interpreter's."""
    tasks = early_stop_tasks
    progs = [accumulate_program(d) for d in (0.25, 30.0, 120.0)] + [P.empty(EARLY_STOP_SPEC)]
    ev = Evaluator(EARLY_STOP_SPEC, backend=backend)
    key = jax.random.key(0)
    batch = P.stack(progs)
    tr = jax.tree.map(np.asarray, jax.device_get(ev.trace(batch, tasks, key)))
    per_task = np.asarray(ev.per_task(batch, tasks, key))
    s = EARLY_STOP_SPEC
    ref = [[ri.run(p, ri.task_arrays(tasks, t), s.num_scalars, s.num_vectors, s.num_matrices,
                   dtype=np.float32) for t in range(tasks.num_tasks)] for p in progs]
    ref_fit = np.array([[r.fitness for r in row] for row in ref])
    ref_stopped = np.array([[r.stopped for r in row] for row in ref])
    # hand-worked: d = 120 stops at once on both tasks; d = 30 stops in epoch 2 of task 0
    # after validation fitness squash(180 - 120) in epoch 1; d = 0.25 predicts 0.5 exactly
    # in epoch 1 of task 1 (error 0, fitness 1); the empty program never stops.
    np.testing.assert_array_equal(ref_stopped, [[False, False], [True, True], [True, True],
                                                [False, False]])
    assert ref_fit[2].tolist() == [0.0, 0.0] and ref_fit[0, 1] == 1.0
    np.testing.assert_allclose(ref_fit[1, 0], 1 - 2 / np.pi * np.arctan(60.0), rtol=1e-6)
    np.testing.assert_array_equal(tr.stopped, ref_stopped)
    np.testing.assert_array_equal(per_task[2], 0.0)  # first-epoch stops: exactly zero
    np.testing.assert_allclose(per_task, ref_fit, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(per_task, tr.fitness)
    np.testing.assert_array_equal(tr.train_steps, [[r.num_train_steps for r in row]
                                                   for row in ref])
    for p, row in enumerate(ref):
        for t, r in enumerate(row):
            np.testing.assert_allclose(tr.epoch_fitness[p, t], r.epoch_fitness, atol=1e-6,
                                       err_msg=f"program {p}, task {t}")


@pytest.mark.parametrize("n,e,req,expected", [
    (100, 1, None, [100]), (100, 1, 10, [10]), (100, 1, 1000, [100]),
    (50, 3, 120, [50, 50, 20]), (50, 3, None, [50, 50, 50]), (50, 3, 100, [50, 50]),
])
def test_epoch_schedule(n, e, req, expected):
    assert epoch_schedule(n, e, req) == expected


@pytest.mark.parametrize("kwargs,field", [
    (dict(num_train_examples=0), "num_train_examples"),
    (dict(num_valid_examples=-1), "num_valid_examples"),
    (dict(max_abs_error=0.0), "max_abs_error"),
    (dict(combine="max"), "combine"),
])
def test_config_errors_name_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        EvalConfig(**kwargs)


def test_boundary_errors(small_tasks):
    ev = Evaluator(SPEC, backend="xla")
    with pytest.raises(ValueError, match="backend"):
        Evaluator(SPEC, backend="tpu-magic")
    with pytest.raises(ValueError, match="leading population axis"):
        ev(linear_program(), small_tasks, jax.random.key(0))
    with pytest.raises(ValueError, match="feature size"):
        ev(P.stack([linear_program()]), T.linear_regression(2, 8, 10, 10), jax.random.key(0))
    with pytest.raises(ValueError, match="keys"):
        ev(P.stack([linear_program()]), small_tasks, jax.random.split(jax.random.key(0), 3))
    other = SPEC.replace(max_learn_size=6)
    with pytest.raises(ValueError, match="max_learn_size"):
        ev(P.empty(other, (1,)), small_tasks, jax.random.key(0))


def test_teacher_task_zeroes_rows_0_and_2():
    # With rows 0 and 2 of W1 and entries 0 and 2 of w2 zeroed, y depends only on the
    # hidden units 1 and 3; check y = w2 . relu(W1 x) can be refit with that structure.
    t = T.teacher_regression(num_tasks=1, num_train=200, num_valid=10)
    x, y = np.asarray(t.train_x[0], np.float64), np.asarray(t.train_y[0], np.float64)
    assert x.shape == (200, 4) and y.shape == (200,)
    assert np.all(np.isfinite(y)) and np.std(y) > 0
    assert (y >= 0).mean() < 1.0 or (y <= 0).mean() < 1.0


def test_linear_tasks_are_exact_and_seeded():
    a = T.linear_regression(num_tasks=2, num_train=30, num_valid=5)
    b = T.linear_regression(num_tasks=2, num_train=30, num_valid=5)
    np.testing.assert_array_equal(a.train_x, b.train_x)
    x = np.asarray(a.train_x[0], np.float64)
    w, *_ = np.linalg.lstsq(x, np.asarray(a.train_y[0], np.float64), rcond=None)
    np.testing.assert_allclose(x @ w, a.train_y[0], atol=1e-4)  # y = w.x, no noise
    c = T.linear_regression(num_tasks=2, num_train=30, num_valid=5, param_seeds=[5, 6])
    assert not np.allclose(c.train_y, a.train_y)


def test_epoch_orders_first_epoch_in_order_later_shuffled():
    o = T.epoch_orders(11001, 20, 3)
    np.testing.assert_array_equal(o[0], np.arange(20))
    assert sorted(o[1]) == list(range(20)) and not np.array_equal(o[1], np.arange(20))


def test_projected_digits_pairs():
    tasks, tests = T.projected_binary([(1, 0), (7, 3)], seeds=[0, 1], feature_size=16,
                                      return_test=True)
    assert tasks.eval_type == T.ACCURACY and tasks.feature_size == 16
    x = np.asarray(tasks.train_x[0], np.float64)
    np.testing.assert_allclose(x.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(x.std(0), 1, atol=1e-4)
    y = np.asarray(tasks.train_y[0])
    assert set(np.unique(y)) == {0.0, 1.0} and abs(y.mean() - 0.5) < 0.02
    assert tests[0][0].shape[1] == 16
    with pytest.raises(ValueError, match="pair"):
        T.projected_binary([(3, 3)], seeds=[0])


def test_from_arrays_validates():
    x = np.zeros((5, 4))
    with pytest.raises(ValueError, match="eval_type"):
        T.from_arrays(x, np.zeros(5), x, np.zeros(5), eval_type="mse")
    with pytest.raises(ValueError, match="labels"):
        T.from_arrays(x, np.zeros(4), x, np.zeros(5))
    with pytest.raises(ValueError, match="feature_size"):
        T.from_arrays(np.zeros((5, 3)), np.zeros(5), np.zeros((5, 3)), np.zeros(5))
    t = T.from_arrays(x, np.ones(5), x, np.zeros(5), eval_type="accuracy")
    assert t.num_tasks == 1 and t.num_train == 5


def test_eight_devices_match_one_device(repo_root):
    """The population sharded over 8 (fake CPU) devices scores exactly as on one."""
    code = textwrap.dedent("""
        import jax, numpy as np
        from jax.sharding import NamedSharding, PartitionSpec as PS
        from evojax_zero import program as P
        from evojax_zero.program import tasks as T
        from evojax_zero.evaluate.evaluator import Evaluator
        assert len(jax.devices()) == 8
        spec = P.ProgramSpec(setup_ops=[56], predict_ops=[27], learn_ops=[2, 3, 18, 23],
                             max_setup_size=5, max_predict_size=1, max_learn_size=4)
        learn = [[2, 0, 1, 3], [3, 2, 3, 3], [18, 3, 0, 2], [23, 1, 2, 1]]
        progs = P.stack([P.from_lists(spec, setup=[[56, 0, 0, 2, lr]], predict=[[27, 1, 0, 1]],
                                      learn=learn) for lr in np.linspace(-0.1, 0.3, 16)])
        tasks = T.linear_regression(num_tasks=2, num_train=20, num_valid=10)
        ev = Evaluator(spec, backend="xla")
        keys = jax.random.split(jax.random.key(0), 16)
        one = np.asarray(ev.per_task(progs, tasks, keys))
        mesh = jax.make_mesh((8,), ("pop",), axis_types=(jax.sharding.AxisType.Auto,))
        shard = NamedSharding(mesh, PS("pop"))
        progs8 = jax.device_put(progs, shard)
        out = ev.per_task(progs8, tasks, jax.device_put(keys, shard))
        assert len(out.sharding.device_set) == 8, out.sharding
        assert {s.data.shape for s in out.addressable_shards} == {(2, 2)}  # 16 / 8 rows each
        np.testing.assert_array_equal(np.asarray(out), one)
        print("OK")
    """)
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8",
               JAX_PLATFORMS="cpu")
    r = subprocess.run([sys.executable, "-c", code], env=env, cwd=repo_root,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "OK" in r.stdout, r.stderr[-3000:]


def test_from_arrays_with_explicit_epoch_order():
    x = np.arange(12, dtype=float).reshape(3, 4)
    order = [[0, 1, 2], [2, 0, 1]]
    t = T.from_arrays(x, np.arange(3.0), x, np.arange(3.0), epoch_order=order)
    assert t.num_epochs == 2
    np.testing.assert_array_equal(t.epoch_order[0], order)
    with pytest.raises(ValueError, match="epoch_order"):
        T.from_arrays(x, np.arange(3.0), x, np.arange(3.0), epoch_order=[[0, 0, 1]])


def test_const_set_index_fraction_must_be_in_unit_interval():
    spec = P.ProgramSpec(setup_ops=[57, 58], max_setup_size=2)
    P.from_lists(spec, setup=[[57, 0, 0, 1, 0.0, 0.999, 0.5], [58, 0, 0, 0, 0.0, 0.0, 0.5, 1.0]])
    with pytest.raises(ValueError, match="Setup instruction 0.*f0"):
        P.from_lists(spec, setup=[[57, 0, 0, 1, 0.0, 1.0, 0.5]])
    with pytest.raises(ValueError, match="Setup instruction 1.*f1"):
        P.from_lists(spec, setup=[[57, 0, 0, 1, 0.0, 0.5, 0.5], [58, 0, 0, 0, 0.0, 0.1, -0.2]])
