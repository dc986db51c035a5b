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

from nas.checks import check_bool, check_callable, check_int, check_key, is_real
from nas.space import DNA, Space

TRACE_COUNTS: dict[str, int] = {"ask": 0, "tell": 0, "scan": 0}


def check_algorithm(field: str, algorithm: Any) -> None:
    """An algorithm has ``space`` (a nas.Space), ``batch_size`` and ``init/ask/tell``."""
    missing = [m for m in ("init", "ask", "tell") if not callable(getattr(algorithm, m, None))]
    if missing or not isinstance(getattr(algorithm, "space", None), Space):
        raise ValueError(
            f"{field} must be a nas search algorithm (e.g. nas.RegularizedEvolution(space)) "
            f"with a nas.Space in .space and methods init/ask/tell; got "
            f"{type(algorithm).__name__}" + (f" without {missing}" if missing else ""))
    b = getattr(algorithm, "batch_size", None)
    if not (isinstance(b, int) and not isinstance(b, bool) and b >= 1):
        raise ValueError(f"{field}.batch_size must be an int >= 1, got {b!r}")


def check_reward(field: str, reward: Any) -> float:
    """A real number; NaN (a failed trial) and -inf are allowed, +inf is not."""
    if not is_real(reward):
        raise ValueError(
            f"{field} must be a number (higher is better, NaN for a failed trial), got "
            f"{type(reward).__name__} {reward!r:.80}")
    r = float(reward)
    if r == float("inf"):
        raise ValueError(f"{field} must not be +inf (it would win every comparison); "
                         "use NaN for a failed trial")
    return r


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
        check_int("report.step", step, 0)
        value = check_reward("report.value", value)
        self.measurements.append((int(step), value))
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
        check_algorithm("Tuner.algorithm", algorithm)
        check_int("Tuner.seed", seed, 0)
        check_bool("Tuner.materialize", materialize)
        if early_stopping is not None and not callable(getattr(early_stopping, "should_stop",
                                                               None)):
            raise ValueError(
                "Tuner.early_stopping must be None or a policy with should_stop(trial_id, "
                f"step, value) such as nas.StopByRank, got {type(early_stopping).__name__}")
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
        if not isinstance(trial, Trial):
            raise ValueError(f"tell.trial must be a nas.Trial from ask(), got "
                             f"{type(trial).__name__}")
        reward = check_reward("tell.reward", reward)
        i = trial.id - self._base
        pending = self._batch is not None and 0 <= i < self.algorithm.batch_size
        if trial.tuner is not self or not pending or self._told[i]:
            raise ValueError(f"trial {trial.id} is not pending in this tuner (told already, "
                             "or from another tuner)")
        trial.reward = reward
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
    check_callable("search.objective", objective)
    check_algorithm("search.algorithm", algorithm)
    check_int("search.num_trials", num_trials, 1)
    check_bool("search.pass_trial", pass_trial)
    check_bool("search.progress", progress)
    tuner = Tuner(algorithm, seed=seed, early_stopping=early_stopping)
    for _ in tqdm(range(num_trials), disable=not progress, desc="nas.search"):
        trial = tuner.ask()
        reward = objective(trial.value, trial) if pass_trial else objective(trial.value)
        tuner.tell(trial, check_reward(f"the objective's return value (trial {trial.id})",
                                       reward))
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


def _shapes(tree: Any) -> Any:
    return jax.tree.map(lambda x: (np.shape(x), str(jnp.result_type(x))), tree)


def _check_state(algorithm: Any, expected: Any, state: Any) -> None:
    try:
        ok = _shapes(expected) == _shapes(state)
    except Exception:  # noqa: BLE001 - an unrelated object does not map like a state
        ok = False
    if not ok:
        raise ValueError(
            f"run_vectorized.state does not fit this {type(algorithm).__name__} (its pytree "
            "structure, shapes or dtypes differ): pass the .state of a VectorizedResult of "
            "the same algorithm and space, or None to start afresh")


def _check_objective(space: Space, objective: Callable) -> None:
    one = DNA(jax.ShapeDtypeStruct((space.n_int,), jnp.int32),
              jax.ShapeDtypeStruct((space.n_float,), jnp.float32))
    try:
        out = jax.eval_shape(objective, one)
    except Exception as e:  # noqa: BLE001 - report the JAX error at the boundary
        raise ValueError(
            "run_vectorized.objective must be a pure JAX function of one nas.DNA "
            f"returning a scalar reward; tracing it failed with {type(e).__name__}: "
            f"{str(e)[:300]}") from e
    leaves = jax.tree.leaves(out)
    if len(leaves) != 1 or leaves[0].shape != () or not jnp.issubdtype(leaves[0].dtype,
                                                                        jnp.number):
        raise ValueError(
            "run_vectorized.objective must return one real scalar per DNA (it is vmapped "
            f"over the batch), got {jax.tree.map(lambda x: (x.shape, str(x.dtype)), out)}")


def run_vectorized(algorithm: Any, objective: Callable[[DNA], jax.Array], key: jax.Array,
                   num_steps: int, state: Any = None) -> VectorizedResult:
    """One jitted ``lax.scan`` of ``num_steps`` ask -> ``vmap(objective)`` -> tell steps.

    ``objective`` maps one DNA to a scalar reward (pure JAX). Pass ``state`` to resume."""
    check_algorithm("run_vectorized.algorithm", algorithm)
    check_callable("run_vectorized.objective", objective)
    check_key("run_vectorized.key", key)
    check_int("run_vectorized.num_steps", num_steps, 1)
    k_init, k_run = jax.random.split(key)
    init = _jitted(algorithm)[0]
    if state is None:
        state = init(k_init)
    else:
        _check_state(algorithm, jax.eval_shape(init, k_init), state)
    _check_objective(algorithm.space, objective)
    return _scan_fn(algorithm, objective, num_steps)(k_run, state)
