"""The FEC cache as device arrays, for searches that run FEC inside one jitted scan.

Same semantics as :class:`evojax_zero.search.fec.FECCache` (the reference's ``fec_cache.cc``); the
hashing, lookup and fill run as native custom calls (``evojax_zero/native/fec.cc``) on an
explicit state pytree, :class:`FECState`, so a whole generation with FEC is one jitted
``lax.scan`` and no fitness crosses to the host per step. The state converts to and from
the host cache's LRU-ordered arrays (``FECCache.state_arrays``), which is what checkpoints
hold, so a run can be saved with one kind of cache and resumed with the other.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from evojax_zero import native

NODE_FIELDS = ("key_lo", "key_hi", "count", "pending", "prev", "next")
_HEAD, _TAIL, _SIZE, _FREE = range(4)
_GOLDEN = 0x9E3779B97F4A7C15
_M64 = (1 << 64) - 1


@struct.dataclass
class FECState:
    """Cache state: ``nodes`` int32 [C, 6] (C = cache_size + 1; fields NODE_FIELDS),
    ``fitness`` [C], ``table`` int32 [S] (open addressing, -1 = empty, S a power of two
    >= 2 C) and ``meta`` int32 [4] (least recent, most recent, size, free-list head)."""

    nodes: jax.Array
    fitness: jax.Array
    table: jax.Array
    meta: jax.Array

    def as_tuple(self):
        return (self.nodes, self.fitness, self.table, self.meta)


def table_size(cache_size: int) -> int:
    C = cache_size + 1
    return 1 << max(1, (2 * C - 1).bit_length())


def empty_arrays(cache_size: int, dtype=np.float32) -> dict[str, np.ndarray]:
    """NumPy arrays of an empty cache (every node on the free list)."""
    C = cache_size + 1
    nodes = np.zeros((C, 6), np.int32)
    nodes[:, 3] = -1
    nodes[:, 4] = -1
    nodes[:, 5] = np.arange(1, C + 1)
    nodes[-1, 5] = -1
    return {"nodes": nodes, "fitness": np.zeros(C, dtype),
            "table": np.full(table_size(cache_size), -1, np.int32),
            "meta": np.array([-1, -1, 0, 0], np.int32)}


def init(cache_size: int, dtype=jnp.float32) -> FECState:
    """An empty cache holding up to ``cache_size`` entries, fitness in ``dtype``."""
    a = empty_arrays(cache_size, np.dtype(dtype))
    return FECState(*(jnp.asarray(a[k]) for k in ("nodes", "fitness", "table", "meta")))


def _home(h: int, table_len: int) -> int:
    return ((h * _GOLDEN) & _M64) >> (64 - (table_len.bit_length() - 1))


def to_lru_arrays(state: FECState) -> dict[str, np.ndarray]:
    """The entries in LRU order (least recent first), as ``FECCache.state_arrays`` without
    ``stats``: keys uint64, fitness float64, count int64. Pending entries must not exist
    (they only live inside one step)."""
    nodes = np.asarray(state.nodes)
    fit = np.asarray(state.fitness).astype(np.float64)
    meta = np.asarray(state.meta)
    order = []
    n = int(meta[_HEAD])
    while n >= 0:
        order.append(n)
        n = int(nodes[n, 5])
    if len(order) != int(meta[_SIZE]):
        raise ValueError("corrupt FEC state: list length differs from the size")
    order = np.asarray(order, np.int64)
    if order.size and (nodes[order, 3] >= 0).any():
        raise ValueError("FEC state has pending entries; convert between steps only")
    lo = nodes[order, 0].astype(np.uint32).astype(np.uint64)
    hi = nodes[order, 1].astype(np.uint32).astype(np.uint64)
    return {"keys": lo | (hi << np.uint64(32)), "fitness": fit[order],
            "count": nodes[order, 2].astype(np.int64)}


def from_lru_arrays(arrays: dict[str, np.ndarray], cache_size: int,
                    dtype=jnp.float32) -> FECState:
    """Build a state holding ``arrays``' entries (LRU order, least recent first)."""
    keys = [int(k) for k in np.asarray(arrays["keys"], np.uint64)]
    if len(keys) > cache_size:
        raise ValueError(f"{len(keys)} cached entries exceed cache_size {cache_size}")
    a = empty_arrays(cache_size, np.dtype(dtype))
    nodes, table = a["nodes"], a["table"]
    S = len(table)
    k = len(keys)
    for i, h in enumerate(keys):
        nodes[i, 0] = np.uint32(h & 0xFFFFFFFF).view(np.int32)
        nodes[i, 1] = np.uint32(h >> 32).view(np.int32)
        j = _home(h, S)
        while table[j] >= 0:
            if keys[table[j]] == h:
                raise ValueError(f"duplicate FEC key {h}")
            j = (j + 1) & (S - 1)
        table[j] = i
    if k:
        nodes[:k, 2] = np.asarray(arrays["count"], np.int64)
        nodes[:k, 4] = np.arange(-1, k - 1)
        nodes[:k, 5] = np.arange(1, k + 1)
        nodes[k - 1, 5] = -1
        a["fitness"][:k] = np.asarray(arrays["fitness"], np.float64)
    a["meta"][:] = [0 if k else -1, k - 1 if k else -1, k, k if k < len(nodes) else -1]
    return FECState(*(jnp.asarray(a[n]) for n in ("nodes", "fitness", "table", "meta")))


def hash_prerun(train_error, valid_error, max_abs_error: float, num_train_examples: int):
    """uint32 [B, T, 2] WellMixedHash words of the pre-run errors (native)."""
    return native.fec_hash(train_error, valid_error, max_abs_error, num_train_examples)


def lookup(state: FECState, hashes, cache_size: int, forget_every: int):
    """``(state, source, cached)`` as ``FECCache.lookup_batch`` (native)."""
    new, source, cached = native.fec_lookup(state.as_tuple(), hashes, cache_size, forget_every)
    return FECState(*new), source, cached


def fill(state: FECState, hashes, source, per_task) -> FECState:
    """Write evaluated fitness into the pending entries (native)."""
    return FECState(*native.fec_fill(state.as_tuple(), hashes, source, per_task))


def resolve(source, cached, per_task):
    """The [B, T] fitness the reference returns: cached hits, evaluated misses, and for
    repeats inside the batch the fitness of the earlier miss (``FECCache.fill``)."""
    flat = per_task.reshape(-1)
    reused = flat[jnp.clip(source, 0, flat.shape[0] - 1).reshape(-1)].reshape(source.shape)
    return jnp.where(source == -2, cached.astype(per_task.dtype),
                     jnp.where(source == -1, per_task, reused))


def supported() -> bool:
    """True when the native library (with the FEC custom calls) is loaded on CPU."""
    return native.available() and jax.default_backend() == "cpu"
