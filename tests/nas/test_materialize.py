"""Reproducible materialize within one process, and encode of hand-built models."""

import zlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import nas
from nas import DNA, Space, deferred, floatv, intv, oneof


class MLP(nnx.Module):
    def __init__(self, widths, act, *, rngs):
        dims = [4, *widths]
        pairs = zip(dims[:-1], dims[1:], strict=True)
        self.layers = nnx.List([nnx.Linear(a, b, rngs=rngs) for a, b in pairs])
        self.act = act
        self.head = nnx.Linear(dims[-1], 2, rngs=rngs)


def mlp_space(rngs=None):
    return Space(deferred(MLP)(widths=oneof([[8], [16, 16], [intv(4, 6)]]),
                               act=oneof([nnx.relu, nnx.tanh]), rngs=rngs or nnx.Rngs(0)))


def weights(model) -> list[np.ndarray]:
    return [np.asarray(x) for x in jax.tree.leaves(nnx.state(model, nnx.Param))]


def same(a, b) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(weights(a), weights(b), strict=True))


DNA1 = DNA(jnp.array([1, 0, 1], jnp.int32), jnp.zeros((0,), jnp.float32))


def test_same_dna_same_weights_whatever_ran_before():
    rngs = nnx.Rngs(0)
    sp = mlp_space(rngs)
    first = sp.materialize(DNA1)
    # independent reference: the model built directly from a fresh nnx.Rngs(0)
    assert same(first, MLP([16, 16], nnx.tanh, rngs=nnx.Rngs(0)))
    for s in range(3):
        sp.materialize(sp.sample(jax.random.key(s)))
    rngs.params()  # the user draws from the template's Rngs meanwhile
    nnx.Linear(3, 3, rngs=rngs)
    assert same(sp.materialize(DNA1), first)


def test_seed_reseeds_every_rngs_of_the_template():
    sp = mlp_space()
    assert same(sp.materialize(DNA1, seed=0), sp.materialize(DNA1))  # template is Rngs(0)
    a, b = sp.materialize(DNA1, seed=1), sp.materialize(DNA1, seed=1)
    assert same(a, b) and same(a, MLP([16, 16], nnx.tanh, rngs=nnx.Rngs(1)))
    assert not same(a, sp.materialize(DNA1))
    multi = Space({"r": nnx.Rngs(0, dropout=5), "w": oneof([1, 2])})
    r = multi.materialize(multi.sample(jax.random.key(0)), seed=3)["r"]
    assert np.array_equal(jax.random.key_data(r.dropout.key[...]), jax.random.key_data(
        jax.random.fold_in(jax.random.key(3), zlib.crc32(b"dropout"))))
    for bad in (-1, 1.5, "0", True):
        with pytest.raises(ValueError, match="materialize.seed must be None or an int >= 0"):
            sp.materialize(DNA1, seed=bad)


def test_two_searches_with_one_seed_agree_within_one_process():
    sp = mlp_space()

    def run():
        algo = nas.RegularizedEvolution(sp, population_size=4, tournament_size=2)
        models = []

        def objective(model):
            models.append(model)
            return float(sum(np.abs(w).sum() for w in weights(model)))

        tuner = nas.search(objective, algo, num_trials=8, seed=0, progress=False)
        return tuner, models

    (t1, m1), (t2, m2) = run(), run()
    assert [t.reward for t in t1.history] == [t.reward for t in t2.history]
    assert all(same(a, b) for a, b in zip(m1, m2, strict=True))


def test_encode_of_a_hand_built_model():
    sp = mlp_space()
    np.testing.assert_array_equal(sp.encode(MLP([16, 16], nnx.tanh, rngs=nnx.Rngs(7))).ints,
                                  DNA1.ints)
    np.testing.assert_array_equal(sp.encode(MLP([5], nnx.relu, rngs=nnx.Rngs(1))).ints,
                                  [2, 1, 0])
    with pytest.raises(ValueError, match="cannot be produced"):
        sp.encode(MLP([7], nnx.relu, rngs=nnx.Rngs(1)))  # no such width
    with pytest.raises(ValueError, match="cannot be produced"):
        sp.encode(MLP([8], nnx.gelu, rngs=nnx.Rngs(1)))  # no such activation


class Hidden(nnx.Module):
    """Takes an activation but does not keep it: its structure cannot show it."""

    def __init__(self, width, act, *, rngs):
        del act
        self.lin = nnx.Linear(2, width, rngs=rngs)


def test_encode_of_a_hand_built_model_reports_what_it_cannot_tell():
    sp = Space(deferred(Hidden)(oneof([3, 4]), act=oneof(["relu", "tanh"]), rngs=nnx.Rngs(0)))
    with pytest.raises(ValueError, match=r"matches 2 architectures .* differ only in \['act'\]"):
        sp.encode(Hidden(3, "relu", rngs=nnx.Rngs(0)))
    # with the arguments it is exact
    np.testing.assert_array_equal(
        sp.encode(deferred(Hidden)(3, act="tanh", rngs=nnx.Rngs(0))).ints, [0, 1])
    lr_space = Space(deferred(Hidden)(oneof([3, 4]), act=floatv(0.1, 1.0), rngs=nnx.Rngs(0)))
    with pytest.raises(ValueError, match="cannot encode a hand-built Hidden.*deferred"):
        lr_space.encode(Hidden(3, 0.5, rngs=nnx.Rngs(0)))
