"""Driving an algorithm: a Python ask/tell loop for any objective, and a jitted,
vectorized ``lax.scan`` loop for JAX objectives."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from tqdm.auto import tqdm

from nas.space import DNA, Space

TRACE_COUNTS: dict[str, int] = {"ask": 0, "tell": 0, "scan": 0}


@functools.lru_cache(maxsize=64)
def _jitted(algorithm: Any) -> tuple[Callable, Callable, Callable]:
    def ask(key, state):
        TRACE_COUNTS["ask"] += 1
        return algorithm.ask(key, state)

    def tell(state, dna, reward):
        TRACE_COUNTS["tell"] += 1
        return algorithm.tell(state, dna, reward)

    return jax.jit(algorithm.init), jax.jit(ask), jax.jit(tell)


@dataclasses.dataclass
class Trial:
    """One architecture to evaluate: its id, DNA and materialized value."""

    id: int
    dna: DNA
    value: Any
    tuner: Tuner
    reward: float | None = None
    stopped_at: int | None = None
    measurements: list[tuple[int, float]] = dataclasses.field(default_factory=list)

    def report(self, step: int, value: float) -> bool:
        """Record an intermediate measurement; returns True if the trial should stop."""
        self.measurements.append((step, float(value)))
        policy = self.tuner.early_stopping
        stop = bool(policy is not None and policy.should_stop(self.id, step, float(value)))
        if stop:
            self.stopped_at = step
        return stop

    def summary(self) -> str:
        return f"trial {self.id}: reward={self.reward} {self.tuner.space.decode(self.dna)}"


class Tuner:
    """Ask/tell over any Python objective (e.g. one that trains a model).

    Batches of ``algorithm.batch_size`` DNA are drawn with the jitted ``ask`` and given
    out one trial at a time; when the whole batch has been told, the jitted ``tell``
    updates the algorithm."""

    def __init__(self, algorithm: Any, seed: int = 0, early_stopping: Any = None,
                 materialize: bool = True):
        self.algorithm = algorithm
        self.space: Space = algorithm.space
        self.early_stopping = early_stopping
        self.materialize = materialize
        self._init, self._ask, self._tell = _jitted(algorithm)
        key = jax.random.key(seed)
        self._key, k_init = jax.random.split(key)
        self.state = self._init(k_init)
        self._batch: DNA | None = None
        self._next = 0
        self._base = 0
        self._rewards = np.zeros(algorithm.batch_size, np.float32)
        self._told = np.zeros(algorithm.batch_size, bool)
        self.history: list[Trial] = []

    def ask(self) -> Trial:
        """The next trial to evaluate."""
        b = self.algorithm.batch_size
        if self._batch is None or self._next == b:
            if self._batch is not None and not self._told.all():
                raise ValueError(
                    f"tell() the {int((~self._told).sum())} pending trials of this batch "
                    f"(batch_size={b}) before asking for more")
            self._key, k = jax.random.split(self._key)
            self._batch = self._ask(k, self.state)
            self._batch_np = jax.tree.map(np.asarray, self._batch)
            self._next = 0
            self._told[:] = False
            self._base = len(self.history)
        i = self._next
        self._next += 1
        dna = DNA(jnp.asarray(self._batch_np.ints[i]), jnp.asarray(self._batch_np.floats[i]))
        value = self.space.materialize(dna) if self.materialize else None
        trial = Trial(len(self.history), dna, value, self)
        self.history.append(trial)
        return trial

    def tell(self, trial: Trial, reward: float) -> None:
        """Report a trial's final reward (higher is better; NaN means failed)."""
        i = trial.id - self._base
        pending = self._batch is not None and 0 <= i < self.algorithm.batch_size
        if trial.tuner is not self or not pending or self._told[i]:
            raise ValueError(f"trial {trial.id} is not pending in this tuner")
        trial.reward = float(reward)
        self._rewards[i] = reward
        self._told[i] = True
        if self._told.all() and self._next == self.algorithm.batch_size:
            self.state = self._tell(self.state, self._batch, jnp.asarray(self._rewards))

    @property
    def best(self) -> Trial | None:
        done = [t for t in self.history if t.reward is not None and np.isfinite(t.reward)]
        return max(done, key=lambda t: t.reward) if done else None


def search(objective: Callable[..., float], algorithm: Any, num_trials: int, seed: int = 0,
           early_stopping: Any = None, pass_trial: bool = False, progress: bool = True,
           ) -> Tuner:
    """Run ``num_trials`` trials of ``objective(value)`` (or ``objective(value, trial)``
    when ``pass_trial``, so it can ``trial.report``); returns the :class:`Tuner`."""
    if not isinstance(num_trials, int) or num_trials < 1:
        raise ValueError(f"num_trials must be an int >= 1, got {num_trials!r}")
    tuner = Tuner(algorithm, seed=seed, early_stopping=early_stopping)
    for _ in tqdm(range(num_trials), disable=not progress, desc="nas.search"):
        trial = tuner.ask()
        reward = objective(trial.value, trial) if pass_trial else objective(trial.value)
        tuner.tell(trial, reward)
    # tell() flushes whole batches only; a partial last batch is scored but not learned from
    return tuner


@struct.dataclass
class VectorizedResult:
    """Final algorithm state, rewards float32[num_steps, batch] and best-so-far curve."""

    state: Any
    rewards: jax.Array
    best_so_far: jax.Array  # float32[num_steps]


@functools.lru_cache(maxsize=64)
def _scan_fn(algorithm: Any, objective: Callable, num_steps: int) -> Callable:
    def run(key, state):
        TRACE_COUNTS["scan"] += 1

        def step(state, key):
            dna = algorithm.ask(key, state)
            reward = jax.vmap(objective)(dna).astype(jnp.float32)
            state = algorithm.tell(state, dna, reward)
            return state, (reward, state.best.reward)

        state, (rewards, best) = jax.lax.scan(step, state, jax.random.split(key, num_steps))
        return VectorizedResult(state, rewards, best)

    return jax.jit(run)


def run_vectorized(algorithm: Any, objective: Callable[[DNA], jax.Array], key: jax.Array,
                   num_steps: int, state: Any = None) -> VectorizedResult:
    """One jitted ``lax.scan`` of ``num_steps`` ask -> ``vmap(objective)`` -> tell steps.

    ``objective`` maps one DNA to a scalar reward (pure JAX). Pass ``state`` to resume."""
    if not isinstance(num_steps, int) or num_steps < 1:
        raise ValueError(f"num_steps must be an int >= 1, got {num_steps!r}")
    k_init, k_run = jax.random.split(key)
    if state is None:
        state = _jitted(algorithm)[0](k_init)
    return _scan_fn(algorithm, objective, num_steps)(k_run, state)
