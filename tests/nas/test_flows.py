"""Nested (hyper-parameter x architecture) search and cost-aware objectives."""

import itertools

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from nas import RandomSearch, RegularizedEvolution, Space, deferred, floatv, oneof, search
from nas.flows import cost_aware, latency, nested_search, param_count


def test_cost_aware_hand_worked():
    # cost at target: reward = accuracy; twice the target with w=-0.07: 0.8 * 2**-0.07
    assert float(cost_aware(0.8, 100, 100)) == pytest.approx(0.8)
    assert float(cost_aware(0.8, 200, 100)) == pytest.approx(0.8 * 2 ** -0.07, rel=1e-6)
    assert float(cost_aware(0.8, 50, 100, alpha=0.0, beta=-1.0)) == pytest.approx(0.8)
    assert float(cost_aware(0.8, 400, 100, alpha=0.0, beta=-1.0)) == pytest.approx(0.2)
    with pytest.raises(ValueError, match="target"):
        cost_aware(0.8, 1, 0)


def toy_objective(hp, arch):
    # best: lr = 0.01 with depth 3 and width 16; known by exhaustive evaluation below
    penalty = abs(np.log10(hp["lr"]) + 2)
    return arch["depth"] * (1.0 if arch["width"] == 16 else 0.5) - penalty


def test_nested_search_matches_exhaustive_optimum():
    hp_space = Space({"lr": oneof([0.1, 0.01, 0.001])})
    arch_space = Space({"depth": oneof([1, 2, 3]), "width": oneof([8, 16, 32])})
    exhaustive = max(
        (toy_objective({"lr": lr}, {"depth": d, "width": w}), lr, d, w)
        for lr, d, w in itertools.product([0.1, 0.01, 0.001], [1, 2, 3], [8, 16, 32]))
    res = nested_search(toy_objective, RandomSearch(hp_space),
                        lambda hp: RegularizedEvolution(arch_space, 4, 2),
                        outer_trials=12, inner_trials=30, seed=0, progress=False)
    assert res.reward == pytest.approx(exhaustive[0])
    assert (res.hparams["lr"], res.architecture["depth"], res.architecture["width"]) == (
        exhaustive[1:])
    assert len(res.inner) == 12


def test_nested_search_inner_space_depends_on_hparams():
    hp_space = Space({"budget": oneof([1, 2])})
    arch_spaces = {b: Space({"widths": [oneof([1, 2, 3]) for _ in range(b)]}) for b in (1, 2)}
    res = nested_search(
        lambda hp, arch: float(sum(arch["widths"])), RandomSearch(hp_space),
        lambda hp: RandomSearch(arch_spaces[hp["budget"]]),
        outer_trials=6, inner_trials=20, seed=1, progress=False)
    assert res.hparams["budget"] == 2 and res.reward == 6.0


class Net(nnx.Module):
    def __init__(self, width, *, rngs):
        self.l1 = nnx.Linear(8, width, rngs=rngs)
        self.l2 = nnx.Linear(width, 2, rngs=rngs)

    def __call__(self, x):
        return self.l2(nnx.relu(self.l1(x)))


def test_param_count_and_latency():
    net = Net(4, rngs=nnx.Rngs(0))
    assert param_count(net) == 8 * 4 + 4 + 4 * 2 + 2
    assert 0 < latency(net, jnp.ones((2, 8)), repeats=3) < 1.0


def test_cost_aware_search_prefers_the_smaller_of_equally_accurate_models():
    space = Space(deferred(Net)(width=oneof([4, 64, 256]), rngs=nnx.Rngs(0)))
    accuracy = {4: 0.90, 64: 0.91, 256: 0.91}  # the big models are barely better

    def plain(model):
        return accuracy[model.l1.out_features]

    def with_cost(model):
        return float(cost_aware(plain(model), param_count(model), target=200.0,
                                alpha=0.0, beta=-0.5))

    best_plain = search(plain, RandomSearch(space), 12, seed=0, progress=False).best
    best_cost = search(with_cost, RandomSearch(space), 12, seed=0, progress=False).best
    assert best_plain.value.l1.out_features in (64, 256)
    assert best_cost.value.l1.out_features == 4


def test_floats_in_hparam_space_for_nested_search():
    inner = RandomSearch(Space({"a": oneof([0, 1])}))
    res = nested_search(lambda hp, arch: -abs(hp["x"] - 0.5) + arch["a"],
                        RandomSearch(Space({"x": floatv(0.0, 1.0)})), lambda hp: inner,
                        outer_trials=20, inner_trials=4, seed=0, progress=False)
    assert res.architecture["a"] == 1 and abs(res.hparams["x"] - 0.5) < 0.1
