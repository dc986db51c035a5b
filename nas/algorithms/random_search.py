"""Random search: every trial an independent uniform sample of the space."""

from __future__ import annotations

import dataclasses

import jax
from flax import struct

from nas.algorithms.base import Best, check_common, init_best, sanitize, update_best
from nas.space import DNA, Space


@struct.dataclass
class RandomSearchState:
    best: Best


@dataclasses.dataclass(frozen=True)
class RandomSearch:
    """Uniform random sampling of the space."""

    space: Space
    batch_size: int = 1

    def __post_init__(self):
        check_common("RandomSearch", self.space, self.batch_size)

    def init(self, key: jax.Array) -> RandomSearchState:
        del key
        return RandomSearchState(init_best(self.space))

    def ask(self, key: jax.Array, state: RandomSearchState) -> DNA:
        del state
        return self.space.sample_batch(key, self.batch_size)

    def tell(self, state: RandomSearchState, dna: DNA, reward: jax.Array) -> RandomSearchState:
        return RandomSearchState(update_best(state.best, dna, sanitize(reward)))
