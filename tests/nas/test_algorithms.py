"""Search algorithms: ask/tell, vectorized loop, no-recompile, early stopping."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from nas import (
    DNA,
    ArchDistribution,
    RandomSearch,
    RegularizedEvolution,
    Reinforce,
    Space,
    StopByRank,
    StopByValue,
    Tuner,
    floatv,
    manyof,
    oneof,
    run_vectorized,
    search,
)
from nas.tuner import TRACE_COUNTS

# 6 decisions of 4 choices each: 4096 architectures, one optimum (all 3s)
ONEMAX = Space([oneof([0, 1, 2, 3]) for _ in range(6)])


def onemax(dna: DNA) -> jax.Array:
    return jnp.sum(dna.ints == 3).astype(jnp.float32)


def onemax_batch(dna: DNA) -> jax.Array:
    return jax.vmap(onemax)(dna)


ALGOS = {
    "random": lambda b=8: RandomSearch(ONEMAX, batch_size=b),
    "evolution": lambda b=8: RegularizedEvolution(ONEMAX, 32, 8, batch_size=b),
    "reinforce": lambda b=8: Reinforce(ONEMAX, batch_size=b, learning_rate=0.1),
}


@pytest.mark.parametrize("name", sorted(ALGOS))
def test_vectorized_loop_no_recompile_and_same_seed_same_result(name):
    algo = ALGOS[name]()
    r1 = run_vectorized(algo, onemax, jax.random.key(0), 30)
    before = TRACE_COUNTS["scan"]
    r2 = run_vectorized(algo, onemax, jax.random.key(0), 30)
    r3 = run_vectorized(algo, onemax, jax.random.key(1), 30, state=r1.state)  # resume
    assert TRACE_COUNTS["scan"] == before  # no retrace on step 2 or 3
    np.testing.assert_array_equal(r1.rewards, r2.rewards)
    assert r1.rewards.shape == (30, 8) and r1.rewards.dtype == jnp.float32
    assert int(r3.state.best.num_trials) == 480


@pytest.mark.parametrize("name", sorted(ALGOS))
def test_reported_best_is_the_max_of_all_told_rewards(name):
    """best_so_far, state.best.reward and state.best.dna against bookkeeping done here from
    the rewards alone (NaN rewards are failures and never count as the best)."""
    algo = ALGOS[name]()

    def noisy_onemax(dna):  # a NaN now and then; a unique float reward per architecture
        r = onemax(dna) + jnp.sum(dna.ints * jnp.arange(1, 7)) / 1000.0
        return jnp.where(jnp.sum(dna.ints) % 7 == 0, jnp.nan, r)

    res = run_vectorized(algo, noisy_onemax, jax.random.key(4), 25)
    rewards = np.asarray(res.rewards, np.float64)
    assert np.isnan(rewards).any() and not np.isnan(rewards).all()
    per_step = np.where(np.isnan(rewards), -np.inf, rewards).max(axis=1)
    np.testing.assert_array_equal(res.best_so_far, np.maximum.accumulate(per_step))
    assert float(res.state.best.reward) == np.nanmax(rewards)
    assert float(noisy_onemax(res.state.best.dna)) == float(res.state.best.reward)
    assert int(res.state.best.num_trials) == rewards.size


def test_evolution_population_holds_the_most_recent_children_and_their_rewards():
    """After warm-up the population is exactly the last population_size told trials (each
    in the slot of the oldest member it replaced), with the rewards they were told."""
    algo = RegularizedEvolution(ONEMAX, population_size=8, tournament_size=3, batch_size=2)
    ask, tell = jax.jit(algo.ask), jax.jit(algo.tell)
    state = algo.init(jax.random.key(0))
    told_dna, told_rewards = [], []
    for step in range(11):  # 22 trials: the population turns over 2.75 times
        dna = ask(jax.random.key(100 + step), state)
        reward = onemax_batch(dna) + step / 100.0  # every step's rewards distinct
        state = tell(state, dna, reward)
        told_dna.append(np.asarray(dna.ints))
        told_rewards.append(np.asarray(reward))
    dna_seq = np.concatenate(told_dna)  # trial t was written to slot t % 8
    reward_seq = np.concatenate(told_rewards)
    slots = np.arange(len(dna_seq)) % 8
    last = {s: t for t, s in enumerate(slots)}  # the most recent trial in each slot
    order = [last[s] for s in range(8)]
    np.testing.assert_array_equal(state.evolution.population.ints, dna_seq[order])
    np.testing.assert_array_equal(state.evolution.fitness, reward_seq[order].astype(np.float32))
    assert sorted(order) == list(range(len(dna_seq) - 8, len(dna_seq)))


def test_reinforce_raises_the_probability_of_the_rewarded_choice():
    """One tell where choice 3 of every slot got the highest reward: its probability goes
    up in every slot and the probability of the choice rewarded least goes down."""
    algo = Reinforce(ONEMAX, batch_size=4, learning_rate=0.05)
    state = algo.init(jax.random.key(0))
    before = np.asarray(jax.nn.softmax(algo.distribution(state).logits[...], axis=-1))
    ints = jnp.asarray([[c] * 6 for c in range(4)], jnp.int32)  # trial c picks c everywhere
    dna = DNA(ints, jnp.zeros((4, 0), jnp.float32))
    state = jax.jit(algo.tell)(state, dna, jnp.asarray([0.0, 1.0, 2.0, 6.0]))
    after = np.asarray(jax.nn.softmax(algo.distribution(state).logits[...], axis=-1))
    assert (after[:, 3] > before[:, 3] + 1e-3).all(), (before, after)
    assert (after[:, 0] < before[:, 0] - 1e-3).all(), (before, after)


def test_evolution_and_reinforce_beat_random_on_onemax():
    finals = {}
    for name, make in ALGOS.items():
        algo = make(16)
        curves = [run_vectorized(algo, onemax, jax.random.key(s), 25).rewards.mean(axis=1)
                  for s in range(2)]
        finals[name] = float(np.mean([c[-5:].mean() for c in curves]))
    # random's mean reward is exactly 6 * 1/4 = 1.5
    assert abs(finals["random"] - 1.5) < 0.3
    assert finals["evolution"] > 3.0 and finals["reinforce"] > 3.0


def test_evolution_finds_global_optimum_known_by_enumeration():
    all_rewards = jax.vmap(onemax)(ONEMAX.enumerate())
    assert float(all_rewards.max()) == 6.0 and int(jnp.sum(all_rewards == 6)) == 1
    res = run_vectorized(RegularizedEvolution(ONEMAX, 32, 8, batch_size=16), onemax,
                         jax.random.key(3), 60)
    assert float(res.state.best.reward) == 6.0
    np.testing.assert_array_equal(res.state.best.dna.ints, [3] * 6)


def test_evolution_warmup_then_fills_population_in_order():
    sp = Space([oneof(list(range(10))) for _ in range(3)])
    algo = RegularizedEvolution(sp, population_size=6, tournament_size=2, batch_size=2)
    tuner = Tuner(algo, seed=0, materialize=False)
    for i in range(6):
        tuner.tell(tuner.ask(), float(i))
    np.testing.assert_array_equal(tuner.state.evolution.fitness, np.arange(6, dtype=np.float32))
    np.testing.assert_array_equal(
        tuner.state.evolution.population.ints, np.stack([t.dna.ints for t in tuner.history]))
    # after warm-up each child differs from some population member in exactly one slot
    child = tuner.ask()
    diffs = np.sum(np.asarray(tuner.state.evolution.population.ints) != np.asarray(
        child.dna.ints), axis=1)
    assert diffs.min() == 1


def test_reinforce_gradient_hand_worked():
    # one binary choice, batch [0, 1] with rewards [1, 0]: baseline 0.5, advantages
    # [0.5, -0.5]; d loss/d logits = -[0.25, -0.25]; Adam's first step is lr * sign.
    sp = Space(oneof(["a", "b"]))
    algo = Reinforce(sp, batch_size=2, learning_rate=0.1, baseline_decay=0.9)
    state = algo.init(jax.random.key(0))
    dna = DNA(jnp.array([[0], [1]], jnp.int32), jnp.zeros((2, 0), jnp.float32))
    state = jax.jit(algo.tell)(state, dna, jnp.array([1.0, 0.0]))
    np.testing.assert_allclose(algo.distribution(state).logits[...][0], [0.1, -0.1], atol=1e-5)
    np.testing.assert_allclose(state.baseline, 0.5)
    assert int(state.best.num_trials) == 2 and float(state.best.reward) == 1.0


def test_reinforce_stays_finite_when_slots_have_different_choice_counts():
    # 3 vs 5 choices: the 3-choice slot's logits are padded with -inf. A NaN gradient
    # through the (zero-weighted) entropy term once froze every such slot, so REINFORCE
    # on NAS-Bench-Graph proteins (9 wirings, 5 ops) sampled the first op forever.
    sp = Space([oneof([0, 1, 2]), oneof([0, 1, 2, 3, 4])])
    dist = ArchDistribution(sp)
    graphdef, params = nnx.split(dist)
    grads = jax.grad(lambda p: nnx.merge(graphdef, p).entropy())(params)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))
    np.testing.assert_allclose(dist.entropy(), np.log(3) + np.log(5), rtol=1e-6)

    def reward(dna):  # best: last choice in both slots
        return (dna.ints[0] == 2).astype(jnp.float32) + (dna.ints[1] == 4)

    algo = Reinforce(sp, batch_size=4, learning_rate=0.1)
    res = run_vectorized(algo, reward, jax.random.key(0), 40)
    logits = np.asarray(algo.distribution(res.state).logits[...])
    assert np.all(np.isfinite(logits[0, :3])) and np.all(np.isfinite(logits[1]))
    assert logits[0, :3].argmax() == 2 and logits[1].argmax() == 4


def test_reinforce_respects_distinct_manyof():
    sp = Space(manyof(3, list("abcd")))
    algo = Reinforce(sp, batch_size=64)
    dna = jax.jit(algo.ask)(jax.random.key(0), algo.init(jax.random.key(0)))
    rows = np.asarray(dna.ints)
    assert all(len(set(r)) == 3 for r in rows)


def test_tuner_python_objective_and_errors():
    sp = Space({"w": oneof([8, 16, 32]), "lr": floatv(1e-3, 1e-1, "log")})
    tuner = search(lambda cfg: cfg["w"] - abs(np.log10(cfg["lr"]) + 2),
                   RegularizedEvolution(sp, 8, 3), num_trials=40, seed=0, progress=False)
    assert tuner.best.value["w"] == 32
    again = search(lambda cfg: cfg["w"] - abs(np.log10(cfg["lr"]) + 2),
                   RegularizedEvolution(sp, 8, 3), num_trials=40, seed=0, progress=False)
    assert [t.reward for t in again.history] == [t.reward for t in tuner.history]
    batched = Tuner(RandomSearch(sp, batch_size=2))
    t0 = batched.ask()
    batched.ask()
    with pytest.raises(ValueError, match="pending trials"):
        batched.ask()
    with pytest.raises(ValueError, match="not pending"):
        Tuner(RandomSearch(sp)).tell(t0, 1.0)


def test_tuner_ask_tell_do_not_recompile():
    algo = RegularizedEvolution(ONEMAX, 4, 2)
    tuner = Tuner(algo, materialize=False)
    for _ in range(3):
        tuner.tell(tuner.ask(), 1.0)
    before = dict(TRACE_COUNTS)
    for _ in range(10):  # crosses the warm-up boundary: same compiled functions
        t = tuner.ask()
        tuner.tell(t, float(onemax(t.dna)))
    assert TRACE_COUNTS["ask"] == before["ask"] and TRACE_COUNTS["tell"] == before["tell"]


def test_nan_reward_counts_as_failure():
    algo = RandomSearch(ONEMAX, batch_size=2)
    state = algo.tell(algo.init(jax.random.key(0)), ONEMAX.sample_batch(jax.random.key(1), 2),
                      jnp.array([jnp.nan, 2.0]))
    assert float(state.best.reward) == 2.0


def test_algorithm_validation():
    with pytest.raises(ValueError, match="population_size"):
        RegularizedEvolution(ONEMAX, population_size=0)
    with pytest.raises(ValueError, match="batch_size"):
        RandomSearch(ONEMAX, batch_size=0)
    with pytest.raises(ValueError, match="learning_rate"):
        Reinforce(ONEMAX, learning_rate=-1.0)
    with pytest.raises(ValueError, match="nas.Space"):
        RandomSearch({"a": 1})
    with pytest.raises(ValueError, match="num_steps"):
        run_vectorized(RandomSearch(ONEMAX), onemax, jax.random.key(0), 0)


def test_stop_by_value_hand_worked():
    policy = StopByValue({2: 0.5, 5: 0.8})
    assert not policy.should_stop(0, 1, 0.1)  # no threshold before step 2
    assert policy.should_stop(0, 2, 0.4) and not policy.should_stop(1, 3, 0.6)
    assert policy.should_stop(1, 6, 0.7)  # step 6 uses step 5's threshold
    with pytest.raises(ValueError, match="thresholds"):
        StopByValue({})


def test_stop_by_rank_hand_worked():
    policy = StopByRank({1: 0.5}, min_reports=3)
    assert not policy.should_stop(0, 1, 0.9)
    assert not policy.should_stop(1, 1, 0.5)  # only 2 reports so far
    assert policy.should_stop(2, 1, 0.1)  # rank 3 of 3, allowed top 1
    assert not policy.should_stop(3, 1, 0.95)  # rank 1 of 4
    assert policy.should_stop(4, 1, 0.6)  # rank 3 of 5, allowed top 2
    topk = StopByRank({0: 1}, min_reports=1)
    assert not topk.should_stop(0, 0, 1.0) and topk.should_stop(1, 0, 0.5)
    with pytest.raises(ValueError, match="max_rank"):
        StopByRank({0: 1.5})


def test_early_stopping_in_search_loop():
    sp = Space({"quality": oneof([0.1, 0.5, 0.9])})
    steps_run = []

    def objective(cfg, trial):
        for step in range(5):
            if trial.report(step, cfg["quality"] * (step + 1) / 5):
                steps_run.append(step)
                return float("nan")
        steps_run.append(5)
        return cfg["quality"]

    tuner = search(objective, RandomSearch(sp), num_trials=12, seed=0, pass_trial=True,
                   early_stopping=StopByValue({1: 0.15}), progress=False)
    stopped = [t for t in tuner.history if t.stopped_at is not None]
    assert stopped and all(t.value["quality"] == 0.1 and t.stopped_at == 1 for t in stopped)
    assert tuner.best.value["quality"] == 0.9
