"""Islands: several regularized-evolution populations side by side, with migration.

The island state is a :class:`SearchState` whose every leaf has a leading island axis
``I``. One jitted call runs a generation of every island (:meth:`_Kernels._generation`
``vmap``-ped over the island axis; with a mesh, the island axis is sharded over its first
axis with ``shard_map`` so each device evolves its own islands) and then, every
``migrate_every`` generations, migrates: island ``i`` receives copies of the
``num_migrants`` fittest members of island ``i - 1`` (a ring), which overwrite its
``num_migrants`` oldest members (the regularized-evolution slots due next), advancing its
oldest pointer. Islands are seeded by ``split(key, I)``, so island ``i`` alone is exactly a
plain :class:`Search` run with key ``split(key, I)[i]`` until the first migration.

Same seed, same result on any number of devices dividing ``I``. FEC is not supported with
islands here (``ValueError``). The state checkpoints like a plain search state
(``abstract_state`` gives its shapes).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from evojax_zero.program.programs import Program
from evojax_zero.program.tasks import Tasks
from evojax_zero.search import initial as algorithms
from evojax_zero.search.distributed import to_host
from evojax_zero.search.loop import (
    SearchConfig,
    SearchCounters,
    SearchState,
    _kernels,
    abstract_state,
)


@dataclasses.dataclass(frozen=True)
class IslandConfig:
    """``num_islands`` populations; every ``migrate_every`` generations each island gets
    the ``num_migrants`` best of its ring predecessor (``migrate_every=0``: never)."""

    num_islands: int = 4
    migrate_every: int = 1
    num_migrants: int = 1

    def __post_init__(self):
        for name, lo in (("num_islands", 1), ("migrate_every", 0), ("num_migrants", 0)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise ValueError(f"IslandConfig.{name} must be an int >= {lo}, got {v!r}")


def migrate(state: SearchState, num_migrants: int) -> SearchState:
    """Ring migration on an island-axis state: island i's ``num_migrants`` oldest slots get
    the fittest ``num_migrants`` of island i-1 (ties: lowest index first)."""
    if num_migrants == 0:
        return state
    ev = state.evolution
    P = ev.fitness.shape[1]
    best = jnp.argsort(-ev.fitness, axis=1, stable=True)[:, :num_migrants]  # [I, m]
    take = jax.vmap(lambda x, i: x[i])
    migrants = jax.tree.map(lambda x: jnp.roll(take(x, best), 1, axis=0), ev.population)
    mig_fit = jnp.roll(take(ev.fitness, best), 1, axis=0)
    slots = (ev.oldest[:, None] + jnp.arange(num_migrants)) % P  # [I, m]
    put = jax.vmap(lambda x, s, v: x.at[s].set(v))
    return state.replace(evolution=ev.replace(
        population=jax.tree.map(lambda x, v: put(x, slots, v), ev.population, migrants),
        fitness=put(ev.fitness, slots, mig_fit),
        oldest=((ev.oldest + num_migrants) % P).astype(jnp.int32)))


class IslandSearch:
    """``I`` regularized-evolution searches in lockstep, one jitted call per generation.

    ``init(key)`` / ``generation(state)`` as :class:`Search`; :attr:`counters` sum all
    islands; :meth:`best` is the best member over all islands.
    """

    def __init__(self, config: SearchConfig, tasks: Tasks, islands: IslandConfig,
                 mesh=None):
        if not isinstance(islands, IslandConfig):
            raise ValueError(f"islands must be an IslandConfig, got {type(islands).__name__}")
        if config.fec is not None:
            raise ValueError("islands do not support the FEC cache yet; fix: fec='off'")
        if islands.num_migrants > config.population_size:
            raise ValueError(f"IslandConfig.num_migrants ({islands.num_migrants}) must be <= "
                             f"population_size ({config.population_size})")
        if mesh is not None and islands.num_islands % mesh.shape[mesh.axis_names[0]]:
            raise ValueError(f"num_islands ({islands.num_islands}) must be a multiple of the "
                             f"mesh's first axis ({mesh.shape[mesh.axis_names[0]]})")
        if tasks.feature_size != config.spec.feature_size:
            raise ValueError(f"tasks have feature size {tasks.feature_size}; the spec says "
                             f"{config.spec.feature_size}")
        self.config, self.tasks, self.islands, self.mesh = config, tasks, islands, mesh
        self.kernels = _kernels(config, None)
        self.engine = self.kernels.engine
        self.train_per_task = tasks.num_train * tasks.num_epochs
        self.counters = SearchCounters()
        self.generations = 0
        self._jits = _island_jits(config, islands, mesh)

    def init(self, key: jax.Array) -> SearchState:
        c, n = self.config, self.islands.num_islands
        self.counters, self.generations = SearchCounters(), 0
        keys = jax.random.split(key, n)
        pops = []
        for k in keys:  # host-built initial programs, as Search.init does for each island
            k_init, _, _ = jax.random.split(k, 3)
            pops.append(algorithms.initial_population(
                c.initial_population, c.spec, c.population_size, c.sizes_init, k_init,
                c.mutation))
        pop = jax.tree.map(lambda *xs: jnp.stack([jnp.asarray(x) for x in xs]), *pops)
        state = self._jits["init"](self.place_tree(pop), self.place_tree(keys), self.tasks)
        self._count(n * c.population_size * self.tasks.num_tasks)
        return state

    def generation(self, state: SearchState) -> SearchState:
        migrate_now = (self.islands.migrate_every > 0
                       and (self.generations + 1) % self.islands.migrate_every == 0)
        state, pairs = self._jits["generation"](state, self.tasks, migrate_now)
        self.generations += 1
        self._count(int(to_host(pairs)))
        return state

    def _count(self, pairs: int) -> None:
        c = self.counters
        self.counters = dataclasses.replace(
            c, individuals=c.individuals + self.islands.num_islands * self.config.population_size,
            train_steps=c.train_steps + pairs * self.train_per_task)

    def place_tree(self, tree):
        if self.mesh is None:
            return tree
        sh = NamedSharding(self.mesh, PartitionSpec(self.mesh.axis_names[0]))
        return jax.device_put(tree, sh)

    def best(self, state: SearchState) -> tuple[Program, float]:
        f = to_host(state.evolution.fitness)
        i, j = np.unravel_index(int(np.argmax(f)), f.shape)
        prog = jax.tree.map(lambda x: to_host(x)[i, j], state.evolution.population)
        return prog, float(f[i, j])

    def abstract_state(self) -> SearchState:
        """Shapes and dtypes of the island state (for checkpoint restore)."""
        one = abstract_state(self.config)
        n = self.islands.num_islands
        return jax.tree.map(lambda x: jax.ShapeDtypeStruct((n, *x.shape), x.dtype), one)


@functools.lru_cache(maxsize=8)
def _island_jits(config: SearchConfig, islands: IslandConfig, mesh):
    kernels = _kernels(config, None)
    m = islands.num_migrants

    def init_one(pop, key, tasks):
        _, k_eval, k_next = jax.random.split(key, 3)
        fitness, _, _ = kernels._evaluate_population(pop, k_eval, None, tasks)
        return SearchState(kernels.engine.init(pop, fitness), k_next)

    def gen_one(state, tasks):
        state, _, stats = kernels._generation(state, None, tasks)
        return state, stats.evaluated_pairs.sum(dtype=jnp.int32)

    def over_islands(fn):
        batched = jax.vmap(fn, in_axes=(0, None) if fn is gen_one else (0, 0, None))
        if mesh is None:
            return batched
        spec = PartitionSpec(mesh.axis_names[0])
        n_in = 2 if fn is gen_one else 3
        in_specs = (spec,) * (n_in - 1) + (PartitionSpec(),)
        return jax.shard_map(batched, mesh=mesh, in_specs=in_specs,
                             out_specs=spec if fn is init_one else (spec, spec),
                             check_vma=False)

    init_all = over_islands(init_one)
    gen_all = over_islands(gen_one)

    def generation(state, tasks, migrate_now):
        state, pairs = gen_all(state, tasks)
        state = jax.lax.cond(migrate_now, lambda s: migrate(s, m), lambda s: s, state)
        return state, pairs.sum()

    return {"init": jax.jit(init_all), "generation": jax.jit(generation)}
