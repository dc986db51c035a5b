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

Hurdles and the FEC are exclusive here (``ValueError``): a cached fitness would need the
stage it came from.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from evojax_zero.program.tasks import Tasks
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


class _HurdleKernels(_Kernels):
    def __init__(self, config: SearchConfig, mesh, hurdle: HurdleConfig):
        if config.fec is not None:
            raise ValueError("hurdles and the FEC cannot be combined here; fix: fec='off' "
                             "with a hurdle, or no hurdle")
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
        children, _ = self.engine.ask(k_ask, state.evolution, self._mutate)
        children = self._shard(children)
        hurdle = self._hurdle_value(state.evolution.fitness)
        fitness, stats = self.evaluate_hurdled(children, k_eval, tasks, hurdle)
        evolution = self.engine.tell(state.evolution, children, fitness)
        return (SearchState(evolution, key), cache), stats

    def evaluate_hurdled(self, children, key, tasks: Tasks, hurdle):
        """Fitness [B] and :class:`HurdleStats` of a batch of children."""
        B, T, k = children.batch_shape[0], tasks.num_tasks, self.hurdle.num_tasks
        first, rest = tasks[:k], tasks[k:]
        k1, k2 = jax.random.split(key)
        stage1 = self.evaluator.per_task(children, first, k1).astype(jnp.float32)
        partial = self.evaluator.combine(stage1)
        passed = partial >= hurdle
        order = jnp.argsort(~passed, stable=True).astype(jnp.int32)
        n_pass = passed.sum(dtype=jnp.int32)
        stage2 = self._evaluate_selected(children, order, n_pass, k2, rest)
        full = self.evaluator.combine(jnp.concatenate([stage1, stage2], axis=1))
        fitness = jnp.where(passed, full, partial)
        zero = jnp.zeros((), jnp.int32)
        return fitness, HurdleStats(zero, B * k + n_pass * (T - k), zero, B - n_pass)


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
        self.engine, self.evaluator = self.kernels.engine, self.kernels.evaluator
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
