"""Batched regularized evolution of programs, one jitted generation at a time.

One step: ``B`` tournaments (``T`` draws with replacement, first best wins), ``B`` mutated
children evaluated in one vmapped call, the ``B`` oldest members replaced. With ``B = 1``
this is the reference's algorithm; a *generation* is ``P / B`` steps (``P`` evaluations),
and the train-step budget is checked between generations, as the reference does.

There is one path. A generation is one jitted ``lax.scan`` of :meth:`_Kernels.step`:
ask -> evaluate -> tell, where *evaluate* (:meth:`_Kernels.evaluate`) is either a full
evaluation (FEC off) or: pre-run trace -> ``fec.hash`` -> ``fec.lookup`` -> full evaluation
of only the programs with a miss (compacted, in chunks, inside a ``fori_loop`` with a
dynamic trip count) -> ``fec.fill``. The FEC cache (``evojax_zero.search.fec``: host or
native, one interface) is a state pytree threaded through the scan. The initial population
is evaluated by the same ``evaluate``, in ``P / B`` chunks.

The search state is a pytree (:class:`SearchState`), the exact host counters are one
:class:`SearchCounters`, and the FEC cache converts to arrays (:meth:`Search.cache_arrays`);
``evojax_zero.experiment.checkpoint`` saves all three. Train steps are counted as the
reference's budget does, except that an early-stopped full run counts its requested steps
(slightly conservative).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import weakref

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from jax.sharding import NamedSharding, PartitionSpec

from evojax_zero.engine.regularized import EvolutionEngine, EvolutionState
from evojax_zero.evaluate.evaluator import EvalConfig, Evaluator
from evojax_zero.program.programs import Program, ProgramSpec
from evojax_zero.program.tasks import Tasks
from evojax_zero.search import fec as fec_lib
from evojax_zero.search import initial as algorithms
from evojax_zero.search import native_ask
from evojax_zero.search.distributed import put, to_host
from evojax_zero.search.fec import FECConfig
from evojax_zero.search.mutation import MutationConfig, mutate

FEC_SEED = 235732282  # the reference reseeds the FEC pre-run generator to this


@dataclasses.dataclass(frozen=True)
class SearchConfig:
    """Everything a regularized-evolution run needs besides its tasks and seed.

    ``fec``: ``"auto"`` | ``"host"`` | ``"native"`` | ``"off"`` (or True/False/None, or an
    :class:`FECConfig` for the cache's sizes); stored as an ``FECConfig`` or None (off).
    """

    spec: ProgramSpec
    mutation: MutationConfig
    population_size: int = 1000
    tournament_size: int = 10
    batch_size: int = 1
    initial_population: str = "random"
    sizes_init: tuple[int, int, int] = (1, 1, 1)
    fec: FECConfig | str | bool | None = None
    max_abs_error: float = 100.0
    combine: str = "mean"
    backend: str = "auto"

    def __post_init__(self):
        if not isinstance(self.spec, ProgramSpec):
            raise ValueError(f"SearchConfig.spec must be a ProgramSpec, got {self.spec!r}")
        if not isinstance(self.mutation, MutationConfig):
            raise ValueError("SearchConfig.mutation must be a MutationConfig")
        self.mutation.check(self.spec)
        EvolutionEngine(self.population_size, self.tournament_size, self.batch_size)
        if self.population_size % self.batch_size:
            raise ValueError(f"SearchConfig.batch_size ({self.batch_size}) must divide "
                             f"population_size ({self.population_size})")
        algorithms.as_algorithm(self.initial_population)
        object.__setattr__(self, "sizes_init", tuple(int(s) for s in self.sizes_init))
        object.__setattr__(self, "fec", fec_lib.as_fec_config(self.fec))
        EvalConfig(max_abs_error=self.max_abs_error, combine=self.combine)


@struct.dataclass
class SearchState:
    """Device state: the evolution state and the search's random key."""

    evolution: EvolutionState
    key: jax.Array


@dataclasses.dataclass(frozen=True)
class SearchCounters:
    """Exact host counters of one experiment's search (Python ints), saved as a whole."""

    individuals: int = 0
    train_steps: int = 0
    fec_hits: int = 0
    fec_lookups: int = 0

    def to_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> SearchCounters:
        names = {f.name for f in dataclasses.fields(cls)}
        if set(d) != names:
            raise ValueError(f"counters must have the fields {sorted(names)}, got {sorted(d)}")
        return cls(**{k: int(v) for k, v in d.items()})

    @property
    def fec_hit_rate(self) -> float | None:
        return self.fec_hits / self.fec_lookups if self.fec_lookups else None


@struct.dataclass
class StepStats:
    """What one step (or, stacked, a generation) adds to the counters: pre-run train steps,
    fully evaluated (program, task) pairs and FEC hits (int32 per step)."""

    prerun_steps: jax.Array
    evaluated_pairs: jax.Array
    fec_hits: jax.Array


def check_tasks(config: SearchConfig, tasks: Tasks) -> None:
    """The tasks fit the config: same feature size, enough examples for the FEC pre-run."""
    if tasks.feature_size != config.spec.feature_size:
        raise ValueError(f"tasks have feature size {tasks.feature_size}; the spec says "
                         f"{config.spec.feature_size}")
    if config.fec is not None:
        f = config.fec
        if f.num_train_examples > tasks.num_train or f.num_valid_examples > tasks.num_valid:
            raise ValueError("FEC pre-run needs num_train/valid_examples <= the task's")


class Search:
    """Regularized evolution of programs on a fixed batch of search tasks.

    ``init(key)`` builds and evaluates the initial population, ``generation(state)`` runs
    ``P`` more evaluations; :attr:`counters` and the FEC cache (:attr:`fec`, with its state
    in :attr:`cache`) are kept here between calls.
    """

    def __init__(self, config: SearchConfig, tasks: Tasks, mesh=None):
        check_tasks(config, tasks)
        self.config = config
        self.tasks = tasks
        self.mesh = mesh
        # Jitted kernels take the tasks as an argument and are shared by every Search with
        # the same config and mesh: new experiments (new task seeds) do not recompile.
        self.kernels = _kernels(config, mesh)
        self.engine, self.evaluator, self.fec = (self.kernels.engine, self.kernels.evaluator,
                                                 self.kernels.fec)
        self.train_per_task = tasks.num_train * tasks.num_epochs
        self.counters = SearchCounters()
        self.cache = None  # the FEC cache's state (None without FEC)
        self._release = None

    # -- the FEC cache ------------------------------------------------------------------

    def _set_cache(self, cache) -> None:
        if self._release is not None:
            self._release()
        self.cache = cache
        self._release = (weakref.finalize(self, self.fec.release, cache)
                         if self.fec is not None else None)

    def cache_arrays(self) -> dict[str, np.ndarray] | None:
        """The FEC cache as ``fec.ARRAY_FIELDS`` arrays (None without FEC)."""
        return None if self.fec is None else self.fec.to_arrays(self.cache)

    def load_cache(self, arrays: dict[str, np.ndarray] | None) -> None:
        """Replace the FEC cache by ``arrays`` (from :meth:`cache_arrays`, either kind)."""
        if self.fec is None:
            if arrays is not None:
                raise ValueError("this search has no FEC cache to load arrays into")
            return
        self._set_cache(self.fec.from_arrays(arrays if arrays is not None
                                             else fec_lib.empty_arrays(
                                                 self.config.fec.cache_size)))

    def _count(self, stats: StepStats) -> None:
        evaluated = int(np.sum(to_host(stats.evaluated_pairs), dtype=np.int64))
        hits = int(np.sum(to_host(stats.fec_hits), dtype=np.int64))
        c = self.counters
        self.counters = SearchCounters(
            individuals=c.individuals + self.config.population_size,
            train_steps=(c.train_steps + int(np.sum(to_host(stats.prerun_steps), dtype=np.int64))
                         + evaluated * self.train_per_task),
            fec_hits=c.fec_hits + hits,
            fec_lookups=c.fec_lookups + (evaluated + hits if self.fec is not None else 0))

    # -- initial population -------------------------------------------------------------

    def init(self, key: jax.Array) -> SearchState:
        """Build and evaluate the initial population (P evaluations); resets the counters
        and the FEC cache."""
        c = self.config
        self.counters = SearchCounters()
        self._set_cache(self.fec.init() if self.fec is not None else None)
        k_init, k_eval, k_next = jax.random.split(key, 3)
        pop = algorithms.initial_population(c.initial_population, c.spec, c.population_size,
                                            c.sizes_init, k_init, c.mutation)
        pop = jax.tree.map(jnp.asarray, pop)
        fitness, cache, stats = self.kernels.evaluate_population(pop, k_eval, self.cache,
                                                                 self.tasks)
        self.cache = cache
        self._count(stats)
        return self.place(SearchState(self.engine.init(pop, fitness), k_next))

    def abstract_state(self, key: jax.Array | None = None) -> SearchState:
        """Shapes and dtypes of :meth:`init`'s state, without evaluating anything."""
        return abstract_state(self.config, key)

    def place(self, state: SearchState) -> SearchState:
        """Shard the population over the mesh (no-op without one)."""
        if self.mesh is not None:
            sh = NamedSharding(self.mesh, PartitionSpec(self.mesh.axis_names[0]))
            rep = NamedSharding(self.mesh, PartitionSpec())
            state = state.replace(evolution=state.evolution.replace(
                population=put(state.evolution.population, sh),
                fitness=put(state.evolution.fitness, sh)))
            state = state.replace(key=put(state.key, rep))
        return state

    # -- running ------------------------------------------------------------------------

    def generation(self, state: SearchState) -> SearchState:
        """P more evaluations (P / B steps)."""
        state, self.cache, stats = self.kernels.generation(state, self.cache, self.tasks)
        self._count(stats)
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


def abstract_state(config: SearchConfig, key: jax.Array | None = None) -> SearchState:
    """Shapes and dtypes of a search state for ``config`` (``jax.eval_shape``)."""
    c = config
    engine = EvolutionEngine(c.population_size, c.tournament_size, c.batch_size)

    def build(key):
        pop = algorithms.initial_population(c.initial_population, c.spec, c.population_size,
                                            c.sizes_init, key, c.mutation)
        pop = jax.tree.map(jnp.asarray, pop)
        return SearchState(engine.init(pop, jnp.zeros(c.population_size)), key)

    return jax.eval_shape(build, jax.random.key(0) if key is None else key)


class _Kernels:
    """The jitted generation and initial evaluation for one (config, mesh); tasks and the
    FEC cache state are arguments."""

    def __init__(self, config: SearchConfig, mesh):
        self.config = config
        self.mesh = mesh
        self.engine = EvolutionEngine(config.population_size, config.tournament_size,
                                      config.batch_size)
        self.evaluator = Evaluator(config.spec, EvalConfig(
            max_abs_error=config.max_abs_error, combine=config.combine), config.backend)
        self.prerun = self.fec = None
        if config.fec is not None:
            f = config.fec
            self.prerun = Evaluator(config.spec, EvalConfig(
                num_train_examples=f.num_train_examples, num_valid_examples=f.num_valid_examples,
                max_abs_error=config.max_abs_error), config.backend)
            self.fec = fec_lib.make(f, config.max_abs_error, self.prerun.backend)
        # The ask in one native call when it gives the XLA ask's children (no mesh: the
        # call is not partitioned); see evojax_zero.search.native_ask.
        self.native_ask = mesh is None and native_ask.available()
        B = config.batch_size
        # Programs with an FEC miss are evaluated in chunks of about B / 20 (5 of 100): a
        # chunk is evaluated whole, so larger chunks evaluate more programs that hit the
        # cache (B / 8 cost 40% more CPU per demo generation); smaller ones add calls.
        self.chunk = next(c for c in range(max(1, B // 20), B + 1) if B % c == 0)
        self.steps_per_generation = config.population_size // B
        self.generation = jax.jit(self._generation, donate_argnums=(1,))
        self.evaluate_population = jax.jit(self._evaluate_population, donate_argnums=(2,))

    # -- the generation -----------------------------------------------------------------

    def _generation(self, state: SearchState, cache, tasks):
        (state, cache), stats = jax.lax.scan(lambda carry, _: self.step(carry, tasks),
                                             (state, cache), None,
                                             length=self.steps_per_generation)
        return state, cache, stats

    def step(self, carry, tasks):
        """ask -> evaluate -> tell."""
        state, cache = carry
        key, k_ask, k_eval = jax.random.split(state.key, 3)
        children = self._shard(self.ask(k_ask, state.evolution))
        fitness, cache, stats = self.evaluate(children, k_eval, cache, tasks)
        evolution = self.engine.tell(state.evolution, children, fitness)
        return (SearchState(evolution, key), cache), stats

    def ask(self, key, evolution):
        """B mutated tournament winners: ``engine.ask(key, evolution, mutate)``, natively
        when possible (same children)."""
        if self.native_ask and native_ask.applicable(key, evolution.population):
            children, _ = native_ask.ask(key, evolution, self.engine, self.config.mutation,
                                         self.config.spec)
            return children
        return self.engine.ask(key, evolution, self._mutate)[0]

    def _evaluate_population(self, population, key, cache, tasks):
        """Fitness [P] of the initial population, evaluated in P / B chunks in order."""
        B, n = self.config.batch_size, self.steps_per_generation
        chunks = jax.tree.map(lambda x: x.reshape(n, B, *x.shape[1:]), population)

        def body(cache, xs):
            children, k = xs
            fitness, cache, stats = self.evaluate(children, k, cache, tasks)
            return cache, (fitness, stats)

        cache, (fitness, stats) = jax.lax.scan(body, cache, (chunks, jax.random.split(key, n)))
        return fitness.reshape(-1), cache, stats

    # -- evaluating a batch of children -------------------------------------------------

    def evaluate(self, children, key, cache, tasks):
        """Fitness [B] of a batch of children, the new FEC cache state and the step's
        :class:`StepStats`."""
        B, T = children.batch_shape[0], tasks.num_tasks
        if self.fec is None:
            per_task = self.evaluator.per_task(children, tasks, key)
            zero = jnp.zeros((), jnp.int32)
            return (self.evaluator.combine(per_task), cache,
                    StepStats(zero, jnp.asarray(B * T, jnp.int32), zero))
        train_error, valid_error, prerun_steps = self._prerun_trace(children, tasks)
        hashes = self.fec.hash(train_error, valid_error, tasks.num_train * tasks.num_epochs)
        cache, source, cached = self.fec.lookup(cache, hashes)
        need = (source == -1).any(axis=1)
        order = jnp.argsort(~need, stable=True).astype(jnp.int32)  # misses first, in order
        per_task = self._evaluate_selected(children, order, need.sum(dtype=jnp.int32), key,
                                           tasks)
        cache = self.fec.fill(cache, hashes, source, per_task)
        fitness = self.evaluator.combine(fec_lib.resolve(source, cached, per_task))
        stats = StepStats(prerun_steps.sum(dtype=jnp.int32),
                          (source == -1).sum(dtype=jnp.int32),
                          (source != -1).sum(dtype=jnp.int32))
        return fitness, cache, stats

    def _prerun_trace(self, children, tasks):
        B = children.batch_shape[0]
        keys = jnp.broadcast_to(jax.random.key(FEC_SEED), (B,))
        tr = self.prerun.trace(children, tasks, keys)
        return tr.train_error, tr.valid_error, tr.train_steps

    def _evaluate_selected(self, children, order, n_needed, key, tasks):
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

    def _mutate(self, key, program):
        return mutate(key, program, self.config.mutation, self.config.spec)

    def _shard(self, tree):
        if self.mesh is None:
            return tree
        sh = NamedSharding(self.mesh, PartitionSpec(self.mesh.axis_names[0]))
        return jax.tree.map(
            lambda x: jax.lax.with_sharding_constraint(x, sh)
            if x.ndim and x.shape[0] % self.mesh.size == 0 else x, tree)


@functools.lru_cache(maxsize=16)
def _kernels(config: SearchConfig, mesh) -> _Kernels:
    return _Kernels(config, mesh)


def progress_line(individuals: int, elapsed_secs: float, stats: dict) -> str:
    """The reference's progress line."""
    return (f"indivs={individuals}, elapsed_secs={elapsed_secs:.0f}, mean={stats['mean']:.6f}, "
            f"stdev={stats['stdev']:.6f}, best fit={stats['best']:.6f},")
