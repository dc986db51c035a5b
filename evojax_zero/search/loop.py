"""Batched regularized evolution of programs on device (contract section 5).

One step: ``B`` tournaments (``T`` draws with replacement, first best wins), ``B`` mutated
children evaluated in one vmapped call, the ``B`` oldest members replaced. With ``B = 1``
this is the reference's algorithm; a *generation* is ``P / B`` steps (``P`` evaluations),
and the train-step budget is checked between generations, as the reference does.

Without FEC a whole generation is one jitted ``lax.scan``. With FEC on the native backend
it is one too: the cache is a pytree of arrays (``evojax_zero.search.fec_native``) threaded through
the scan, and each step is ask -> pre-run trace -> native hash and LRU lookup -> evaluation
of only the programs with a miss (compacted, in chunks, inside a ``fori_loop`` with a
dynamic trip count) -> native fill -> tell. Elsewhere (the XLA backend) the FEC cache lives
on the host (``evojax_zero.search.fec``) and each step is jitted ask + pre-run trace -> host hash
and lookup -> jitted evaluation of the misses -> jitted tell. Both give the same results.

The search state is a pytree (:class:`SearchState`) plus host counters
(:class:`SearchCounters`) and, with FEC, the cache (device or host);
``evojax_zero.experiment.checkpoint`` saves all three. Train steps are counted as the
reference's budget does, except that an early-stopped full run counts its requested steps
(slightly conservative).
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from evojax_zero.engine.regularized import EvolutionState, RegularizedEvolution
from evojax_zero.evaluate.evaluator import EvalConfig, Evaluator
from evojax_zero.program.programs import Program, ProgramSpec
from evojax_zero.program.tasks import Tasks
from evojax_zero.search import fec_native as fec_device
from evojax_zero.search import initial as algorithms
from evojax_zero.search.distributed import to_host
from evojax_zero.search.fec import FECCache, FECConfig, batch_hash, recorded_masks
from evojax_zero.search.mutation import MutationConfig, mutate

FEC_SEED = 235732282  # the reference reseeds the FEC pre-run generator to this


@dataclasses.dataclass(frozen=True)
class SearchConfig:
    """Everything a regularized-evolution run needs besides its tasks and seed."""

    spec: ProgramSpec
    mutation: MutationConfig
    population_size: int = 1000
    tournament_size: int = 10
    batch_size: int = 1
    initial_population: str = "random"
    sizes_init: tuple[int, int, int] = (1, 1, 1)
    fec: FECConfig | None = None
    max_abs_error: float = 100.0
    combine: str = "mean"
    backend: str = "auto"

    def __post_init__(self):
        if not isinstance(self.spec, ProgramSpec):
            raise ValueError(f"SearchConfig.spec must be a ProgramSpec, got {self.spec!r}")
        if not isinstance(self.mutation, MutationConfig):
            raise ValueError("SearchConfig.mutation must be a MutationConfig")
        self.mutation.check(self.spec)
        RegularizedEvolution(self.population_size, self.tournament_size, self.batch_size)
        if self.population_size % self.batch_size:
            raise ValueError(f"SearchConfig.batch_size ({self.batch_size}) must divide "
                             f"population_size ({self.population_size})")
        algorithms.as_algorithm(self.initial_population)
        object.__setattr__(self, "sizes_init", tuple(int(s) for s in self.sizes_init))
        if self.fec is not None and not isinstance(self.fec, FECConfig):
            raise ValueError("SearchConfig.fec must be None or an FECConfig")
        EvalConfig(max_abs_error=self.max_abs_error, combine=self.combine)


@struct.dataclass
class SearchState:
    """Device state: the evolution state and the search's random key."""

    evolution: EvolutionState
    key: jax.Array


@dataclasses.dataclass
class SearchCounters:
    """Host counters (exact Python ints)."""

    individuals: int = 0
    train_steps: int = 0
    fec_hits: int = 0
    fec_lookups: int = 0


class DeviceFECCache:
    """The FEC cache of a fused search: a :class:`fec_device.FECState` plus host counters,
    with :class:`evojax_zero.search.fec.FECCache`'s checkpoint interface."""

    def __init__(self, cache_size: int, forget_every: int):
        self.cache_size = cache_size
        self.forget_every = forget_every
        self.hits = 0
        self.misses = 0
        self.state = fec_device.init(cache_size)

    def __len__(self) -> int:
        return int(to_host(self.state.meta)[2])

    def clear(self) -> None:
        self.state = fec_device.init(self.cache_size)
        self.hits = self.misses = 0

    def state_arrays(self) -> dict[str, np.ndarray]:
        arrays = fec_device.to_lru_arrays(jax.tree.map(to_host, self.state))
        arrays["stats"] = np.array([self.hits, self.misses], np.int64)
        return arrays

    def load_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self.state = fec_device.from_lru_arrays(arrays, self.cache_size)
        self.hits, self.misses = (int(x) for x in arrays["stats"])


class Search:
    """Regularized evolution of programs on a fixed batch of search tasks."""

    def __init__(self, config: SearchConfig, tasks: Tasks, mesh=None):
        if tasks.feature_size != config.spec.feature_size:
            raise ValueError(f"tasks have feature size {tasks.feature_size}; the spec says "
                             f"{config.spec.feature_size}")
        self.config = config
        self.tasks = tasks
        self.mesh = mesh
        if config.fec is not None:
            f = config.fec
            if f.num_train_examples > tasks.num_train or f.num_valid_examples > tasks.num_valid:
                raise ValueError("FEC pre-run needs num_train/valid_examples <= the task's")
        # Jitted kernels take the tasks as an argument and are shared by every Search with
        # the same config and mesh: new experiments (new task seeds) do not recompile.
        k = _kernels(config, mesh)
        self.fused_fec = k.fused_fec
        if config.fec is None:
            self.cache = None
        elif self.fused_fec:
            self.cache = DeviceFECCache(config.fec.cache_size, config.fec.forget_every)
        else:
            self.cache = FECCache(config.fec.cache_size, config.fec.forget_every)
        self.engine, self.evaluator = k.engine, k.evaluator
        self.prerun, self.chunk = k.prerun, k.chunk
        self.steps_per_generation = config.population_size // config.batch_size
        self.train_per_task = tasks.num_train * tasks.num_epochs
        self.counters = SearchCounters()
        self._generation = k.generation
        self._ask_prerun = k.ask_prerun
        self._eval_selected = k.eval_selected
        self._tell = k.tell
        self._eval_chunks = k.eval_chunks
        self._prerun_trace_jit = k.prerun_trace
        self._fec_eval = k.fec_eval
        self._fec_generation = k.fec_generation

    # -- initial population -------------------------------------------------------------

    def init(self, key: jax.Array) -> SearchState:
        """Build and evaluate the initial population (P evaluations)."""
        c = self.config
        self.counters = SearchCounters()
        if self.cache is not None:
            self.cache.clear()
        k_init, k_eval, k_next = jax.random.split(key, 3)
        pop = algorithms.initial_population(c.initial_population, c.spec, c.population_size,
                                            c.sizes_init, k_init, c.mutation)
        pop = jax.tree.map(jnp.asarray, pop)
        fitness = self._evaluate_population(pop, k_eval)
        self.counters.individuals += c.population_size
        return self.place(SearchState(self.engine.init(pop, fitness), k_next))

    def abstract_state(self, key: jax.Array) -> SearchState:
        """Shapes and dtypes of :meth:`init`'s state, without evaluating anything."""
        c = self.config

        def build(key):
            pop = algorithms.initial_population(c.initial_population, c.spec,
                                                c.population_size, c.sizes_init, key,
                                                c.mutation)
            pop = jax.tree.map(jnp.asarray, pop)
            return SearchState(self.engine.init(pop, jnp.zeros(c.population_size)), key)

        return jax.eval_shape(build, key)

    def place(self, state: SearchState) -> SearchState:
        """Shard the population over the mesh (no-op without one)."""
        if self.mesh is not None:
            from jax.sharding import NamedSharding, PartitionSpec

            sh = NamedSharding(self.mesh, PartitionSpec(self.mesh.axis_names[0]))
            rep = NamedSharding(self.mesh, PartitionSpec())
            state = state.replace(evolution=state.evolution.replace(
                population=jax.device_put(state.evolution.population, sh),
                fitness=jax.device_put(state.evolution.fitness, sh)))
            state = state.replace(key=jax.device_put(state.key, rep))
        return state

    def _evaluate_population(self, pop: Program, key) -> jax.Array:
        B = self.config.batch_size
        n = self.config.population_size // B
        keys = jax.random.split(key, n)
        fits = []
        for i in range(n):
            chunk = jax.tree.map(lambda x, i=i: x[i * B:(i + 1) * B], pop)
            fits.append(self._evaluate_children(chunk, keys[i]))
        return jnp.concatenate(fits)

    def _evaluate_children(self, children: Program, key) -> jax.Array:
        """Fitness [B] of a batch of children (FEC when configured); counts train steps."""
        B, T = children.batch_shape[0], self.tasks.num_tasks
        if self.cache is None:
            self.counters.train_steps += B * T * self.train_per_task
            return self._eval_chunks(children, key, self.tasks)
        if self.fused_fec:
            fitness, self.cache.state, stats = self._fec_eval(children, key, self.cache.state,
                                                              self.tasks)
            self._count_fec(*(to_host(x)[None] for x in stats))
            return fitness
        tr = self._prerun_trace_jit(children, self.tasks)
        return self._fec_fitness(children, key, *tr)

    def _fec_fitness(self, children, key, train_error, valid_error, prerun_steps):
        B, T = children.batch_shape[0], self.tasks.num_tasks
        train_error, valid_error = to_host(train_error), to_host(valid_error)
        tmask, vmask = recorded_masks(train_error, valid_error, self.config.max_abs_error)
        hashes = batch_hash(train_error, tmask, valid_error, vmask,
                            np.arange(T)[None, :], self.train_per_task)
        source, cached = self.cache.lookup_batch(hashes)
        need = (source == -1).any(axis=1)
        order = np.concatenate([np.flatnonzero(need), np.flatnonzero(~need)]).astype(np.int32)
        n_needed = int(need.sum())
        if n_needed:
            per_task = np.asarray(self._eval_selected(children, jnp.asarray(order),
                                                      jnp.int32(n_needed), key, self.tasks),
                                  np.float64)
        else:
            per_task = np.zeros((B, T))
        fit = self.cache.fill(per_task, source, cached)
        self._count_fec(to_host(prerun_steps), (source == -1).sum(), (source != -1).sum())
        return self.evaluator.combine(jnp.asarray(fit, jnp.float32))

    def _count_fec(self, prerun_steps, misses, hits) -> None:
        """Add FEC statistics (scalars, or per-step arrays from a fused generation)."""
        misses = int(np.sum(misses, dtype=np.int64))
        hits = int(np.sum(hits, dtype=np.int64))
        self.counters.train_steps += (int(np.sum(prerun_steps, dtype=np.int64))
                                      + misses * self.train_per_task)
        self.counters.fec_lookups += misses + hits
        self.counters.fec_hits += hits
        if isinstance(self.cache, DeviceFECCache):  # the host cache counts its own lookups
            self.cache.hits += hits
            self.cache.misses += misses

    # -- running ------------------------------------------------------------------------

    def generation(self, state: SearchState) -> SearchState:
        """P more evaluations (P / B steps)."""
        c = self.config
        if self.cache is None:
            state = self._generation(state, self.tasks)
            self.counters.train_steps += (c.population_size * self.tasks.num_tasks
                                          * self.train_per_task)
        elif self.fused_fec:
            state, self.cache.state, stats = self._fec_generation(state, self.cache.state,
                                                                  self.tasks)
            self._count_fec(*(to_host(x) for x in stats))
        else:
            for _ in range(self.steps_per_generation):
                state, children, k_eval, tr = self._ask_prerun(state, self.tasks)
                fitness = self._fec_fitness(children, k_eval, *tr)
                state = state.replace(evolution=self._tell(state.evolution, children, fitness))
        self.counters.individuals += c.population_size
        return state

    def best(self, state: SearchState) -> tuple[Program, float]:
        prog, fit = self.engine.best(state.evolution)
        return jax.tree.map(to_host, prog), float(to_host(fit))

    @staticmethod
    def stats(state: SearchState) -> dict[str, float]:
        """Population mean, stdev (population formula, clamped) and best fitness."""
        f = to_host(state.evolution.fitness).astype(np.float64)
        mean = f.mean()
        var = max((f * f).mean() - mean * mean, 0.0)
        return {"mean": float(mean), "stdev": math.sqrt(var), "best": float(f.max())}


class _Kernels:
    """The jitted pieces of a search for one (config, mesh); tasks are arguments."""

    def __init__(self, config: SearchConfig, mesh):
        self.config = config
        self.mesh = mesh
        self.engine = RegularizedEvolution(config.population_size, config.tournament_size,
                                           config.batch_size)
        self.evaluator = Evaluator(config.spec, EvalConfig(
            max_abs_error=config.max_abs_error, combine=config.combine), config.backend)
        self.prerun = None
        if config.fec is not None:
            f = config.fec
            self.prerun = Evaluator(config.spec, EvalConfig(
                num_train_examples=f.num_train_examples, num_valid_examples=f.num_valid_examples,
                max_abs_error=config.max_abs_error), config.backend)
        B = config.batch_size
        self.chunk = next(c for c in range(max(1, B // 8), B + 1) if B % c == 0)
        self.steps_per_generation = config.population_size // B
        self.generation = jax.jit(self._generation_impl)
        self.ask_prerun = jax.jit(self._ask_prerun_impl)
        self.eval_selected = jax.jit(self._eval_selected_impl)
        self.tell = jax.jit(self.engine.tell)
        # FEC inside the jitted step: needs the native custom calls for the pre-run, the hash
        # and the cache (the pre-run trace must then be the native one too).
        self.fused_fec = (config.fec is not None and self.evaluator.backend == "native"
                          and self.prerun.backend == "native" and fec_device.supported())
        self.fec_eval = jax.jit(self._fec_eval_impl, donate_argnums=(2,))
        self.fec_generation = jax.jit(self._fec_generation_impl, donate_argnums=(1,))
        self.eval_chunks = jax.jit(self._eval_chunks_impl)
        self.prerun_trace = jax.jit(self._prerun_trace)

    def _mutate(self, key, program):
        return mutate(key, program, self.config.mutation, self.config.spec)

    def _shard(self, tree):
        if self.mesh is None:
            return tree
        from jax.sharding import NamedSharding, PartitionSpec

        sh = NamedSharding(self.mesh, PartitionSpec(self.mesh.axis_names[0]))
        return jax.tree.map(
            lambda x: jax.lax.with_sharding_constraint(x, sh)
            if x.ndim and x.shape[0] % self.mesh.size == 0 else x, tree)

    def _eval_chunks_impl(self, children, key, tasks):
        return self.evaluator.combine(self.evaluator.per_task(children, tasks, key))

    # -- without FEC: one jitted scan per generation ------------------------------------

    def _generation_impl(self, state: SearchState, tasks) -> SearchState:
        def step(state, _):
            key, k_ask, k_eval = jax.random.split(state.key, 3)
            children, _ = self.engine.ask(k_ask, state.evolution, self._mutate)
            children = self._shard(children)
            fitness = self.evaluator.combine(self.evaluator.per_task(children, tasks, k_eval))
            evo = self.engine.tell(state.evolution, children, fitness)
            return SearchState(evo, key), None

        state, _ = jax.lax.scan(step, state, None, length=self.steps_per_generation)
        return state

    # -- with FEC -----------------------------------------------------------------------

    def _ask_prerun_impl(self, state: SearchState, tasks):
        key, k_ask, k_eval = jax.random.split(state.key, 3)
        children, _ = self.engine.ask(k_ask, state.evolution, self._mutate)
        tr = self._prerun_trace(children, tasks)
        return SearchState(state.evolution, key), children, k_eval, tr

    def _prerun_trace(self, children, tasks):
        B = children.batch_shape[0]
        keys = jnp.broadcast_to(jax.random.key(FEC_SEED), (B,))
        tr = self.prerun.trace(children, tasks, keys)
        return tr.train_error, tr.valid_error, tr.train_steps

    def _fec_eval_impl(self, children, key, fec_state, tasks):
        """FEC fitness [B] of ``children`` with the device cache; also returns the new cache
        and the step's (pre-run train steps, misses, hits)."""
        f = self.config.fec
        train_error, valid_error, prerun_steps = self._prerun_trace(children, tasks)
        hashes = fec_device.hash_prerun(train_error, valid_error, self.config.max_abs_error,
                                        tasks.num_train * tasks.num_epochs)
        fec_state, source, cached = fec_device.lookup(fec_state, hashes, f.cache_size,
                                                      f.forget_every)
        need = (source == -1).any(axis=1)
        order = jnp.argsort(~need, stable=True).astype(jnp.int32)  # misses first, in order
        per_task = self._eval_selected_impl(children, order, need.sum(dtype=jnp.int32), key,
                                            tasks)
        fec_state = fec_device.fill(fec_state, hashes, source, per_task)
        fitness = self.evaluator.combine(fec_device.resolve(source, cached, per_task))
        stats = (prerun_steps.sum(), (source == -1).sum(), (source != -1).sum())
        return fitness, fec_state, stats

    def _fec_generation_impl(self, state: SearchState, fec_state, tasks):
        def step(carry, _):
            state, fec_state = carry
            key, k_ask, k_eval = jax.random.split(state.key, 3)
            children, _ = self.engine.ask(k_ask, state.evolution, self._mutate)
            children = self._shard(children)
            fitness, fec_state, stats = self._fec_eval_impl(children, k_eval, fec_state, tasks)
            evo = self.engine.tell(state.evolution, children, fitness)
            return (SearchState(evo, key), fec_state), stats

        (state, fec_state), stats = jax.lax.scan(step, (state, fec_state), None,
                                                 length=self.steps_per_generation)
        return state, fec_state, stats

    def _eval_selected_impl(self, children, order, n_needed, key, tasks):
        """Per-task fitness [B, T] of the programs ``order[:n_needed]`` (others 0)."""
        B, c = self.config.batch_size, self.chunk
        keys = jax.random.split(key, B)
        out = jnp.zeros((B, tasks.num_tasks), jnp.float32)

        def body(i, out):
            idx = jax.lax.dynamic_slice(order, (i * c,), (c,))
            progs = jax.tree.map(lambda x: x[idx], children)
            f = self.evaluator.per_task(progs, tasks, keys[idx]).astype(jnp.float32)
            return out.at[idx].set(f)

        n_chunks = (n_needed + c - 1) // c
        return jax.lax.fori_loop(0, n_chunks, body, out)


@functools.lru_cache(maxsize=16)
def _kernels(config: SearchConfig, mesh) -> _Kernels:
    return _Kernels(config, mesh)


def progress_line(individuals: int, elapsed_secs: float, stats: dict) -> str:
    """The reference's progress line."""
    return (f"indivs={individuals}, elapsed_secs={elapsed_secs:.0f}, mean={stats['mean']:.6f}, "
            f"stdev={stats['stdev']:.6f}, best fit={stats['best']:.6f},")
