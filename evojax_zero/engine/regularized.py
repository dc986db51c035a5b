"""Batched regularized evolution over any genome pytree (one engine, many genomes).

Population of P genomes (a pytree whose leaves have a leading axis P), each with a
fitness. Every step draws, for each of B children, T members uniformly *with
replacement*, takes the fittest (ties: the first drawn) as parent, mutates it, and
the evaluated children overwrite the B oldest members. With B = 1 this is exactly the
reference's regularized evolution (slots are overwritten in order 0, 1, ..., P-1, ...).

The engine is stateless: ``ask`` and ``tell`` are pure functions of an explicit
:class:`EvolutionState`, so they jit, scan and shard.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from evojax_zero.engine import keytree

Genome = Any  # a pytree with a leading population axis
MutateFn = Callable[[jax.Array, Genome], Genome]  # (key, one genome) -> one genome


def _finite_or_worst(fitness) -> jax.Array:
    """float32 fitness with NaN mapped to -inf, so NaN never wins a tournament."""
    fitness = jnp.asarray(fitness, jnp.float32)
    return jnp.where(jnp.isnan(fitness), -jnp.inf, fitness)


@struct.dataclass
class EvolutionState:
    """Population, fitness and the pointer to the oldest member."""

    population: Genome
    fitness: jax.Array  # float32[P]
    oldest: jax.Array  # int32[]: next slot to overwrite
    num_evaluated: jax.Array  # int64-or-int32[]: individuals evaluated so far


@dataclasses.dataclass(frozen=True)
class EvolutionEngine:
    """Regularized evolution with population ``population_size``, tournament
    ``tournament_size`` and ``batch_size`` children per step."""

    population_size: int
    tournament_size: int
    batch_size: int = 1

    def __post_init__(self):
        for name in ("population_size", "tournament_size", "batch_size"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"EvolutionEngine.{name} must be an int >= 1, got {v!r}")
        if self.batch_size > self.population_size:
            raise ValueError(
                f"batch_size ({self.batch_size}) must be <= population_size "
                f"({self.population_size})"
            )

    def init(self, population: Genome, fitness: jax.Array) -> EvolutionState:
        """State from an evaluated initial population (leading axis = population_size)."""
        leaves = jax.tree.leaves(population)
        if not leaves or any(x.shape[:1] != (self.population_size,) for x in leaves):
            raise ValueError(
                f"population leaves must have leading axis {self.population_size}; got "
                f"{[x.shape for x in leaves]}"
            )
        fitness = _finite_or_worst(fitness)
        if fitness.shape != (self.population_size,):
            raise ValueError(
                f"fitness must have shape ({self.population_size},), got {fitness.shape}")
        return EvolutionState(
            population=population,
            fitness=fitness,
            oldest=jnp.zeros((), jnp.int32),
            num_evaluated=jnp.asarray(self.population_size, jnp.int32),
        )

    def select_parents(self, key: jax.Array, fitness: jax.Array) -> jax.Array:
        """Indices of B tournament winners (T draws with replacement, first max wins):
        the draws are ``jax.random.randint(key, (B, T), 0, P)``."""
        tree = keytree.KeyTree(key)
        return self._winners(tree.run(self._draws(tree.root)), fitness)

    def _draws(self, node: keytree.KeyNode):
        return keytree.randint_draw(node, shape=(self.batch_size, self.tournament_size))

    def _winners(self, bits, fitness: jax.Array) -> jax.Array:
        draws = keytree.randint(bits, 0, self.population_size)
        best = jnp.argmax(fitness[draws], axis=1)  # argmax returns the first maximum
        return jnp.take_along_axis(draws, best[:, None], axis=1)[:, 0]

    def ask(self, key: jax.Array, state: EvolutionState,
            mutate: MutateFn) -> tuple[Genome, jax.Array]:
        """B children (leading axis B) and their parents' indices. The keys are those of
        ``k_sel, k_mut = split(key)``, ``select_parents(k_sel)``, ``split(k_mut, B)``,
        drawn together (``evojax_zero.engine.keytree``: same numbers, a fraction of the cost)."""
        tree = keytree.KeyTree(key)
        k_sel, k_mut = tree.root.split(2)
        d = tree.run({"sel": self._draws(k_sel), "keys": k_mut.split_vec(self.batch_size).keys()})
        parents = self._winners(d["sel"], state.fitness)
        parent_genomes = jax.tree.map(lambda x: x[parents], state.population)
        children = jax.vmap(mutate)(d["keys"], parent_genomes)
        return children, parents

    def tell(self, state: EvolutionState, children: Genome, fitness: jax.Array) -> EvolutionState:
        """Overwrite the B oldest members with the evaluated children."""
        slots = (state.oldest + jnp.arange(self.batch_size)) % self.population_size
        population = jax.tree.map(lambda p, c: p.at[slots].set(c), state.population, children)
        return state.replace(
            population=population,
            fitness=state.fitness.at[slots].set(_finite_or_worst(fitness)),
            oldest=((state.oldest + self.batch_size) % self.population_size).astype(jnp.int32),
            num_evaluated=state.num_evaluated + self.batch_size,
        )

    def best(self, state: EvolutionState) -> tuple[Genome, jax.Array]:
        """The fittest member (first on ties) and its fitness."""
        i = jnp.argmax(state.fitness)
        return jax.tree.map(lambda x: x[i], state.population), state.fitness[i]
