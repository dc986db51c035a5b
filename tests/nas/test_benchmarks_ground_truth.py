"""Stand-alone training through the switch model, the table, and the rank helpers."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import nas
from nas.benchmarks import data as bdata
from nas.benchmarks import ground_truth as gt
from nas.benchmarks import nb201

TINY = nb201.NetConfig(channels=4, cells_per_stage=1, num_stages=2)
TRAIN = gt.TrainConfig(epochs=3, batch_size=32, eval_batch_size=120)


@pytest.fixture(scope="module")
def digits():
    return bdata.digits(train_size=256, valid_size=200, test_size=200)


def _reference_training(ops, seed, d, net, train):
    """Plain NB201Net of the genotype, initial weights copied from the switch model's draw
    for this seed, the same optimizer and batches, trained by an ordinary loop."""
    k_init, k_data = jax.random.split(jax.random.key(seed))
    switch = gt.SwitchNet(net, rngs=nnx.Rngs(k_init))
    model = nb201.NB201Net(nb201.genotype_of(ops), rngs=nnx.Rngs(0), **net.kwargs())
    gt.copy_into_standalone(switch, ops, model)
    graphdef, params = nnx.split(model)
    steps = len(d.y_train) // train.batch_size
    opt = gt.optimizer(train, steps * train.epochs)
    state = opt.init(params)

    @jax.jit
    def step(params, state, xb, yb):
        def loss_fn(p):
            logits = nnx.merge(graphdef, p)(xb)
            return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()
        loss, g = jax.value_and_grad(loss_fn)(params)
        upd, state = opt.update(g, state, params)
        return optax.apply_updates(params, upd), state, loss

    losses = []
    for k in jax.random.split(k_data, train.epochs):
        perm = np.asarray(jax.random.permutation(k, len(d.y_train)))
        losses = []
        for b in range(steps):
            idx = perm[b * train.batch_size:(b + 1) * train.batch_size]
            params, state, loss = step(params, state, d.x_train[idx], d.y_train[idx])
            losses.append(float(loss))
    model = nnx.merge(graphdef, params)

    def acc(x, y):
        eb = train.eval_batch_size
        hits = sum(int(np.sum(np.argmax(model(x[i:i + eb]), -1) == y[i:i + eb]))
                   for i in range(0, len(y), eb))
        return hits / len(y)

    return np.mean(losses), acc(d.x_valid, d.y_valid), acc(d.x_test, d.y_test)


@pytest.mark.slow
def test_switch_training_is_standalone_training_and_compiles_once(digits):
    dnas = np.array([[3, 1, 2, 1, 0, 3], [0, 0, 0, 0, 0, 0]], np.int32)
    out = gt.train_architectures(dnas, [0, 1], digits, TINY, TRAIN)
    assert out["valid_acc"].shape == (2, 2)
    for s, seed in enumerate([0, 1]):
        loss, va, te = _reference_training(dnas[0], seed, digits, TINY, TRAIN)
        np.testing.assert_allclose(out["train_loss"][0, s], loss, rtol=2e-3)
        assert abs(out["valid_acc"][0, s] - va) <= 0.011
        assert abs(out["test_acc"][0, s] - te) <= 0.011
    assert out["valid_acc"][0].min() > 0.3  # the conv cell learns digits (24 SGD steps)
    # the all-none cell outputs zeros: constant logits, one class, chance accuracy
    np.testing.assert_allclose(out["test_acc"][1], 0.1, atol=0.03)
    # new architectures, same shapes: no recompilation; same seed, same result
    again = gt.train_architectures(dnas[::-1], [0, 1], digits, TINY, TRAIN)
    assert gt.population_fn(TINY, TRAIN, None)._cache_size() == 1
    np.testing.assert_array_equal(again["valid_acc"][::-1], out["valid_acc"])
    single = gt.train_standalone(dnas[0], digits, seeds=[0, 1], net=TINY, train=TRAIN)
    np.testing.assert_allclose(single["valid_acc"], out["valid_acc"][0], atol=0.011)


def test_bad_input_is_rejected_at_the_boundary(digits):
    with pytest.raises(ValueError, match=r"op indices in \[0, 5\)"):
        gt.train_architectures(np.array([[0, 0, 0, 0, 0, 5]]), [0], digits, TINY, TRAIN)
    with pytest.raises(ValueError, match=r"dnas must be int\[A, 6\]"):
        gt.train_architectures(np.zeros((2, 5), np.int32), [0], digits, TINY, TRAIN)
    with pytest.raises(ValueError, match="in_channels"):
        gt.train_architectures(np.zeros((1, 6), np.int32), [0], digits,
                               nb201.NetConfig(in_channels=3), TRAIN)
    with pytest.raises(ValueError, match="TrainConfig.epochs"):
        gt.TrainConfig(epochs=0)


def _toy_table():
    dnas = np.array([[3, 3, 3, 1, 3, 3], [0, 0, 0, 0, 0, 0], [1, 1, 1, 1, 1, 1]], np.int32)
    valid = np.array([[0.9, 0.8], [0.1, 0.1], [0.5, 0.7]])
    test = valid - 0.05
    return gt.Table(dnas, valid, test, np.array([10, 5, 5]), {"note": "toy"})


def test_table_lookup_rank_objective_and_json_roundtrip(tmp_path):
    table = _toy_table()
    assert table.accuracy([3, 3, 3, 1, 3, 3], "valid_acc") == pytest.approx(0.85)
    assert table.accuracy(np.array([1, 1, 1, 1, 1, 1]), "test_acc") == pytest.approx(0.55)
    assert table.rank(0.6, "valid_acc") == 2 and table.rank(0.95, "valid_acc") == 1
    with pytest.raises(ValueError, match="not in the table"):
        table.accuracy([2, 2, 2, 2, 2, 2])
    obj = jax.jit(jax.vmap(table.objective("valid_acc")))
    dna = nas.DNA(jnp.array([[1] * 6, [3, 3, 3, 1, 3, 3], [2] * 6], jnp.int32),
                  jnp.zeros((3, 0), jnp.float32))
    got = np.asarray(obj(dna))
    np.testing.assert_allclose(got[:2], [0.6, 0.85], rtol=1e-6)
    assert np.isnan(got[2])
    path = tmp_path / "t.json"
    table.save(str(path))
    back = gt.load_table(str(path))
    np.testing.assert_array_equal(back.dnas, table.dnas)
    np.testing.assert_allclose(back.valid_acc, table.valid_acc)
    assert json.loads(path.read_text())["architectures"][0]["arch"].startswith("|conv3x3~0|")


def test_kendall_tau_and_spearman_by_hand():
    # pairs (1,2) (1,3) (1,4) (2,3) (2,4) (3,4): one discordant (2,3) -> (5 - 1) / 6
    assert gt.kendall_tau([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(4 / 6)
    assert gt.kendall_tau([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert gt.spearman_rho([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(1 - 6 * 2 / (4 * 15))
    with pytest.raises(ValueError, match="equal length"):
        gt.kendall_tau([1, 2], [1, 2, 3])


def test_sample_cells_distinct_with_landmarks_first():
    cells = gt.sample_cells(50, seed=3, include=[(3, 3, 3, 1, 3, 3)])
    assert cells.shape == (50, 6) and tuple(cells[0]) == (3, 3, 3, 1, 3, 3)
    assert len({tuple(c) for c in cells}) == 50
    np.testing.assert_array_equal(gt.sample_cells(50, seed=3, include=[(3, 3, 3, 1, 3, 3)]),
                                  cells)
    assert gt.cell_index(np.array([0, 0, 0, 0, 0, 1])) == 1
    assert gt.cell_index(np.array([4] * 6)) == gt.NUM_CELLS - 1


@pytest.mark.skipif(not os.path.exists(os.path.join(gt.TABLES_DIR, gt.DEFAULT_TABLE)),
                    reason="committed table not generated yet")
def test_committed_table_is_sane():
    table = gt.load_table()
    assert table.num_architectures >= 100 and table.valid_acc.shape[1] >= 2
    assert table.meta["complete"] and table.meta["dataset"] == "fashion_mnist"
    assert table.accuracy([0] * 6) == pytest.approx(0.1, abs=0.02)  # all-none: chance
    assert table.mean("test_acc").max() > 0.7
    best = table.dnas[np.argmax(table.mean("valid_acc"))]
    assert nb201.reaches_output(best)
    assert len({tuple(d) for d in table.dnas}) == table.num_architectures
