"""The shared regularized-evolution engine: tournaments, aging, NaN, compile-once."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from evojax_zero.engine.regularized import EvolutionEngine


def _add_one(key, genome):
    return {"x": genome["x"] + 1}


def test_tournament_takes_the_first_best_of_draws_with_replacement():
    eng = EvolutionEngine(population_size=6, tournament_size=3, batch_size=4)
    fitness = jnp.asarray([0.1, 0.9, 0.9, 0.2, 0.5, 0.0])
    key = jax.random.key(3)
    parents = np.asarray(eng.select_parents(key, fitness))
    draws = np.asarray(jax.random.randint(key, (4, 3), 0, 6))  # the same draws, by hand
    expected = [row[int(np.argmax(np.asarray(fitness)[row]))] for row in draws]
    np.testing.assert_array_equal(parents, expected)


def test_ask_keys_and_parents_are_those_of_jax_random():
    """ask draws k_sel, k_mut = split(key); parents from randint(k_sel, (B, T), 0, P);
    child i mutated with split(k_mut, B)[i]: the numbers saved experiments were run with."""
    eng = EvolutionEngine(population_size=9, tournament_size=3, batch_size=4)
    state = eng.init({"x": jnp.arange(9)}, jnp.arange(9.0) % 4)

    def data(k):
        return k if k.dtype == jnp.uint32 else jax.random.key_data(k)

    ask = jax.jit(lambda k: eng.ask(k, state, lambda kk, g: {"x": g["x"], "key": data(kk)}))
    for key in (jax.random.key(7), jax.random.PRNGKey(7)):
        children, parents = ask(key)
        k_sel, k_mut = jax.random.split(key)
        np.testing.assert_array_equal(parents, eng.select_parents(k_sel, state.fitness))
        np.testing.assert_array_equal(children["x"], parents)
        np.testing.assert_array_equal(children["key"], data(jax.random.split(k_mut, 4)))


def test_children_replace_the_oldest_in_order_and_wrap():
    eng = EvolutionEngine(population_size=5, tournament_size=2, batch_size=2)
    state = eng.init({"x": jnp.arange(5) * 10}, jnp.zeros(5))
    slots = []
    for i in range(3):
        children = {"x": jnp.asarray([100 + 2 * i, 101 + 2 * i])}
        state = eng.tell(state, children, jnp.ones(2))
        slots.append(np.asarray(state.population["x"]).copy())
    # Slots 0,1 then 2,3 then 4,0: always the oldest.
    np.testing.assert_array_equal(slots[-1], [105, 101, 102, 103, 104])
    assert int(state.oldest) == 1 and int(state.num_evaluated) == 11


def test_nan_fitness_never_wins_and_is_never_best():
    eng = EvolutionEngine(population_size=4, tournament_size=4, batch_size=1)
    fitness = [np.nan, 0.3, 0.1, np.nan]
    state = eng.init({"x": jnp.arange(4)}, jnp.asarray(fitness))
    best, fit = eng.best(state)
    assert int(best["x"]) == 1 and float(fit) == pytest.approx(0.3)
    worst_for_nan = np.nan_to_num(np.asarray(fitness), nan=-np.inf)
    for k in range(20):
        key = jax.random.key(k)
        draws = np.asarray(jax.random.randint(key, (1, 4), 0, 4))[0]
        expected = draws[int(np.argmax(worst_for_nan[draws]))]
        assert int(eng.select_parents(key, state.fitness)[0]) == expected


def test_step_jits_once(compile_count):
    eng = EvolutionEngine(population_size=8, tournament_size=3, batch_size=2)

    @jax.jit
    def step(state, key):
        children, _ = eng.ask(key, state, _add_one)
        return eng.tell(state, children, children["x"].astype(jnp.float32))

    state = eng.init({"x": jnp.zeros(8, jnp.int32)}, jnp.zeros(8))
    keys = [jax.random.key(k) for k in range(4)]
    state = step(state, keys[0])
    with compile_count() as compiles:  # every state leaf keeps its dtype and shape
        for key in keys[1:]:
            state = step(state, key)
        jax.block_until_ready(state)
    assert compiles.count == 0
    assert int(state.num_evaluated) == 16
    # 4 steps of 2 children (parent + 1 >= 1) replaced the 8 initial zeros, oldest first
    assert int(state.oldest) == 0 and (np.asarray(state.population["x"]) >= 1).all()


@pytest.mark.parametrize("kwargs,field", [
    (dict(population_size=0, tournament_size=1), "population_size"),
    (dict(population_size=4, tournament_size=0), "tournament_size"),
    (dict(population_size=4, tournament_size=2, batch_size=5), "batch_size"),
])
def test_bad_sizes_name_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        EvolutionEngine(**kwargs)
