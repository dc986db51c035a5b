"""What every FEC cache offers the search: :class:`FECConfig` (the reference's ``FECSpec``
plus where the cache lives) and the :class:`FEC` protocol (the FEC interface).

A cache's *state* is a pytree of arrays threaded through the jitted generation; the
methods that take a state are traceable (called inside ``jit``/``lax.scan``). ``to_arrays``
and ``from_arrays`` convert between a state and :data:`ARRAY_FIELDS` (the entries in LRU
order, least recent first, padded to ``cache_size``), which is what checkpoints hold, so a
run saved with one kind of cache resumes with the other.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol

import jax
import jax.numpy as jnp
import numpy as np

FEC_MODES = ("auto", "host", "native")
# Checkpointed cache arrays: key words uint32 [cache_size, 2], fitness float32 [cache_size],
# hit count int32 [cache_size] (rows >= size are zero) and size int32 [].
ARRAY_FIELDS = ("keys", "fitness", "count", "size")


@dataclasses.dataclass(frozen=True)
class FECConfig:
    """The reference's ``FECSpec`` (defaults as in fec_cache.proto) and ``mode``: ``"host"``
    (NumPy hash, Python LRU, reached from the jitted step by callbacks), ``"native"``
    (``native/fec.cc`` custom calls on a device-array cache, CPU only) or ``"auto"`` (native
    when the evaluator runs the native backend, else host). Both give the same results."""

    num_train_examples: int = 10
    num_valid_examples: int = 10
    cache_size: int = 100000
    forget_every: int = 100
    mode: str = "auto"

    def __post_init__(self):
        for name, lo in (("num_train_examples", 1), ("num_valid_examples", 1),
                         ("cache_size", 2), ("forget_every", 0)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise ValueError(f"FECConfig.{name} must be an int >= {lo}, got {v!r}")
        if self.forget_every == 1:
            raise ValueError("FECConfig.forget_every must be 0 (never) or > 1, got 1")
        if self.mode not in FEC_MODES:
            raise ValueError(f"FECConfig.mode must be one of {FEC_MODES}, got {self.mode!r}")


def as_fec_config(value) -> FECConfig | None:
    """``SearchConfig.fec`` in any accepted spelling -> an :class:`FECConfig` or None (off):
    None/False/"off" -> None; True -> auto; "auto"/"host"/"native" -> that mode."""
    if value is None or value is False or value == "off":
        return None
    if value is True:
        return FECConfig()
    if isinstance(value, str) and value in FEC_MODES:
        return FECConfig(mode=value)
    if isinstance(value, FECConfig):
        return value
    raise ValueError(f"fec must be one of {['off', *FEC_MODES]}, a bool or an FECConfig, got "
                     f"{value!r}; e.g. fec='host' (or --set fec=off)")


def empty_arrays(cache_size: int) -> dict[str, np.ndarray]:
    """:data:`ARRAY_FIELDS` of an empty cache."""
    return {"keys": np.zeros((cache_size, 2), np.uint32),
            "fitness": np.zeros(cache_size, np.float32),
            "count": np.zeros(cache_size, np.int32), "size": np.zeros((), np.int32)}


def check_arrays(arrays: dict[str, np.ndarray], cache_size: int) -> int:
    """Validate checkpointed cache arrays; returns the number of entries."""
    want = empty_arrays(cache_size)
    for k, v in want.items():
        a = np.asarray(arrays.get(k)) if k in arrays else None
        if a is None or a.shape != v.shape:
            raise ValueError(f"FEC cache array {k!r} must have shape {v.shape}, got "
                             f"{None if a is None else a.shape}")
    n = int(arrays["size"])
    if not 0 <= n <= cache_size:
        raise ValueError(f"FEC cache size {n} outside [0, {cache_size}]")
    return n


class FEC(Protocol):
    """One FEC cache implementation (host or native); one instance per search kernel set.

    ``hash`` maps pre-run errors [B, T, n] to WellMixedHash words uint32 [B, T, 2];
    ``lookup`` resolves them in the reference's sequential order and returns ``(state,
    source, cached)`` (``source`` -1: miss, -2: ``cached`` holds the fitness, >= 0: flat
    index of the earlier miss of the batch whose fitness is reused); ``fill`` writes the
    evaluated per-task fitness [B, T] of the misses.
    """

    kind: str
    config: FECConfig

    def init(self) -> Any: ...

    def hash(self, train_error: jax.Array, valid_error: jax.Array,
             num_train_examples: int) -> jax.Array: ...

    def lookup(self, state, hashes: jax.Array) -> tuple[Any, jax.Array, jax.Array]: ...

    def fill(self, state, hashes: jax.Array, source: jax.Array, per_task: jax.Array): ...

    def to_arrays(self, state) -> dict[str, np.ndarray]: ...

    def from_arrays(self, arrays: dict[str, np.ndarray]) -> Any: ...

    def release(self, state) -> None: ...


def resolve(source, cached, per_task):
    """The [B, T] fitness the reference returns: cached hits, evaluated misses, and for
    repeats inside the batch the fitness of the earlier miss (traceable)."""
    flat = per_task.reshape(-1)
    reused = flat[jnp.clip(source, 0, flat.shape[0] - 1).reshape(-1)].reshape(
        source.shape)
    return jnp.where(source == -2, cached.astype(per_task.dtype),
                           jnp.where(source == -1, per_task, reused))
