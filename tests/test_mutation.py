"""Mutations and initial programs: validity, frequencies, hand-checked shifts."""

from __future__ import annotations

import functools
import hashlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evojax_zero import program as P
from evojax_zero.program.ops import Op
from evojax_zero.search import initial as algorithms
from evojax_zero.search import mutation
from evojax_zero.search.mutation import MutationConfig, MutationType

DEMO_OPS = (56, 27, 2, 3, 18, 23)
DEMO_SPEC = P.ProgramSpec(4, 3, 1, 4, setup_ops=DEMO_OPS, predict_ops=DEMO_OPS,
                          learn_ops=DEMO_OPS, max_setup_size=10, max_predict_size=2,
                          max_learn_size=8)
DEMO_CFG = MutationConfig(setup_ops=DEMO_OPS, predict_ops=DEMO_OPS, learn_ops=DEMO_OPS)

# A wide spec (all ops, small memory) with every mutation type and size bounds.
ALL_OPS = tuple(range(1, 65))
WIDE_SPEC = P.ProgramSpec(3, 3, 2, 4, setup_ops=ALL_OPS, predict_ops=ALL_OPS,
                          learn_ops=ALL_OPS, max_setup_size=6, max_predict_size=4,
                          max_learn_size=7)
WIDE_CFG = MutationConfig(setup_ops=ALL_OPS, predict_ops=(0, 1, 27), learn_ops=ALL_OPS,
                          mutation_types=tuple(range(8)), mutate_prob=0.8,
                          setup_size_min=1, setup_size_max=7, learn_size_min=2,
                          learn_size_max=6)


@functools.partial(jax.jit, static_argnums=(2, 3))
def _mutate_many(keys, prog, cfg, spec):
    return jax.vmap(lambda k: mutation.mutate(k, prog, cfg, spec))(keys)


@functools.partial(jax.jit, static_argnums=(1, 2, 3))
def _random_program(key, spec, cfg, sizes):
    return mutation.random_program(key, spec, cfg, sizes)


@functools.partial(jax.jit, static_argnums=(1,))
def _choices(keys, cfg):
    return jax.vmap(lambda k: mutation.mutation_choice(k, cfg))(keys)


def _rows(f, i=None):
    f = jax.device_get(f if i is None else jax.tree.map(lambda x: x[i], f))
    return [(int(f.op[j]), *map(int, f.addr[j]), *map(float, f.data[j]))
            for j in range(int(f.size))]


# -- config validation ------------------------------------------------------------------


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="mutate_prob"):
        MutationConfig(setup_ops=[1], mutate_prob=1.5)
    with pytest.raises(ValueError, match="mutation type"):
        MutationConfig(setup_ops=[1], mutation_types=[9])
    with pytest.raises(ValueError, match="setup_ops"):
        MutationConfig(setup_ops=[99])
    with pytest.raises(ValueError, match="frozen"):
        MutationConfig(mutation_types=["ALTER_PARAM"])
    with pytest.raises(ValueError, match="size_min"):
        MutationConfig(setup_ops=[1], setup_size_min=5, setup_size_max=3)
    with pytest.raises(ValueError, match="ProgramSpec"):
        MutationConfig(setup_ops=[64], learn_ops=[1]).check(DEMO_SPEC)
    with pytest.raises(ValueError, match="max_setup_size"):
        MutationConfig(setup_ops=[56], mutation_types=[4], setup_size_max=12).check(DEMO_SPEC)
    # names with the reference's suffixes are accepted
    cfg = MutationConfig(setup_ops=["SCALAR_CONST_SET_OP"],
                         mutation_types=["ALTER_PARAM_MUTATION_TYPE", "identity"])
    assert cfg.mutation_types == (MutationType.ALTER_PARAM, MutationType.IDENTITY)


# -- validity (property test) -----------------------------------------------------------


def _truncated(prog, sizes):
    """``prog`` with each function cut to the given size (rows beyond it NO_OP)."""
    prog = jax.device_get(prog)
    out = {}
    for fn, n in zip(P.FUNCTION_NAMES, sizes, strict=True):
        f = prog.function(fn)
        live = np.arange(f.op.shape[-1]) < n
        out[fn] = P.Function(op=np.where(live, f.op, 0), addr=np.where(live[:, None], f.addr, 0),
                             data=np.where(live[:, None], f.data, 0).astype(f.data.dtype),
                             size=np.asarray(n, np.int32))
    return P.Program(**out)


@pytest.fixture(scope="module")
def wide_full():
    """One random WIDE program at full size (compiled once; examples truncate it)."""
    return _random_program(jax.random.key(0), WIDE_SPEC, WIDE_CFG, (6, 4, 7))


@settings(max_examples=6, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**31 - 1), s=st.integers(0, 6), p=st.integers(0, 4),
       lr=st.integers(0, 7))
def test_every_mutated_program_is_valid(wide_full, seed, s, p, lr):
    key = jax.random.key(seed)
    parent = _truncated(wide_full, (s, p, lr))
    P.validate(WIDE_SPEC, parent)
    children = _mutate_many(jax.random.split(jax.random.fold_in(key, 1), 32), parent,
                            WIDE_CFG, WIDE_SPEC)
    P.validate(WIDE_SPEC, children)
    # predict has only {NO_OP, SCALAR_SUM, VECTOR_INNER_PRODUCT} to introduce
    new_ops = set(np.asarray(children.predict.op).ravel()) - set(
        np.asarray(parent.predict.op).ravel())
    assert new_ops <= {0, 1, 27}
    # setup may shrink to 1 (its min) and grow to 6 (insert while size < 7 - 1)
    sizes = np.asarray(children.setup.size)
    assert ((sizes >= min(s, 1)) & (sizes <= max(s, 6))).all()


def test_frozen_functions_never_change():
    cfg = MutationConfig(setup_ops=(63, 64), mutation_types=(0, 4, 5, 6), mutate_prob=1.0,
                         setup_size_min=6, setup_size_max=7, predict_size_min=3,
                         predict_size_max=4, learn_size_min=9, learn_size_max=10)
    spec = _nonlinear_spec()
    parent = algorithms.initial_program("integration_test_damaged_neural_net", spec, (2, 1, 4))
    kids = _mutate_many(jax.random.split(jax.random.key(3), 200), parent, cfg, spec)
    P.validate(spec, kids)
    for fn in ("predict", "learn"):
        for leaf_k, leaf_p in zip(jax.tree.leaves(kids.function(fn)),
                                  jax.tree.leaves(parent.function(fn)), strict=True):
            assert (np.asarray(leaf_k) == np.asarray(leaf_p)[None]).all()
    # setup starts at size 1; insert works while size < max - 1 = 6; remove needs > 6
    sizes = np.asarray(kids.setup.size)
    assert set(sizes) == {1, 2}  # one mutation: insert (+1), alter/remove/trade (same)


# -- frequencies ------------------------------------------------------------------------


def test_demo_mutation_type_frequencies():
    n = 40000
    do, mtype, fn = _choices(jax.random.split(jax.random.key(0), n), DEMO_CFG)
    do, mtype, fn = map(np.asarray, (do, mtype, fn))
    tol = 4 * np.sqrt(0.25 / n)
    assert abs((~do).mean() - 0.10) < tol  # unmodified clones
    for t in (0, 1, 2):
        assert abs((do & (mtype == t)).mean() - 0.30) < tol
    for j in range(3):  # setup, predict, learn each 1/3
        assert abs((fn == j).mean() - 1 / 3) < tol


def test_nonlinear_mutation_type_frequencies():
    cfg = MutationConfig(setup_ops=(63, 64), mutation_types=(0, 4, 5, 6), mutate_prob=1.0)
    n = 40000
    do, mtype, fn = map(np.asarray, _choices(jax.random.split(jax.random.key(1), n), cfg))
    assert do.all() and (fn == 0).all()
    for t in (0, 4, 5, 6):
        assert abs((mtype == t).mean() - 0.25) < 4 * np.sqrt(0.25 / n)


def test_random_instruction_distributions():
    """RandomizeData ranges and address ranges, unsorted uniform bounds."""
    n = 4000
    spec = P.ProgramSpec(4, 3, 2, 4, setup_ops=(56, 57, 58, 59, 62, 27))

    @jax.jit
    def draw(keys, op):
        return jax.vmap(lambda k: mutation.random_instruction(k, op, spec, jnp.float32))(keys)

    keys = jax.random.split(jax.random.key(7), n)
    addr, data = map(np.asarray, draw(keys, jnp.int32(56)))
    assert (data[:, 0] > -1).all() and (data[:, 0] < 1).all() and (data[:, 1:] == 0).all()
    assert set(addr[:, 2]) == {1, 2, 3} and (addr[:, :2] == 0).all()
    addr, data = map(np.asarray, draw(keys, jnp.int32(58)))  # MATRIX_CONST
    assert (data[:, 1:3] >= 0).all() and (data[:, 1:3] < 1).all()
    assert data[:, 3].min() < -0.9 and data[:, 3].max() > 0.9 and (data[:, 0] == 0).all()
    assert set(addr[:, 2]) == {0, 1}
    _, data = map(np.asarray, draw(keys, jnp.int32(62)))  # SCALAR_GAUSSIAN: mean, stdev
    assert data[:, 1].min() < -0.9 and (data[:, 2] >= 0).all() and (data[:, 2] < 1).all()
    _, data = map(np.asarray, draw(keys, jnp.int32(59)))  # SCALAR_UNIFORM: not sorted
    assert abs((data[:, 1] > data[:, 2]).mean() - 0.5) < 0.05
    addr, _ = map(np.asarray, draw(keys, jnp.int32(27)))  # dot: v in [0,3), s out [1,4)
    assert set(addr[:, 0]) == {0, 1, 2} and set(addr[:, 2]) == {1, 2, 3}


def test_alter_param_scalar_const_rules():
    """AlterParam on a data op: half re-sample out, half AlterData; AlterData flips the
    sign w.p. 0.1, else multiplies by exp(N(0,1))."""
    spec = P.ProgramSpec(4, 3, 1, 4, setup_ops=(56,))
    n = 20000
    x = jnp.float32(0.5)

    @jax.jit
    def alter(keys):
        return jax.vmap(lambda k: mutation.alter_param(
            k, jnp.int32(56), jnp.array([0, 0, 2], jnp.int32),
            jnp.array([x, 0, 0, 0], jnp.float32), spec))(keys)

    addr, data = map(np.asarray, alter(jax.random.split(jax.random.key(11), n)))
    data_changed = data[:, 0] != 0.5
    assert abs(data_changed.mean() - 0.5) < 0.02
    assert (addr[data_changed, 2] == 2).all()
    flipped = data[:, 0] == -0.5
    assert abs(flipped.sum() / data_changed.sum() - 0.1) < 0.015
    scaled = data_changed & ~flipped
    logs = np.log(data[scaled, 0] / 0.5)
    assert abs(logs.mean()) < 0.05 and abs(logs.std() - 1.0) < 0.05


def test_alter_param_on_random_ops_sorts_uniform_bounds_and_keeps_stdev_sign():
    """AlterParam on a uniform/gaussian op: half the time it alters the data (AlterData):
    uniform bounds come out sorted, a gaussian changes exactly one of mean and stdev and the
    stdev is only log-scaled (never sign-flipped)."""
    spec = P.ProgramSpec(4, 3, 1, 4, setup_ops=(60, 63))
    keys = jax.random.split(jax.random.key(5), 2000)
    alter = jax.jit(jax.vmap(lambda k, op, a, d: mutation.alter_param(k, op, a, d, spec),
                             (0, None, None, None)))
    addr = jnp.array([0, 0, 1], jnp.int32)
    unsorted = jnp.array([0, 0.7, -0.3, 0], jnp.float32)
    new_addr, d = map(np.asarray, alter(keys, jnp.int32(60), addr, unsorted))
    data_altered = (d != np.asarray(unsorted)).any(axis=1)
    assert abs(data_altered.mean() - 0.5) < 0.05  # the other half re-draws the out address
    assert (new_addr[data_altered] == [0, 0, 1]).all()
    assert (d[data_altered, 1] <= d[data_altered, 2]).all()  # sorted after AlterData
    assert (d[~data_altered] == np.asarray(unsorted)).all()  # untouched, still unsorted
    gauss = jnp.array([0, -0.2, 0.3, 0], jnp.float32)
    _, d = map(np.asarray, alter(keys, jnp.int32(63), addr, gauss))
    data_altered = (d != np.asarray(gauss)).any(axis=1)
    assert (d[:, 2] > 0).all()  # stdev only log-scaled, never flipped
    assert ((d[data_altered, 1] != np.float32(-0.2))
            ^ (d[data_altered, 2] != np.float32(0.3))).all()  # exactly one changed


# -- insert / remove / trade shifts (through mutate) ---------------------------------------


def _fn_rows(f, i):
    """Live rows of function ``f`` of child ``i`` as tuples, and whether the padding is NO_OP
    with zero addresses and data."""
    f = jax.device_get(jax.tree.map(lambda x: x[i], f))
    n = int(f.size)
    rows = [(int(f.op[j]), *map(int, f.addr[j]), *map(float, f.data[j])) for j in range(n)]
    clean = (np.asarray(f.op[n:]) == 0).all() and (np.asarray(f.addr[n:]) == 0).all() \
        and (np.asarray(f.data[n:]) == 0).all()
    return rows, clean


SHIFT_SPEC = P.ProgramSpec(4, 3, 1, 4, learn_ops=(1, 2, 3), max_learn_size=5)
SHIFT_PARENT_ROWS = [[1, 1, 2, 3], [2, 3, 1, 2], [3, 0, 0, 1]]  # three distinct rows


@pytest.mark.parametrize("mtype", [MutationType.INSERT_INSTRUCTION,
                                   MutationType.REMOVE_INSTRUCTION])
def test_insert_and_remove_shift_rows(mtype):
    """An inserted row lands at a position uniform in [0, size] with the rows after it
    shifted down by one; a removed row is one of [0, size) with the rows after it shifted up;
    the padding stays NO_OP."""
    cfg = MutationConfig(learn_ops=(1, 2, 3), mutation_types=(mtype,), mutate_prob=1.0)
    parent = P.from_lists(SHIFT_SPEC, learn=SHIFT_PARENT_ROWS)
    par, _ = _fn_rows(jax.tree.map(lambda x: x[None], parent.learn), 0)
    n = 400
    kids = _mutate_many(jax.random.split(jax.random.key(int(mtype)), n), parent, cfg,
                        SHIFT_SPEC)
    positions = []
    for i in range(n):
        kid, clean = _fn_rows(kids.learn, i)
        assert clean, i
        if mtype == MutationType.INSERT_INSTRUCTION:
            assert len(kid) == 4
            pos = [p for p in range(4) if kid[:p] + kid[p + 1:] == par]
            assert pos and kid[pos[0]][0] in (1, 2, 3), (kid, par)
        else:
            assert len(kid) == 2
            pos = [p for p in range(3) if par[:p] + par[p + 1:] == kid]
            assert len(pos) == 1, (kid, par)
        positions.append(pos[0])
    counts = np.bincount(positions, minlength=4 if mtype == 4 else 3)
    expected = n / len(counts)
    assert (np.abs(counts - expected) < 5 * np.sqrt(expected)).all(), counts


def test_trade_on_full_function_keeps_size_and_validity():
    cfg = MutationConfig(learn_ops=(1, 2, 3), mutation_types=(6,), mutate_prob=1.0)
    spec = P.ProgramSpec(4, 3, 1, 4, learn_ops=(1, 2, 3), max_learn_size=4)
    parent = P.from_lists(spec, learn=[[1, 1, 2, 3], [2, 3, 1, 2], [3, 0, 0, 1], [1, 2, 2, 2]])
    kids = _mutate_many(jax.random.split(jax.random.key(2), 300), parent, cfg, spec)
    P.validate(spec, kids)
    assert (np.asarray(kids.learn.size) == 4).all()
    par = _rows(parent.learn)
    for i in range(20):  # child = parent with one row inserted and one removed
        kid = _rows(kids.learn, i)
        assert sum(r in par for r in kid) >= 3


def test_insert_remove_respect_bounds():
    cfg = MutationConfig(learn_ops=(1,), mutation_types=(4, 5), mutate_prob=1.0,
                         learn_size_min=2, learn_size_max=5)
    spec = P.ProgramSpec(4, 3, 1, 4, learn_ops=(1,), max_learn_size=6)
    for size, allowed in ((2, {2, 3}), (4, {3, 4}), (3, {2, 4})):
        parent = P.from_lists(spec, learn=[[1, 1, 1, 1]] * size)
        kids = _mutate_many(jax.random.split(jax.random.key(size), 200), parent, cfg, spec)
        assert set(np.asarray(kids.learn.size)) == allowed


@pytest.fixture(scope="module")
def demo_population():
    return algorithms.initial_population("random", DEMO_SPEC, 50, (10, 2, 8),
                                         jax.random.key(0), DEMO_CFG)


def test_mutate_is_deterministic_and_does_not_recompile(wide_full, compile_count):
    # same shapes as the property test above: reuses its compiled function
    prog = _truncated(wide_full, (3, 2, 4))
    keys = jax.random.split(jax.random.key(1), 32)
    other = jax.random.split(jax.random.key(2), 32)
    a = _mutate_many(keys, prog, WIDE_CFG, WIDE_SPEC)
    with compile_count() as compiles:
        b = _mutate_many(keys, prog, WIDE_CFG, WIDE_SPEC)
        c = _mutate_many(other, prog, WIDE_CFG, WIDE_SPEC)
    assert compiles.count == 0
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(x, y)
    # different keys give different children
    assert any((np.asarray(x) != np.asarray(y)).any()
               for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(c), strict=True))


def test_children_are_those_of_saved_experiments():
    """Same key, same children: these figures are the children's before mutations drew
    their random numbers level by level (evojax_zero.engine.keytree); a change here means saved
    experiments no longer reproduce (or JAX changed its random numbers)."""
    expected = {"demo": ("b90b20315f560a25", 254.86871430836618, -199.1756827607751),
                "wide": ("0c680012f9578024", 48.969897747039795, 173.331140935421)}
    for name, spec, cfg, sizes in (("demo", DEMO_SPEC, DEMO_CFG, (10, 2, 8)),
                                   ("wide", WIDE_SPEC, WIDE_CFG, (3, 2, 4))):
        parent = _random_program(jax.random.key(0), spec, cfg, sizes)
        kids = _mutate_many(jax.random.split(jax.random.key(1), 64), parent, cfg, spec)
        h = hashlib.sha256()
        for fn in P.FUNCTION_NAMES:
            f = kids.function(fn)
            for x in (f.op, f.addr, f.size):
                h.update(np.asarray(x, np.int32).tobytes())
        data = np.concatenate([np.asarray(kids.function(fn).data, np.float64).reshape(-1)
                               for fn in P.FUNCTION_NAMES])
        digest, abs_sum, weighted = expected[name]
        assert h.hexdigest()[:16] == digest, name
        np.testing.assert_allclose(np.abs(data).sum(), abs_sum, rtol=1e-6)
        np.testing.assert_allclose((data * (np.arange(data.size) % 7 + 1)).sum(), weighted,
                                   rtol=1e-6)


# -- initial programs -------------------------------------------------------------------


def _nonlinear_spec():
    nn = algorithms.ops_used(algorithms.neural_net_lists())
    return P.ProgramSpec(5, 9, 2, 4, setup_ops=nn["setup"], predict_ops=nn["predict"],
                         learn_ops=nn["learn"], max_setup_size=6, max_predict_size=5,
                         max_learn_size=11)


def test_hand_written_algorithms_text():
    spec = P.ProgramSpec(4, 3, 1, 4, setup_ops=(56,), predict_ops=(27,),
                         learn_ops=(2, 3, 18, 23), max_setup_size=5, max_predict_size=1,
                         max_learn_size=4)
    lin = algorithms.initial_program("linear", spec, (5, 1, 4))
    assert P.to_text(lin) == (
        "def Setup():\n  s2 = 0.01\n" + "  NoOp()\n" * 4
        + "def Predict():\n  s1 = dot(v1, v0)\n"
        "def Learn():\n  s3 = s0 - s1\n  s3 = s2 * s3\n  v2 = s3 * v0\n  v1 = v1 + v2\n")
    spec = _nonlinear_spec()
    dam = algorithms.initial_program("INTEGRATION_TEST_DAMAGED_NEURAL_NET_ALGORITHM", spec,
                                     (2, 1, 4))
    assert int(dam.setup.size) == 1 and int(dam.setup.op[0]) == Op.SCALAR_CONST_SET
    nn = algorithms.initial_program("neural_net", spec, (2, 1, 4))
    assert [int(o) for o in nn.setup.op[:3]] == [63, 64, 56]
    assert int(nn.predict.size) == 5 and int(nn.learn.size) == 11
    noop = algorithms.initial_population("no_op", spec, 3, (1, 1, 1))
    assert noop.batch_shape == (3,) and (np.asarray(noop.setup.size) == 1).all()
    with pytest.raises(ValueError, match="initial algorithm"):
        algorithms.as_algorithm("perceptron")


def test_random_population_uses_allowed_ops_and_sizes(demo_population):
    pop = demo_population
    P.validate(DEMO_SPEC, pop)
    assert set(np.asarray(pop.setup.op).ravel()) == set(DEMO_OPS)
    assert (np.asarray(pop.learn.size) == 8).all()
    # the cached builder is reused for the same spec/config/sizes
    again = algorithms.initial_population("random", DEMO_SPEC, 50, (10, 2, 8),
                                          jax.random.key(0), DEMO_CFG)
    np.testing.assert_array_equal(np.asarray(again.setup.op), np.asarray(pop.setup.op))


def _evaluate(spec, prog, tasks):
    from evojax_zero.evaluate.evaluator import EvalConfig, Evaluator

    ev = Evaluator(spec, EvalConfig())
    return np.asarray(ev.per_task(P.stack([prog]), tasks, jax.random.key(0)))[0]


def test_linear_algorithm_solves_linear_tasks():
    from evojax_zero.program import tasks

    spec = P.ProgramSpec(4, 3, 1, 4, setup_ops=(56,), predict_ops=(27,),
                         learn_ops=(2, 3, 18, 23), max_setup_size=5, max_predict_size=1,
                         max_learn_size=4)
    prog = algorithms.initial_program("linear", spec, (5, 1, 4))
    fit = _evaluate(spec, prog, tasks.linear_regression(3, 4, 2000, 100))
    assert (fit > 0.999).all(), fit


def test_neural_net_learns_teacher_task_and_damaged_net_does_not():
    from evojax_zero.program import tasks

    spec = _nonlinear_spec()
    t = tasks.teacher_regression(1, 4, 1000, 100)
    nn = _evaluate(spec, algorithms.initial_program("neural_net", spec, (2, 1, 4)), t)[0]
    dmg = _evaluate(spec, algorithms.initial_program(
        "integration_test_damaged_neural_net", spec, (2, 1, 4)), t)[0]
    # predicting the mean label gives ~1 - (2/pi) atan(std(y))
    y = np.asarray(t.valid_y[0])
    trivial = 1 - 2 / np.pi * np.arctan(np.sqrt(np.mean((y - y.mean()) ** 2)))
    assert nn > trivial + 0.05 and nn > dmg + 0.05, (nn, dmg, trivial)
