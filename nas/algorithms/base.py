"""What every search algorithm over DNA shares: the ask/tell protocol and the best-so-far record.

Every algorithm is a frozen dataclass with pure, jittable methods::

    state = algo.init(key)
    dna = algo.ask(key, state)            # DNA batch, leading axis = algo.batch_size
    state = algo.tell(state, dna, reward)  # reward float32[batch_size], higher is better

Rewards that are NaN count as failures (-inf). Every state has a ``best`` field (:class:`Best`).
"""

from __future__ import annotations

from typing import Any, Protocol

import jax
import jax.numpy as jnp
from flax import struct

from nas.checks import check_int
from nas.space import DNA, Space


class SearchAlgorithm(Protocol):
    """The interface the drivers (``nas.search``, ``nas.Tuner``, ``nas.run_vectorized``) use."""

    space: Space
    batch_size: int

    def init(self, key: jax.Array) -> Any: ...

    def ask(self, key: jax.Array, state: Any) -> DNA: ...

    def tell(self, state: Any, dna: DNA, reward: jax.Array) -> Any: ...


@struct.dataclass
class Best:
    """Best DNA so far and the number of trials told."""

    dna: DNA
    reward: jax.Array  # float32[]
    num_trials: jax.Array  # int32[]


def sanitize(reward: jax.Array) -> jax.Array:
    reward = jnp.asarray(reward, jnp.float32)
    return jnp.where(jnp.isnan(reward), -jnp.inf, reward)


def init_best(space: Space) -> Best:
    return Best(
        DNA(jnp.zeros((space.n_int,), jnp.int32), jnp.asarray(space.float_low, jnp.float32)),
        jnp.full((), -jnp.inf, jnp.float32),
        jnp.zeros((), jnp.int32),
    )


def update_best(best: Best, dna: DNA, reward: jax.Array) -> Best:
    i = jnp.argmax(reward)
    better = reward[i] > best.reward
    cand = jax.tree.map(lambda x: x[i], dna)
    return Best(
        jax.tree.map(lambda new, old: jnp.where(better, new, old), cand, best.dna),
        jnp.where(better, reward[i], best.reward),
        best.num_trials + reward.shape[0],
    )


def check_common(name: str, space: Space, batch_size: int) -> None:
    if not isinstance(space, Space):
        raise ValueError(f"{name}.space must be a nas.Space, got {type(space).__name__}")
    check_int(f"{name}.batch_size", batch_size, low=1)
