"""The native FEC cache: ``evojax_zero/native/fec.cc`` custom calls on a device-array cache.

Same semantics as :class:`evojax_zero.search.fec.host.LRUCache` (the reference's
``fec_cache.cc``). The hash, lookup and fill are native custom calls on an explicit state
pytree, :class:`FECState`, so a generation with FEC stays one jitted ``lax.scan`` with no
host round trip per step. The C++ side owns the hash and the open-addressing table; this
module only names the state's fields (below, the one place in Python), builds an empty
state, walks the LRU list to export entries and re-inserts entries through the native
lookup/fill to import them.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from evojax_zero import native
from evojax_zero.search.fec.base import FECConfig, check_arrays, empty_arrays

# fec.cc's layout: node n = NODE_FIELDS (C = cache_size + 1 nodes; pending = -1 once the
# fitness is known); meta = META_FIELDS; the table is int32 [S], S a power of two >= 2 C.
NODE_FIELDS = ("key_lo", "key_hi", "count", "pending", "prev", "next")
META_FIELDS = ("head", "tail", "size", "free")  # head = least recent, tail = most recent
_F = {name: i for i, name in enumerate(NODE_FIELDS)}
_M = {name: i for i, name in enumerate(META_FIELDS)}


@struct.dataclass
class FECState:
    """Cache state: ``nodes`` int32 [C, len(NODE_FIELDS)], ``fitness`` float32 [C],
    ``table`` int32 [S] (-1 = empty) and ``meta`` int32 [len(META_FIELDS)]."""

    nodes: jax.Array
    fitness: jax.Array
    table: jax.Array
    meta: jax.Array

    def as_tuple(self):
        return (self.nodes, self.fitness, self.table, self.meta)


def table_size(cache_size: int) -> int:
    C = cache_size + 1
    return 1 << max(1, (2 * C - 1).bit_length())


def init(cache_size: int) -> FECState:
    """An empty cache holding up to ``cache_size`` entries (every node on the free list)."""
    C = cache_size + 1
    nodes = np.zeros((C, len(NODE_FIELDS)), np.int32)
    nodes[:, _F["pending"]] = -1
    nodes[:, _F["prev"]] = -1
    nodes[:, _F["next"]] = np.arange(1, C + 1)
    nodes[-1, _F["next"]] = -1
    meta = np.zeros(len(META_FIELDS), np.int32)
    meta[[_M["head"], _M["tail"]]] = -1
    return FECState(jnp.asarray(nodes), jnp.zeros(C, jnp.float32),
                    jnp.full(table_size(cache_size), -1, jnp.int32), jnp.asarray(meta))


def lru_order(state: FECState) -> np.ndarray:
    """Node indices from least to most recent (host)."""
    nodes, meta = np.asarray(state.nodes), np.asarray(state.meta)
    nxt = nodes[:, _F["next"]].tolist()
    order = []
    n = int(meta[_M["head"]])
    while n >= 0 and len(order) <= len(nxt):
        order.append(n)
        n = nxt[n]
    if len(order) != int(meta[_M["size"]]):
        raise ValueError("corrupt FEC state: list length differs from the size")
    return np.asarray(order, np.int64)


def supported() -> bool:
    """True when the native library (with the FEC custom calls) is loaded on CPU."""
    return native.available() and jax.default_backend() == "cpu"


class NativeFEC:
    """:class:`~evojax_zero.search.fec.base.FEC` over the native custom calls."""

    kind = "native"

    def __init__(self, config: FECConfig, max_abs_error: float):
        if not supported():
            raise ValueError("fec='native' needs the native library on a CPU backend "
                             f"({native.why_unavailable() or jax.default_backend()}); "
                             "use fec='host' or fec='auto'")
        self.config = config
        self.max_abs_error = float(max_abs_error)

    def init(self) -> FECState:
        return init(self.config.cache_size)

    def release(self, state) -> None:
        pass

    # -- traced (inside jit) ------------------------------------------------------------

    def hash(self, train_error, valid_error, num_train_examples: int):
        return native.fec_hash(train_error, valid_error, self.max_abs_error, num_train_examples)

    def lookup(self, state: FECState, hashes):
        new, source, cached = native.fec_lookup(state.as_tuple(), hashes,
                                                self.config.cache_size,
                                                self.config.forget_every)
        return FECState(*new), source, cached

    def fill(self, state: FECState, hashes, source, per_task) -> FECState:
        return FECState(*native.fec_fill(state.as_tuple(), hashes, source, per_task))

    # -- arrays (checkpoints) -----------------------------------------------------------

    def to_arrays(self, state: FECState) -> dict[str, np.ndarray]:
        """Entries in LRU order (``base.ARRAY_FIELDS``); only between steps (no pending)."""
        order = lru_order(state)
        nodes = np.asarray(state.nodes)
        if order.size and (nodes[order, _F["pending"]] >= 0).any():
            raise ValueError("FEC state has pending entries; convert between steps only")
        out = empty_arrays(self.config.cache_size)
        n = len(order)
        out["keys"][:n] = nodes[order][:, [_F["key_lo"], _F["key_hi"]]].view(np.uint32)
        out["fitness"][:n] = np.asarray(state.fitness)[order]
        out["count"][:n] = nodes[order, _F["count"]]
        out["size"][...] = n
        return out

    def from_arrays(self, arrays: dict[str, np.ndarray]) -> FECState:
        """A state holding ``arrays``' entries: inserted in LRU order by the native lookup
        (all misses) and fill, then given their hit counts."""
        n = check_arrays(arrays, self.config.cache_size)
        state = self.init()
        if n == 0:
            return state
        keys = np.asarray(arrays["keys"], np.uint32)[:n]
        if len(np.unique(keys, axis=0)) != n:
            raise ValueError("FEC cache arrays hold duplicate keys")
        hashes = jnp.asarray(keys[None])
        state, source, _ = self.lookup(state, hashes)
        state = self.fill(state, hashes, source,
                          jnp.asarray(np.asarray(arrays["fitness"], np.float32)[None, :n]))
        order = lru_order(state)
        nodes = np.asarray(state.nodes).copy()
        nodes[order, _F["count"]] = np.asarray(arrays["count"], np.int32)[:n]
        return state.replace(nodes=jnp.asarray(nodes))
