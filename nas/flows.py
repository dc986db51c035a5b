"""Search flows: an architecture search nested in a hyper-parameter search, and
objectives that trade accuracy against a cost (parameter count or latency)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from tqdm.auto import tqdm

from nas.checks import check_callable, check_int, check_real
from nas.space import Space
from nas.tuner import Trial, Tuner


@dataclasses.dataclass
class NestedResult:
    """Best hyper-parameters, best architecture under them, and its reward."""

    hparams: Any
    architecture: Any
    reward: float
    outer: Tuner
    inner: dict[int, Tuner]  # outer trial id -> its inner tuner


def nested_search(
    objective: Callable[[Any, Any], float],
    outer_algorithm: Any,
    inner_algorithm: Callable[[Any], Any],
    outer_trials: int,
    inner_trials: int,
    seed: int = 0,
    progress: bool = True,
) -> NestedResult:
    """Hyper-parameter search whose reward for each setting ``hp`` is the best reward of
    an architecture search ``inner_algorithm(hp)`` (an algorithm over an architecture
    space, which may depend on ``hp``) of ``objective(hp, architecture)``."""
    check_callable("nested_search.objective", objective)
    check_callable("nested_search.inner_algorithm", inner_algorithm)
    check_int("nested_search.outer_trials", outer_trials, 1)
    check_int("nested_search.inner_trials", inner_trials, 1)
    outer = Tuner(outer_algorithm, seed=seed)
    inners: dict[int, Tuner] = {}
    best: tuple[float, Any, Any] = (-np.inf, None, None)
    for _ in tqdm(range(outer_trials), disable=not progress, desc="hparams"):
        hp_trial: Trial = outer.ask()
        hp = hp_trial.value
        inner = Tuner(inner_algorithm(hp), seed=seed + 1 + hp_trial.id)
        for _ in range(inner_trials):
            t = inner.ask()
            inner.tell(t, objective(hp, t.value))
        inners[hp_trial.id] = inner
        b = inner.best
        reward = b.reward if b is not None else float("nan")
        outer.tell(hp_trial, reward)
        if b is not None and reward > best[0]:
            best = (reward, hp, b.value)
    return NestedResult(best[1], best[2], best[0], outer, inners)


def cost_aware(accuracy: Any, cost: Any, target: float, alpha: float = -0.07,
               beta: float = -0.07) -> Any:
    """MnasNet's reward ``accuracy * (cost / target) ** w`` with ``w = alpha`` when
    ``cost <= target`` and ``beta`` otherwise (soft: alpha = beta = -0.07; a hard limit:
    alpha = 0, beta = -1). Works on floats and JAX arrays."""
    if check_real("cost_aware.target", target) <= 0:
        raise ValueError(f"cost_aware.target must be > 0, got {target}")
    check_real("cost_aware.alpha", alpha)
    check_real("cost_aware.beta", beta)
    ratio = jnp.asarray(cost, jnp.float32) / target
    w = jnp.where(ratio <= 1.0, alpha, beta)
    return jnp.asarray(accuracy, jnp.float32) * ratio ** w


def _check_module(field: str, model: Any) -> None:
    if not isinstance(model, nnx.Module):
        raise ValueError(f"{field} must be a Flax NNX module (e.g. space.materialize(dna)), "
                         f"got {type(model).__name__}")


def param_count(model: nnx.Module) -> int:
    """Number of trainable parameters (``nnx.Param`` leaves) of an NNX model."""
    _check_module("param_count.model", model)
    return int(sum(np.size(x) for x in jax.tree.leaves(nnx.state(model, nnx.Param))))


def latency(model: nnx.Module, x: jax.Array, repeats: int = 20) -> float:
    """Median seconds of a jitted forward pass of ``model`` on ``x``."""
    _check_module("latency.model", model)
    check_int("latency.repeats", repeats, 1)
    graphdef, state = nnx.split(model)

    @jax.jit
    def forward(state, x):
        return nnx.merge(graphdef, state)(x)

    jax.block_until_ready(forward(state, x))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(forward(state, x))
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def space_of(template: Any) -> Space:
    """Shorthand for :class:`nas.Space` (reads well in nested flows)."""
    return Space(template)
