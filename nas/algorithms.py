"""Search algorithms over DNA behind one pure ask/tell interface.

Every algorithm is a frozen dataclass with pure, jittable methods::

    state = algo.init(key)
    dna = algo.ask(key, state)            # DNA batch, leading axis = algo.batch_size
    state = algo.tell(state, dna, reward)  # reward float32[batch_size], higher is better

Rewards that are NaN count as failures (-inf). The state tracks the best DNA seen.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import optax
from flax import nnx, struct

from evojax_zero.engine.regularized import EvolutionState
from evojax_zero.engine.regularized import RegularizedEvolution as _EvolutionEngine
from nas.arch_params import ArchDistribution
from nas.space import DNA, Space


@struct.dataclass
class Best:
    """Best DNA so far and the number of trials told."""

    dna: DNA
    reward: jax.Array  # float32[]
    num_trials: jax.Array  # int32[]


def _sanitize(reward: jax.Array) -> jax.Array:
    reward = jnp.asarray(reward, jnp.float32)
    return jnp.where(jnp.isnan(reward), -jnp.inf, reward)


def _init_best(space: Space) -> Best:
    return Best(
        DNA(jnp.zeros((space.n_int,), jnp.int32), jnp.asarray(space.float_low, jnp.float32)),
        jnp.full((), -jnp.inf, jnp.float32),
        jnp.zeros((), jnp.int32),
    )


def _update_best(best: Best, dna: DNA, reward: jax.Array) -> Best:
    i = jnp.argmax(reward)
    better = reward[i] > best.reward
    cand = jax.tree.map(lambda x: x[i], dna)
    return Best(
        jax.tree.map(lambda new, old: jnp.where(better, new, old), cand, best.dna),
        jnp.where(better, reward[i], best.reward),
        best.num_trials + reward.shape[0],
    )


def _check_common(name: str, space: Space, batch_size: int) -> None:
    if not isinstance(space, Space):
        raise ValueError(f"{name}.space must be a nas.Space, got {type(space).__name__}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"{name}.batch_size must be an int >= 1, got {batch_size!r}")


# ------------------------------------------------------------------ random search
@struct.dataclass
class RandomSearchState:
    best: Best


@dataclasses.dataclass(frozen=True)
class RandomSearch:
    """Uniform random sampling of the space."""

    space: Space
    batch_size: int = 1

    def __post_init__(self):
        _check_common("RandomSearch", self.space, self.batch_size)

    def init(self, key: jax.Array) -> RandomSearchState:
        del key
        return RandomSearchState(_init_best(self.space))

    def ask(self, key: jax.Array, state: RandomSearchState) -> DNA:
        del state
        return self.space.sample_batch(key, self.batch_size)

    def tell(self, state: RandomSearchState, dna: DNA, reward: jax.Array) -> RandomSearchState:
        return RandomSearchState(_update_best(state.best, dna, _sanitize(reward)))


# ------------------------------------------------------------- regularized evolution
@struct.dataclass
class EvolutionSearchState:
    evolution: EvolutionState
    best: Best


@dataclasses.dataclass(frozen=True)
class RegularizedEvolution:
    """Regularized (aging) evolution on the shared ``evojax_zero`` engine.

    The first ``population_size`` trials are random; afterwards each child is a
    :meth:`Space.mutate` of a tournament winner and replaces the oldest member."""

    space: Space
    population_size: int = 100
    tournament_size: int = 10
    batch_size: int = 1
    float_sigma: float = 0.2

    def __post_init__(self):
        _check_common("RegularizedEvolution", self.space, self.batch_size)
        # the engine validates population/tournament/batch sizes eagerly
        object.__setattr__(self, "engine", _EvolutionEngine(
            self.population_size, self.tournament_size, self.batch_size))

    def init(self, key: jax.Array) -> EvolutionSearchState:
        pop = self.space.sample_batch(key, self.population_size)
        fitness = jnp.full((self.population_size,), -jnp.inf, jnp.float32)
        evo = self.engine.init(pop, fitness)
        evo = evo.replace(num_evaluated=jnp.zeros((), jnp.int32))
        return EvolutionSearchState(evo, _init_best(self.space))

    def ask(self, key: jax.Array, state: EvolutionSearchState) -> DNA:
        k_evo, k_rand = jax.random.split(key)
        mutate = functools.partial(self.space.mutate, float_sigma=self.float_sigma)
        children, _ = self.engine.ask(k_evo, state.evolution, mutate)
        fresh = self.space.sample_batch(k_rand, self.batch_size)
        warmup = state.best.num_trials + jnp.arange(self.batch_size) < self.population_size
        return jax.tree.map(
            lambda f, c: jnp.where(warmup.reshape((-1,) + (1,) * (c.ndim - 1)), f, c),
            fresh, children)

    def tell(self, state: EvolutionSearchState, dna: DNA, reward: jax.Array
             ) -> EvolutionSearchState:
        reward = _sanitize(reward)
        return EvolutionSearchState(
            self.engine.tell(state.evolution, dna, reward),
            _update_best(state.best, dna, reward),
        )


# ----------------------------------------------------------------------- REINFORCE
@struct.dataclass
class ReinforceState:
    params: nnx.State  # the ArchParam leaves of an ArchDistribution
    opt_state: optax.OptState
    baseline: jax.Array  # float32[]
    best: Best


@dataclasses.dataclass(frozen=True)
class Reinforce:
    """REINFORCE controller: an :class:`ArchDistribution` trained by policy gradient
    with an exponential-moving-average baseline and Adam."""

    space: Space
    batch_size: int = 1
    learning_rate: float = 0.05
    baseline_decay: float = 0.95
    entropy_weight: float = 0.0

    def __post_init__(self):
        _check_common("Reinforce", self.space, self.batch_size)
        if not self.learning_rate > 0:
            raise ValueError(f"Reinforce.learning_rate must be > 0, got {self.learning_rate}")
        if not 0 <= self.baseline_decay < 1:
            raise ValueError(
                f"Reinforce.baseline_decay must be in [0, 1), got {self.baseline_decay}")
        graphdef, _ = nnx.split(ArchDistribution(self.space))
        object.__setattr__(self, "graphdef", graphdef)
        object.__setattr__(self, "optimizer", optax.adam(self.learning_rate))

    def init(self, key: jax.Array) -> ReinforceState:
        del key
        _, params = nnx.split(ArchDistribution(self.space))
        return ReinforceState(params, self.optimizer.init(params),
                              jnp.full((), jnp.nan, jnp.float32), _init_best(self.space))

    def distribution(self, state: ReinforceState) -> ArchDistribution:
        """The controller's current distribution as an NNX module."""
        return nnx.merge(self.graphdef, state.params)

    def ask(self, key: jax.Array, state: ReinforceState) -> DNA:
        dist = self.distribution(state)
        return jax.vmap(dist.sample)(jax.random.split(key, self.batch_size))

    def tell(self, state: ReinforceState, dna: DNA, reward: jax.Array) -> ReinforceState:
        raw = _sanitize(reward)
        ok = jnp.isfinite(raw)
        r = jnp.where(ok, raw, 0.0)  # failed trials get reward 0 in the gradient
        mean_r = jnp.sum(r) / jnp.maximum(jnp.sum(ok), 1)
        baseline = jnp.where(jnp.isnan(state.baseline), mean_r, state.baseline)
        adv = jnp.where(ok, r - baseline, 0.0)

        def loss_fn(params):
            dist = nnx.merge(self.graphdef, params)
            logp = jax.vmap(dist.log_prob)(dna)
            return -jnp.mean(adv * logp) - self.entropy_weight * dist.entropy()

        grads = jax.grad(loss_fn)(state.params)
        updates, opt_state = self.optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        new_baseline = self.baseline_decay * baseline + (1 - self.baseline_decay) * mean_r
        return ReinforceState(params, opt_state, new_baseline.astype(jnp.float32),
                              _update_best(state.best, dna, raw))
