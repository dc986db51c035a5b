"""The DNA of an architecture (two fixed-length arrays) and the Decision behind each slot."""

from __future__ import annotations

import dataclasses

import jax
from flax import struct


@struct.dataclass
class DNA:
    """An architecture: ``ints`` int32[..., n_int] and ``floats`` float32[..., n_float].
    A leading batch axis makes it a population (a plain JAX pytree)."""

    ints: jax.Array
    floats: jax.Array


@dataclasses.dataclass(frozen=True)
class Decision:
    """One slot of the DNA."""

    name: str
    kind: str  # "oneof" | "manyof" | "int" | "float"
    slot: int  # index into DNA.ints (oneof/manyof/int) or DNA.floats (float)
    num_choices: int  # int slots: number of values; float slots: 0
    low: float  # int: value of index 0; float: lower bound
    high: float
    log: bool
    parent: int  # int slot of the parent choice, -1 at the root
    parent_value: int  # the parent's index that activates this slot
    group: int  # manyof group id, -1 otherwise
    labels: tuple  # readable candidate labels for int slots
    # every (parent slot, parent value) under which the slot is active (OR); a decision
    # shared by name= can sit under several conditions; ((-1, -1),) at the root.
    # ``parent``/``parent_value`` hold the first of them (the root when any is the root).
    conditions: tuple = ()

    @property
    def is_float(self) -> bool:
        return self.kind == "float"
