"""Islands: several regularized-evolution populations side by side, with migration.

The island state is a :class:`SearchState` whose every leaf has a leading island axis
``I``. One jitted call runs a generation of every island and then, every
``migrate_every`` generations, migrates: island ``i`` receives copies of the
``num_migrants`` fittest members of island ``i - 1`` (a ring), which overwrite its
``num_migrants`` oldest members (the regularized-evolution slots due next), advancing its
oldest pointer. Islands are seeded by ``split(key, I)``, so island ``i`` alone is exactly a
plain :class:`Search` run with key ``split(key, I)[i]`` until the first migration.

Without the FEC the generation is ``vmap``-ped over the island axis (with a mesh, the axis
is sharded over its first axis with ``shard_map``, each device evolving its own islands):
same seed, same result on any number of devices dividing ``I``. With the FEC the islands
share one cache and run one after the other inside the same jitted call (``lax.scan`` over
the island axis, island 0 first), on one device: a program another island already
evaluated is a hit. A :class:`HurdleConfig` evaluates every island's children through the
hurdle (:mod:`.hurdles`), with or without the FEC.

:class:`IslandSearch` has :class:`Search`'s interface (init, generation, counters, FEC cache
arrays, place, best, stats), so the experiment runner and checkpoints treat it as a search;
the generation count that schedules migration is derived from the counters, so a resumed
search migrates when the uninterrupted one would.
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
from evojax_zero.search import hurdles
from evojax_zero.search import initial as algorithms
from evojax_zero.search.distributed import to_host
from evojax_zero.search.hurdles import HurdleConfig, HurdleCounters
from evojax_zero.search.loop import (
    Search,
    SearchConfig,
    SearchCounters,
    SearchState,
    _kernels,
    abstract_state,
    check_tasks,
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


class IslandSearch(Search):
    """``I`` regularized-evolution searches in lockstep, one jitted call per generation.

    ``init(key)`` / ``generation(state)`` as :class:`Search`; :attr:`counters` sum all
    islands; :meth:`best` is the best member over all islands, :meth:`island_stats` the
    best and mean of each. ``hurdle``: evaluate children through it
    (:attr:`hurdle_counters` as :class:`HurdleSearch`'s).
    """

    def __init__(self, config: SearchConfig, tasks: Tasks, islands: IslandConfig,
                 mesh=None, hurdle: HurdleConfig | None = None):
        if not isinstance(islands, IslandConfig):
            raise ValueError(f"islands must be an IslandConfig, got {type(islands).__name__}")
        if hurdle is not None:
            if not isinstance(hurdle, HurdleConfig):
                raise ValueError(f"hurdle must be a HurdleConfig or None, got "
                                 f"{type(hurdle).__name__}")
            hurdle.check(tasks.num_tasks)
        if islands.num_migrants > config.population_size:
            raise ValueError(f"IslandConfig.num_migrants ({islands.num_migrants}) must be <= "
                             f"population_size ({config.population_size})")
        if mesh is not None and config.fec is not None:
            raise ValueError("islands with the FEC share one cache and run on one device; "
                             "fix: fec off to shard the islands over devices, or no mesh "
                             "(--devices)")
        if mesh is not None and islands.num_islands % mesh.shape[mesh.axis_names[0]]:
            raise ValueError(f"num_islands ({islands.num_islands}) must be a multiple of the "
                             f"mesh's first axis ({mesh.shape[mesh.axis_names[0]]})")
        check_tasks(config, tasks)
        self.config, self.tasks, self.islands, self.mesh = config, tasks, islands, mesh
        self.hurdle = hurdle
        self.kernels = (_kernels(config, None) if hurdle is None
                        else hurdles._kernels(config, None, hurdle))
        self.engine, self.evaluator, self.fec = (self.kernels.engine, self.kernels.evaluator,
                                                 self.kernels.fec)
        self.train_per_task = tasks.num_train * tasks.num_epochs
        self.counters = SearchCounters()
        self.hurdle_counters = HurdleCounters() if hurdle is not None else None
        self.cache = None
        self._release = None
        self._jits = _island_jits(config, islands, mesh, hurdle)

    @property
    def generations(self) -> int:
        """Generations run since :meth:`init` (from the counters: init counts one)."""
        per = self.islands.num_islands * self.config.population_size
        return max(self.counters.individuals // per - 1, 0)

    def init(self, key: jax.Array) -> SearchState:
        c, n = self.config, self.islands.num_islands
        self.counters = SearchCounters()
        if self.hurdle is not None:
            self.hurdle_counters = HurdleCounters()
        self._set_cache(self.fec.init() if self.fec is not None else None)
        keys = jax.random.split(key, n)
        pops = []
        for k in keys:  # host-built initial programs, as Search.init does for each island
            k_init, _, _ = jax.random.split(k, 3)
            pops.append(algorithms.initial_population(
                c.initial_population, c.spec, c.population_size, c.sizes_init, k_init,
                c.mutation))
        pop = jax.tree.map(lambda *xs: jnp.stack([jnp.asarray(x) for x in xs]), *pops)
        state, self.cache, totals = self._jits["init"](self.place_tree(pop),
                                                       self.place_tree(keys), self.cache,
                                                       self.tasks)
        self._count_totals(totals, children=False)
        return state

    def generation(self, state: SearchState) -> SearchState:
        migrate_now = (self.islands.migrate_every > 0
                       and (self.generations + 1) % self.islands.migrate_every == 0)
        state, self.cache, totals = self._jits["generation"](state, self.cache, self.tasks,
                                                             migrate_now)
        self._count_totals(totals, children=True)
        return state

    def _count_totals(self, totals: dict, children: bool) -> None:
        t = {k: int(np.sum(to_host(v), dtype=np.int64)) for k, v in totals.items()}
        I, P = self.islands.num_islands, self.config.population_size
        c = self.counters
        self.counters = dataclasses.replace(
            c, individuals=c.individuals + I * P,
            train_steps=c.train_steps + t["prerun"] + t["pairs"] * self.train_per_task,
            fec_hits=c.fec_hits + t["hits"],
            fec_lookups=c.fec_lookups + (t["pairs"] + t["hits"] if self.fec is not None else 0))
        if self.hurdle is not None and children:
            rest = self.tasks.num_tasks - self.hurdle.num_tasks
            h = self.hurdle_counters
            self.hurdle_counters = HurdleCounters(
                children=h.children + I * P, stopped=h.stopped + t["stopped"],
                pairs_avoided=h.pairs_avoided + t["stopped"] * rest,
                train_steps_avoided=(h.train_steps_avoided
                                     + t["stopped"] * rest * self.train_per_task))

    def place_tree(self, tree):
        if self.mesh is None:
            return tree
        sh = NamedSharding(self.mesh, PartitionSpec(self.mesh.axis_names[0]))
        return jax.device_put(tree, sh)

    def place(self, state: SearchState) -> SearchState:
        """Shard the island axis over the mesh (no-op without one)."""
        return self.place_tree(state)

    def best(self, state: SearchState) -> tuple[Program, float]:
        f = to_host(state.evolution.fitness)
        i, j = np.unravel_index(int(np.argmax(f)), f.shape)
        prog = jax.tree.map(lambda x: to_host(x)[i, j], state.evolution.population)
        return prog, float(f[i, j])

    @staticmethod
    def island_stats(state: SearchState) -> list[dict[str, float]]:
        """Best and mean fitness of each island."""
        f = to_host(state.evolution.fitness).astype(np.float64)
        return [{"best": float(r.max()), "mean": float(r.mean())} for r in f]

    def abstract_state(self, key: jax.Array | None = None) -> SearchState:
        """Shapes and dtypes of the island state (for checkpoint restore)."""
        return abstract_island_state(self.config, self.islands, key)


def abstract_island_state(config: SearchConfig, islands: IslandConfig,
                          key: jax.Array | None = None) -> SearchState:
    """Shapes and dtypes of an island state: a search state with a leading island axis."""
    one = abstract_state(config, key)
    n = islands.num_islands
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct((n, *x.shape), x.dtype), one)


def _totals(stats) -> dict:
    """A (stacked) StepStats / HurdleStats -> its pair counts summed (int32 scalars)."""
    zero = jnp.zeros((), jnp.int32)
    out = {"prerun": stats.prerun_steps, "pairs": stats.evaluated_pairs,
           "hits": stats.fec_hits, "stopped": getattr(stats, "stopped", zero)}
    return {k: jnp.sum(v, dtype=jnp.int32) for k, v in out.items()}


@functools.lru_cache(maxsize=8)
def _island_jits(config: SearchConfig, islands: IslandConfig, mesh,
                 hurdle: HurdleConfig | None = None):
    kernels = _kernels(config, None) if hurdle is None else hurdles._kernels(config, None,
                                                                             hurdle)
    m = islands.num_migrants

    def init_one(pop, key, cache, tasks):
        _, k_eval, k_next = jax.random.split(key, 3)
        fitness, cache, stats = kernels._evaluate_population(pop, k_eval, cache, tasks)
        return SearchState(kernels.engine.init(pop, fitness), k_next), cache, _totals(stats)

    def gen_one(state, cache, tasks):
        state, cache, stats = kernels._generation(state, cache, tasks)
        return state, cache, _totals(stats)

    if kernels.fec is None:  # islands side by side: vmap, sharded over the mesh
        def init_v(pop, keys, tasks):
            state, _, totals = init_one(pop, keys, None, tasks)
            return state, totals

        def gen_v(state, tasks):
            state, _, totals = gen_one(state, None, tasks)
            return state, totals

        def over_islands(fn, n_in):
            batched = jax.vmap(fn, in_axes=(0,) * (n_in - 1) + (None,))
            if mesh is None:
                return batched
            spec = PartitionSpec(mesh.axis_names[0])
            return jax.shard_map(batched, mesh=mesh,
                                 in_specs=(spec,) * (n_in - 1) + (PartitionSpec(),),
                                 out_specs=(spec, spec), check_vma=False)

        init_vv, gen_vv = over_islands(init_v, 3), over_islands(gen_v, 2)

        def init_all(pops, keys, cache, tasks):
            state, totals = init_vv(pops, keys, tasks)
            return state, cache, totals

        def gen_all(state, cache, tasks):
            state, totals = gen_vv(state, tasks)
            return state, cache, totals
    else:  # one shared FEC cache: islands one after the other
        def init_all(pops, keys, cache, tasks):
            def body(cache, xs):
                state, cache, totals = init_one(*xs, cache, tasks)
                return cache, (state, totals)

            cache, (state, totals) = jax.lax.scan(body, cache, (pops, keys))
            return state, cache, totals

        def gen_all(state, cache, tasks):
            def body(cache, st):
                st, cache, totals = gen_one(st, cache, tasks)
                return cache, (st, totals)

            cache, (state, totals) = jax.lax.scan(body, cache, state)
            return state, cache, totals

    def init(pops, keys, cache, tasks):
        state, cache, totals = init_all(pops, keys, cache, tasks)
        return state, cache, jax.tree.map(jnp.sum, totals)

    def generation(state, cache, tasks, migrate_now):
        state, cache, totals = gen_all(state, cache, tasks)
        state = jax.lax.cond(migrate_now, lambda s: migrate(s, m), lambda s: s, state)
        return state, cache, jax.tree.map(jnp.sum, totals)

    return {"init": jax.jit(init, donate_argnums=(2,)),
            "generation": jax.jit(generation, donate_argnums=(1,))}
