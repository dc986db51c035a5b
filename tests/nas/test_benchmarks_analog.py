"""The analog-nasbench table: the inferred key encoding, and searching it as an objective."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nas
from nas.benchmarks import analog_nasbench as anb
from nas.benchmarks import nb201

# the package's __init__ needs pkg_resources: find it without importing it
if not anb.available():
    pytest.skip("analog-nasbench is not installed (pip install analog-nasbench)",
                allow_module_level=True)


@pytest.fixture(scope="module")
def table():
    return anb.load()


def _acc(table, ops):
    return float(table.lookup(np.array([nb201.OPS.index(o) for o in ops])))


def test_key_conversion_is_a_bijection():
    keys = list(itertools.product(range(5), repeat=6))
    dnas = {anb.from_analog(k) for k in keys}
    assert len(dnas) == 15625
    for k in keys[::97]:
        assert anb.to_analog(anb.from_analog(k)) == k
    # NB-201's best CIFAR-10 cell in the table's key: op codes skip 0, none 1, conv3x3 2,
    # conv1x1 3, pool 4; positions (0->1), (0->2), (0->3), (1->2), (1->3), (2->3)
    assert anb.to_analog([3, 3, 3, 1, 3, 3]) == (2, 2, 0, 2, 2, 2)
    assert anb.to_analog([0, 1, 2, 3, 4, 0]) == (1, 0, 2, 3, 4, 1)


def test_inferred_none_code_and_edge_order_explain_every_chance_cell(table):
    """Exactly the cells whose input cannot reach the output are at chance (10%)."""
    acc = table.metrics["baseline_accuracy"]
    cells = np.array(list(itertools.product(range(5), repeat=6)))  # cell_index order
    dead = np.array([not nb201.reaches_output(c) for c in cells])
    assert dead.sum() == 341
    np.testing.assert_array_equal(acc <= 10.0 + 1e-6, dead)


def test_inferred_op_codes_agree_with_known_facts(table):
    # skip: every cell that computes the identity scores alike (one or two skip edges)
    identity = [_acc(table, c) for c in (
        ("none", "none", "none", "skip", "none", "none"),
        ("skip", "none", "none", "none", "skip", "none"),
        ("none", "skip", "none", "none", "none", "skip"),
        ("skip", "none", "skip", "none", "none", "skip"))]
    assert max(identity) - min(identity) < 0.5
    # pooling is not the identity: pooling twice differs from pooling once
    once = _acc(table, ("none", "none", "none", "avgpool3x3", "none", "none"))
    twice = _acc(table, ("avgpool3x3", "none", "none", "none", "avgpool3x3", "none"))
    assert once - twice > 3.0
    # on every edge: conv3x3 > conv1x1 > skip > pool > none (chance)
    uniform = [_acc(table, (op,) * 6) for op in
               ("conv3x3", "conv1x1", "skip", "avgpool3x3", "none")]
    assert uniform == sorted(uniform, reverse=True) and uniform[-1] == 10.0
    # the table's best cell is all convolutions around a skip, near NB-201's 94.37%
    best, value = table.best()
    assert 93.5 < value < 94.6
    assert nb201.genotype_of(best).count("conv3x3") >= 4
    assert nb201.genotype_of(best)[3] == "skip"  # the (3 <- 0) shortcut, as NB-201's best


def test_objective_is_the_table_in_our_dna(table):
    obj = table.objective()
    space = nb201.space()
    dna = space.sample_batch(jax.random.key(0), 8)
    raw = anb.raw_table()
    expected = [raw[anb.to_analog(d)].baseline_accuracy / 100 for d in np.asarray(dna.ints)]
    np.testing.assert_allclose(jax.jit(jax.vmap(obj))(dna), expected, rtol=1e-6)
    with pytest.raises(ValueError, match="metric must be one of"):
        table.objective("accuracy")
    with pytest.raises(ValueError, match="6 codes"):
        anb.from_analog((0, 0, 0, 0, 0, 5))


@pytest.mark.slow
def test_objective_drives_no_sharing_algorithms(table):
    obj = table.objective()
    space = nb201.space()
    res = nas.run_vectorized(nas.RegularizedEvolution(space, population_size=10,
                                                      tournament_size=3, batch_size=10),
                             obj, jax.random.key(1), num_steps=30)
    rs = nas.run_vectorized(nas.RandomSearch(space, batch_size=10), obj, jax.random.key(1),
                            num_steps=30)
    for r in (res, rs):
        assert float(np.max(r.rewards)) > 0.92  # 300 queries find a top cell
    assert jnp.isfinite(obj(space.sample(jax.random.key(3))))
