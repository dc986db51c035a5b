"""Regularized evolution (Real et al., 2019) over DNA, on the engine shared with AutoML-Zero
(``evojax_zero.engine.EvolutionEngine``; one engine, two genomes) with ``space.mutate``."""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
from flax import struct

from evojax_zero.engine.regularized import EvolutionEngine, EvolutionState
from nas.algorithms.base import Best, check_common, init_best, sanitize, update_best
from nas.checks import check_int, check_real
from nas.space import DNA, Space


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
        check_common("RegularizedEvolution", self.space, self.batch_size)
        P = check_int("RegularizedEvolution.population_size", self.population_size, low=1)
        T = check_int("RegularizedEvolution.tournament_size", self.tournament_size, low=1)
        if T > P:
            raise ValueError(f"RegularizedEvolution.tournament_size must be <= population_size "
                             f"({P}), got {T}; lower it or grow the population")
        if check_real("RegularizedEvolution.float_sigma", self.float_sigma) <= 0:
            raise ValueError(f"RegularizedEvolution.float_sigma must be > 0 (a mutation step on "
                             f"the unit scale), got {self.float_sigma!r}")
        # the engine validates population/tournament/batch sizes eagerly
        object.__setattr__(self, "engine", EvolutionEngine(
            self.population_size, self.tournament_size, self.batch_size))

    def init(self, key: jax.Array) -> EvolutionSearchState:
        pop = self.space.sample_batch(key, self.population_size)
        fitness = jnp.full((self.population_size,), -jnp.inf, jnp.float32)
        evo = self.engine.init(pop, fitness)
        evo = evo.replace(num_evaluated=jnp.zeros((), jnp.int32))
        return EvolutionSearchState(evo, init_best(self.space))

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
        reward = sanitize(reward)
        return EvolutionSearchState(
            self.engine.tell(state.evolution, dna, reward),
            update_best(state.best, dna, reward),
        )
