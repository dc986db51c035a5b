"""The host FEC cache: the reference's ``fec_cache.cc`` in Python (:class:`LRUCache`) and
:class:`HostFEC`, which serves it to the jitted generation through callbacks.

Cache semantics follow ``fec_cache.cc`` exactly: an entry is inserted with count 1 on a
miss; every hit increments the count, moves the entry to the front and evicts it once the
count reaches ``forget_every`` (0 = never); the least recently used entry is evicted when
more than ``cache_size`` entries are held. Lookups inside a batch are resolved in the
reference's sequential order (child by child, task by task): the cache's structure does not
depend on fitness values, so a later child that hits an entry inserted by an earlier child
of the same batch gets that child's fitness once it is computed. With batch size 1 this is
the reference.

The hash runs as a ``pure_callback`` (NumPy, :mod:`.hashing`) and lookup/fill as
``io_callback``; the cache's state inside ``jit`` is a handle (int32 scalar) into this
module's registry, threaded from call to call so the callbacks run in order.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import threading

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import io_callback

from evojax_zero.search.fec.base import FECConfig, check_arrays, empty_arrays
from evojax_zero.search.fec.hashing import from_words, prerun_hash_words


class LRUCache:
    """Exact LRU cache of the reference: hash -> [fitness, count]."""

    def __init__(self, cache_size: int = 100000, forget_every: int = 100):
        FECConfig(cache_size=cache_size, forget_every=forget_every)  # validates
        self.cache_size = cache_size
        self.forget_every = forget_every
        self._d: collections.OrderedDict[int, list] = collections.OrderedDict()  # MRU last
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._d)

    def find(self, h: int):
        """(found, fitness); a hit counts, moves to front, may be forgotten."""
        entry = self._d.get(h)
        if entry is None:
            self.misses += 1
            return False, 0.0
        self.hits += 1
        self._d.move_to_end(h)
        entry[1] += 1
        if self.forget_every and entry[1] >= self.forget_every:
            del self._d[h]
        return True, entry[0]

    def insert(self, h: int, fitness) -> None:
        """Insert after a miss (count 1), evicting the least recently used if full."""
        if h in self._d:
            raise ValueError(f"hash {h} already cached; insert only after a miss")
        self._d[h] = [fitness, 1]
        while len(self._d) > self.cache_size:
            self._d.popitem(last=False)

    def clear(self) -> None:
        self._d.clear()

    # -- batch protocol used by the search ----------------------------------------------

    def lookup_batch(self, hashes: np.ndarray):
        """Resolve a [B, T] batch in sequential order without fitness values.

        Returns ``(source, cached)``: ``source[b, t]`` is -1 for a miss (must be
        evaluated), or the flat index of the earlier missed pair whose fitness it reuses
        (``>= 0``), or -2 when ``cached[b, t]`` holds the fitness from the cache. Call
        :meth:`fill` with the evaluated fitnesses afterwards.
        """
        B, T = hashes.shape
        flat = np.asarray(hashes, np.uint64).reshape(-1).tolist()  # Python ints
        n = len(flat)
        source = [-2] * n
        cached = [0.0] * n
        # find()/insert() inlined (same semantics; this loop is the FEC's host hot spot)
        d, cap, forget = self._d, self.cache_size, self.forget_every
        get, to_end = d.get, d.move_to_end
        hits = 0
        for i, h in enumerate(flat):
            entry = get(h)
            if entry is None:
                source[i] = -1
                d[h] = [_Pending(i), 1]
                if len(d) > cap:
                    d.popitem(last=False)
                continue
            hits += 1
            to_end(h)
            entry[1] += 1
            if forget and entry[1] >= forget:
                del d[h]
            value = entry[0]
            if type(value) is _Pending:
                source[i] = value.index
            else:
                cached[i] = value
        self.hits += hits
        self.misses += n - hits
        self._pending_hashes = flat
        return (np.asarray(source, np.int64).reshape(B, T),
                np.asarray(cached, np.float64).reshape(B, T))

    def fill_pending(self, fitness: np.ndarray, source: np.ndarray) -> None:
        """Write the evaluated fitness [B, T] of the misses of the last lookup_batch."""
        flat_list = np.asarray(fitness, np.float64).reshape(-1).tolist()
        src = np.asarray(source).reshape(-1).tolist()
        for h, s in zip(self._pending_hashes, src, strict=True):
            if s != -1:
                continue
            entry = self._d.get(h)
            if entry is not None and type(entry[0]) is _Pending:
                entry[0] = flat_list[entry[0].index]

    def fill(self, fitness: np.ndarray, source: np.ndarray, cached: np.ndarray) -> np.ndarray:
        """Replace pending entries by their evaluated fitness; return the [B, T] fitness
        the reference would have returned."""
        flat = np.asarray(fitness, np.float64).reshape(-1)
        out = np.where(source == -2, cached, 0.0)
        miss = source == -1
        out[miss] = fitness[miss]
        dup = source >= 0
        out[dup] = flat[source[dup]]
        self.fill_pending(flat, source)
        return out

    # -- arrays (checkpoints) ------------------------------------------------------------

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The entries as ``base.ARRAY_FIELDS`` (LRU order, least recent first)."""
        n = len(self._d)
        out = empty_arrays(self.cache_size)
        keys = np.fromiter(self._d.keys(), np.uint64, n)
        out["keys"][:n, 0] = (keys & np.uint64(0xFFFFFFFF)).astype(np.uint32)
        out["keys"][:n, 1] = (keys >> np.uint64(32)).astype(np.uint32)
        out["fitness"][:n] = np.fromiter((v[0] for v in self._d.values()), np.float64, n)
        out["count"][:n] = np.fromiter((v[1] for v in self._d.values()), np.int64, n)
        out["size"][...] = n
        return out

    def load_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        """Replace the entries by ``arrays`` (see :meth:`to_arrays`)."""
        n = check_arrays(arrays, self.cache_size)
        keys = from_words(np.asarray(arrays["keys"])[:n]).tolist()
        if len(set(keys)) != n:
            raise ValueError("FEC cache arrays hold duplicate keys")
        fit = np.asarray(arrays["fitness"], np.float64)[:n].tolist()
        count = np.asarray(arrays["count"], np.int64)[:n].tolist()
        self._d = collections.OrderedDict(
            (k, [f, c]) for k, f, c in zip(keys, fit, count, strict=True))


@dataclasses.dataclass
class _Pending:
    """Placeholder for the fitness of a pair evaluated later in the same batch."""

    index: int


FECCache = LRUCache  # the name before the FEC subpackage

_REGISTRY: dict[int, LRUCache] = {}
_HANDLES = itertools.count(1)
_LOCK = threading.Lock()


class HostFEC:
    """:class:`~evojax_zero.search.fec.base.FEC` over :class:`LRUCache` on the host.
    The state is an int32 handle; :meth:`release` frees the LRU behind it."""

    kind = "host"

    def __init__(self, config: FECConfig, max_abs_error: float):
        self.config = config
        self.max_abs_error = float(max_abs_error)

    # -- host side ----------------------------------------------------------------------

    def _new(self) -> np.ndarray:
        # A NumPy handle: it survives the jitted generation donating its (device) copy, so
        # release() can be called with the state init() returned.
        with _LOCK:
            handle = next(_HANDLES)
            _REGISTRY[handle] = LRUCache(self.config.cache_size, self.config.forget_every)
        return np.asarray(handle, np.int32)

    @staticmethod
    def lru(state) -> LRUCache:
        """The LRU cache behind a state (host only)."""
        handle = int(np.asarray(state))
        if handle not in _REGISTRY:
            raise ValueError(f"FEC host cache {handle} was released or never existed")
        return _REGISTRY[handle]

    def init(self) -> np.ndarray:
        return self._new()

    def release(self, state) -> None:
        _REGISTRY.pop(int(np.asarray(state)), None)

    def to_arrays(self, state) -> dict[str, np.ndarray]:
        return self.lru(state).to_arrays()

    def from_arrays(self, arrays: dict[str, np.ndarray]) -> np.ndarray:
        state = self._new()
        self.lru(state).load_arrays(arrays)
        return state

    # -- traced (inside jit) ------------------------------------------------------------

    def hash(self, train_error, valid_error, num_train_examples: int):
        B, T = train_error.shape[:2]

        def host_hash(tr, va):
            return prerun_hash_words(tr, va, self.max_abs_error, num_train_examples)

        return jax.pure_callback(host_hash, jax.ShapeDtypeStruct((B, T, 2), jnp.uint32),
                                 train_error, valid_error)

    def lookup(self, state, hashes):
        B, T = hashes.shape[:2]

        def host_lookup(handle, words):
            source, cached = self.lru(handle).lookup_batch(from_words(words))
            return (np.asarray(handle, np.int32), source.astype(np.int32),
                    cached.astype(np.float32))

        shapes = (jax.ShapeDtypeStruct((), jnp.int32), jax.ShapeDtypeStruct((B, T), jnp.int32),
                  jax.ShapeDtypeStruct((B, T), jnp.float32))
        return io_callback(host_lookup, shapes, state, hashes)

    def fill(self, state, hashes, source, per_task):
        def host_fill(handle, src, fit):
            self.lru(handle).fill_pending(np.asarray(fit, np.float64), src)
            return np.asarray(handle, np.int32)

        return io_callback(host_fill, jax.ShapeDtypeStruct((), jnp.int32), state, source,
                           per_task)
