"""``nb201.space()`` is the table's space and, unchanged, a supernet's (issue 9, decoupling)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import nas
from nas import weight_sharing as ws
from nas.benchmarks import ground_truth as gt
from nas.benchmarks import nb201

# Logits of the committed table's first and eighth cells, materialized by nb201.space(net,
# seed=5) *before* the space was made shareable (commit 174c68f), on
# x = normal(key(3), (4, 7, 7, 1)): first image's 10 logits (5 decimals) and the sum.
BEFORE = {
    0: ([-0.20977, 0.72868, -0.18598, -0.17132, 0.25001, 0.43697, -0.31625, -0.06847,
         -0.23143, 0.27599], 7.213357),
    7: ([-1.07507, -0.48270, 0.18968, -0.06549, -0.05855, -0.20092, 0.22477, -0.38610,
         -0.08731, -0.00528], -3.766499),
}


def _dna(ints):
    return nas.DNA(jnp.asarray(ints, jnp.int32), jnp.zeros((0,), jnp.float32))


@pytest.fixture(scope="module")
def table():
    return gt.load_table()


def test_table_cells_materialize_the_same_network_as_before(table):
    net = nb201.NetConfig(**table.meta["net"])
    space = nb201.space(net, seed=5)
    assert space.names == tuple(nb201.edge_name(e) for e in range(len(nb201.EDGES)))
    assert [d.labels for d in space.int_decisions] == [
        ("Zero", "Identity", "Conv1x1", "Conv3x3", "AvgPool3x3")] * 6
    x = jax.random.normal(jax.random.key(3), (4, 7, 7, 1))
    for row, (first, total) in BEFORE.items():
        ints = table.dnas[row]
        model = space.materialize(_dna(ints))
        assert isinstance(model, nb201.NB201Net)
        assert model.genotype == nb201.genotype_of(ints)
        n = sum(np.size(v) for v in jax.tree.leaves(nnx.state(model, nnx.Param)))
        assert n == table.params[row] == gt.param_count(ints, net)
        out = np.asarray(model(x))
        np.testing.assert_allclose(out[0], first, atol=2e-5)
        np.testing.assert_allclose(out.sum(), total, rtol=1e-5, atol=1e-4)
        # the plain constructor draws the same weights in the same order
        direct = nb201.NB201Net(nb201.genotype_of(ints), rngs=nnx.Rngs(5), **net.kwargs())
        np.testing.assert_array_equal(direct(x), out)
        np.testing.assert_array_equal(space.encode(model).ints, ints)


def test_supernet_of_the_benchmark_space_derives_a_cell_the_table_accepts(table):
    space = nb201.space(nb201.NetConfig(channels=2, num_stages=2), seed=0)
    supernet = ws.Supernet(space, seed=0)
    assert supernet.alpha[...].shape == (6, 5)
    assert all(supernet.op_slot)  # every edge mixes parameter-free and parametric ops
    np.testing.assert_array_equal(np.asarray(supernet.is_none)[:, 0], True)
    np.testing.assert_array_equal(np.asarray(supernet.param_free)[0],
                                  [True, True, False, False, True])
    # every edge of both cells is a mixed op reading its edge's decision
    cells = [b for b in supernet.net.blocks if isinstance(b, nb201.Cell)]
    assert len(cells) == 2
    assert all(isinstance(op, ws.MixedOp) for c in cells for op in c.edges)
    # alpha that favours none everywhere and conv3x3 on edge 2<-1: derive skips none
    alpha = np.zeros((6, 5), np.float32)
    alpha[:, 0] = 5.0
    alpha[:, 4] = 1.0
    alpha[2, 3] = 2.0
    supernet.alpha[...] = jnp.asarray(alpha)
    dna = ws.derive(supernet)
    np.testing.assert_array_equal(dna.ints, [4, 4, 3, 4, 4, 4])
    assert gt.cell_index(dna.ints) == gt.cell_index([4, 4, 3, 4, 4, 4])
    assert nb201.genotype_of(dna.ints) == ("avgpool3x3",) * 2 + ("conv3x3",) + ("avgpool3x3",) * 3
    with pytest.raises(ValueError, match="not in the table"):
        table.accuracy(np.asarray(dna.ints))  # outside the 100 cells: train_like's job
    assert isinstance(space.materialize(dna), nb201.NB201Net)
    x = jax.random.normal(jax.random.key(0), (3, 6, 6, 1))
    sel = ws.from_dna(space, dna)
    assert supernet(x, selection=sel).shape == (3, 10)


@pytest.mark.slow  # compiles one step of each of the four algorithms (about 40 CPU-s)
def test_every_weight_sharing_algorithm_searches_the_benchmark_space_unchanged():
    space = nb201.space(nb201.NetConfig(channels=2, num_stages=1), seed=0)
    rng = np.random.default_rng(0)
    batch = (jnp.asarray(rng.normal(size=(8, 5, 5, 1)), jnp.float32),
             jnp.asarray(rng.integers(0, 10, 8), jnp.int32))
    algos = [ws.Darts(ws.Supernet(space), num_steps=2), ws.Gdas(ws.Supernet(space), num_steps=2),
             ws.Enas(ws.Supernet(space), num_steps=2),
             ws.RandomSearchWS(ws.Supernet(space), num_steps=2)]
    for algo in algos:
        state, _ = ws.run(algo, lambda i: (batch, batch), 2, key=jax.random.key(0))
        dna = algo.derive(state) if not isinstance(algo, ws.RandomSearchWS) else (
            jax.tree.map(lambda v: v[0], algo.select(state, batch, jax.random.key(1), 2)[0]))
        ints = [int(v) for v in np.asarray(dna.ints)]
        assert len(nb201.genotype_of(ints)) == 6
        assert isinstance(space.materialize(space.validate(dna)), nb201.NB201Net)
