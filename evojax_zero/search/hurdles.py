"""Hurdles (So et al. 2019, used by AutoML-Zero): staged evaluation of each child.

A child is first scored on the first ``num_tasks`` search tasks. Only if that partial
fitness clears the hurdle is it scored on the remaining tasks; otherwise its fitness is the
partial one (combined over the first tasks only), and the train steps of the remaining
tasks are never spent. The hurdle is either a fixed value (``threshold``) or a percentile
of the current population's fitness (``percentile``; So et al. use the population mean at
the time a hurdle is set, which the "mean" option reproduces).

The hurdled step is :meth:`_Kernels.step` with a different *evaluate*: ask -> stage 1 on
all ``B`` children -> stage 2 on the survivors only (compacted, chunked, dynamic trip
count, as the FEC path does) -> tell, all inside the same jitted ``lax.scan``. The initial
population is evaluated in full (there is no population to set a hurdle from yet).
Stage 2 tasks fold their random keys from their index within the remaining tasks, so a
program using random ops can score differently than without hurdles; deterministic
programs score bit-identically.

With the FEC each stage goes through the cache on its own tasks' pairs (keys from one
pre-run over all tasks, so a pair's key names its task index in the whole search): a cached
pair gives the fitness its evaluation would (up to FEC's own hash equivalence), and a child
stopped at the hurdle never looks up or fills its stage-2 pairs (:data:`SKIP_KEY`).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from evojax_zero.program.tasks import Tasks
from evojax_zero.search import fec as fec_lib
from evojax_zero.search.distributed import to_host
from evojax_zero.search.loop import Search, SearchConfig, SearchState, StepStats, _Kernels


@dataclasses.dataclass(frozen=True)
class HurdleConfig:
    """``num_tasks``: tasks of stage 1 (>= 1, < the search's task count). Exactly one of
    ``threshold`` (fixed fitness) or ``percentile`` (0..100 of the population's fitness, or
    ``"mean"`` for the population mean as So et al.)."""

    num_tasks: int = 1
    threshold: float | None = None
    percentile: float | str | None = None

    def __post_init__(self):
        n = self.num_tasks
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"HurdleConfig.num_tasks must be an int >= 1, got {n!r}")
        if (self.threshold is None) == (self.percentile is None):
            raise ValueError("HurdleConfig needs exactly one of threshold= (a fitness) or "
                             "percentile= (0..100 or 'mean'); got "
                             f"threshold={self.threshold!r}, percentile={self.percentile!r}")
        if self.threshold is not None and not (
                isinstance(self.threshold, int | float) and np.isfinite(self.threshold)):
            raise ValueError(f"HurdleConfig.threshold must be a finite number, got "
                             f"{self.threshold!r}")
        p = self.percentile
        if p is not None and p != "mean" and not (
                isinstance(p, int | float) and not isinstance(p, bool) and 0 <= p <= 100):
            raise ValueError(f"HurdleConfig.percentile must be in [0, 100] or 'mean', got {p!r}")

    def check(self, num_tasks: int) -> None:
        if self.num_tasks >= num_tasks:
            raise ValueError(f"HurdleConfig.num_tasks ({self.num_tasks}) must be below the "
                             f"number of search tasks ({num_tasks}); fix: fewer stage-1 tasks "
                             f"or more search tasks")


@struct.dataclass
class HurdleStats(StepStats):
    """StepStats plus the children stopped at the hurdle (int32 per step)."""

    stopped: jax.Array


@dataclasses.dataclass(frozen=True)
class HurdleCounters:
    """What the hurdles saved in one search (exact host ints)."""

    children: int = 0  # children that met a hurdle (initial population excluded)
    stopped: int = 0  # of which stopped at it
    pairs_avoided: int = 0  # (program, task) evaluations not run
    train_steps_avoided: int = 0

    def to_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> HurdleCounters:
        names = {f.name for f in dataclasses.fields(cls)}
        if set(d) != names:
            raise ValueError(f"hurdle counters must have the fields {sorted(names)}, got "
                             f"{sorted(d)}")
        return cls(**{k: int(v) for k, v in d.items()})


# The FEC key that children stopped at the hurdle look up for their stage-2 tasks instead of
# their own: static shapes need a key for every (child, task) pair, and this one never comes
# from a pre-run (a 64-bit WellMixedHash equal to it is a 2**-64 event). It occupies one cache
# entry whose value is never read back for a real pair, and is left out of the counters.
SKIP_KEY = (0x5EED5EED, 0xD15EA5ED)


class _HurdleKernels(_Kernels):
    """The generation with every batch of children evaluated through the hurdle (with or
    without the FEC cache)."""

    def __init__(self, config: SearchConfig, mesh, hurdle: HurdleConfig):
        self.hurdle = hurdle
        super().__init__(config, mesh)

    def _hurdle_value(self, fitness):
        h = self.hurdle
        if h.threshold is not None:
            return jnp.asarray(h.threshold, jnp.float32)
        finite = jnp.where(jnp.isfinite(fitness), fitness, 0.0)
        if h.percentile == "mean":
            return finite.mean()
        return jnp.percentile(finite, h.percentile)

    def step(self, carry, tasks):
        state, cache = carry
        key, k_ask, k_eval = jax.random.split(state.key, 3)
        children = self._shard(self.ask(k_ask, state.evolution))
        hurdle = self._hurdle_value(state.evolution.fitness)
        fitness, cache, stats = self.evaluate_hurdled(children, k_eval, cache, tasks, hurdle)
        evolution = self.engine.tell(state.evolution, children, fitness)
        return (SearchState(evolution, key), cache), stats

    def evaluate_hurdled(self, children, key, cache, tasks: Tasks, hurdle):
        """Fitness [B], the FEC cache state and :class:`HurdleStats` of a batch of children:
        stage 1 scores every child on the first ``k`` tasks; a child whose mean there is
        ``>= hurdle`` is scored on the other tasks too (stage 2) and gets the mean over all
        tasks, the others keep their stage-1 mean. With the FEC each stage looks its
        (child, task) pairs up in the cache (keys from one pre-run over all tasks, so task
        indices are the search's) and evaluates only the misses; children stopped at the
        hurdle never touch the cache for stage-2 tasks."""
        B, T, k = children.batch_shape[0], tasks.num_tasks, self.hurdle.num_tasks
        first, rest = tasks[:k], tasks[k:]
        k1, k2 = jax.random.split(key)
        zero = jnp.zeros((), jnp.int32)
        if self.fec is None:
            stage1 = self.evaluator.per_task(children, first, k1).astype(jnp.float32)
            passed = self.evaluator.combine(stage1) >= hurdle
            n_pass = passed.sum(dtype=jnp.int32)
            stage2 = self._evaluate_selected(children, _first(passed), n_pass, k2, rest)
            stats = HurdleStats(zero, B * k + n_pass * (T - k), zero, B - n_pass)
        else:
            train_error, valid_error, prerun_steps = self._prerun_trace(children, tasks)
            hashes = self.fec.hash(train_error, valid_error, tasks.num_train * tasks.num_epochs)
            stage1, cache, ev1, hit1 = self._fec_stage(children, hashes[:, :k], None, k1,
                                                       first, cache)
            passed = self.evaluator.combine(stage1) >= hurdle
            n_pass = passed.sum(dtype=jnp.int32)
            stage2, cache, ev2, hit2 = self._fec_stage(children, hashes[:, k:], passed, k2,
                                                       rest, cache)
            stats = HurdleStats(prerun_steps.sum(dtype=jnp.int32), ev1 + ev2, hit1 + hit2,
                                B - n_pass)
        full = self.evaluator.combine(jnp.concatenate([stage1, stage2], axis=1))
        fitness = jnp.where(passed, full, self.evaluator.combine(stage1))
        return fitness, cache, stats

    def _fec_stage(self, children, hashes, active, key, tasks, cache):
        """Per-task fitness [B, t] of ``tasks`` through the FEC cache for the ``active``
        children (None: all; inactive rows look up :data:`SKIP_KEY` and come back 0);
        returns it with the cache and the evaluated / hit pair counts of active rows."""
        if active is not None:
            skip = jnp.asarray(SKIP_KEY, jnp.uint32)
            hashes = jnp.where(active[:, None, None], hashes, skip)
        cache, source, cached = self.fec.lookup(cache, hashes)
        miss = source == -1
        if active is not None:
            miss = miss & active[:, None]
        need = miss.any(axis=1)
        per_task = self._evaluate_selected(children, _first(need), need.sum(dtype=jnp.int32),
                                           key, tasks)
        cache = self.fec.fill(cache, hashes, source, per_task)
        out = fec_lib.resolve(source, cached, per_task)
        hit = source != -1
        if active is not None:
            out = jnp.where(active[:, None], out, 0.0)
            hit = hit & active[:, None]
        return (out.astype(jnp.float32), cache, miss.sum(dtype=jnp.int32),
                hit.sum(dtype=jnp.int32))


def _first(mask):
    """Indices with ``mask`` first, each group in order (int32 [B])."""
    return jnp.argsort(~mask, stable=True).astype(jnp.int32)


@functools.lru_cache(maxsize=16)
def _kernels(config: SearchConfig, mesh, hurdle: HurdleConfig) -> _HurdleKernels:
    return _HurdleKernels(config, mesh, hurdle)


class HurdleSearch(Search):
    """:class:`Search` whose generations evaluate children through a hurdle;
    :attr:`hurdle_counters` say what it saved."""

    def __init__(self, config: SearchConfig, tasks: Tasks, hurdle: HurdleConfig, mesh=None):
        if not isinstance(hurdle, HurdleConfig):
            raise ValueError(f"hurdle must be a HurdleConfig, got {type(hurdle).__name__}")
        hurdle.check(tasks.num_tasks)
        super().__init__(config, tasks, mesh)
        self.hurdle = hurdle
        self.kernels = _kernels(config, mesh, hurdle)
        self.engine, self.evaluator, self.fec = (self.kernels.engine, self.kernels.evaluator,
                                                 self.kernels.fec)
        self.hurdle_counters = HurdleCounters()

    def init(self, key: jax.Array) -> SearchState:
        self.hurdle_counters = HurdleCounters()
        return super().init(key)

    def _count(self, stats: StepStats) -> None:
        super()._count(stats)
        if not isinstance(stats, HurdleStats):
            return
        T, k = self.tasks.num_tasks, self.hurdle.num_tasks
        stopped = int(np.sum(to_host(stats.stopped), dtype=np.int64))
        h = self.hurdle_counters
        self.hurdle_counters = HurdleCounters(
            children=h.children + self.config.population_size,
            stopped=h.stopped + stopped,
            pairs_avoided=h.pairs_avoided + stopped * (T - k),
            train_steps_avoided=h.train_steps_avoided + stopped * (T - k) * self.train_per_task)
