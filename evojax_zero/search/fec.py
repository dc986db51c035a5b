"""Functional equivalence checking (FEC), as the reference (contract section 5).

For each (program, task) a short pre-run (``num_train_examples`` = 10 train steps and
``num_valid_examples`` = 10 validation examples, with one fixed random key shared by all
programs, like the reference's generator reseeded to 235732282) records the absolute
errors; their exact bit patterns, the task index and the requested number of train
examples are hashed with the reference's Jenkins-style 64-bit ``HashCombine`` starting
from 42 over libstdc++'s ``std::hash<double>``. A hit in an LRU cache returns the cached
task fitness instead of a full run.

Cache semantics follow ``fec_cache.cc`` exactly: an entry is inserted with count 1 on a
miss; every hit increments the count, moves the entry to the front and evicts it once the
count reaches ``forget_every`` (0 = never); the least recently used entry is evicted when
more than ``cache_size`` entries are held. The cache is rebuilt for every experiment.

**Where the cache lives.** With the native backend, the same hash and cache run as custom
calls on a device-array cache inside the jitted generation (``evojax_zero.search.fec_native``,
tested equal to this module). Otherwise, and as the specification, on the host: hashes are
computed on the host in NumPy
``uint64`` (exact reference bits, no ``jax_enable_x64`` needed) and the cache is a
Python ``OrderedDict``. Only the short pre-run trace (B x T x 20 floats) crosses to the
host per step, and the full evaluation runs only for programs with at least one miss
(compacted, in chunks, see ``evojax_zero.search.loop``). Lookups inside a batch are resolved in
the reference's sequential order (child by child, task by task): the cache's structural
evolution (insert, move-to-front, forget, LRU eviction) does not depend on fitness values,
so a later child that hits an entry inserted by an earlier child of the same batch gets
that child's fitness once it is computed. With batch size 1 this is the reference.
"""

from __future__ import annotations

import collections
import dataclasses

import numpy as np

_U64 = np.uint64
_MASK = (1 << 64) - 1
_MUL = np.uint64((0xC6A4A793 << 32) + 0x5BD1E995)
_STD_HASH_SEED = np.uint64(0xC70F6907)


def _shift_mix(v):
    return v ^ (v >> _U64(47))


def std_hash_double(x) -> np.ndarray:
    """libstdc++'s ``std::hash<double>`` (64-bit murmur ``_Hash_bytes``, seed 0xc70f6907;
    +0.0 and -0.0 hash to 0). Vectorized over a float64 array."""
    x = np.asarray(x, np.float64)
    bits = x.view(np.uint64)
    with np.errstate(over="ignore"):
        h = _STD_HASH_SEED ^ (_U64(8) * _MUL)
        data = _shift_mix(bits * _MUL) * _MUL
        h = (h ^ data) * _MUL
        h = _shift_mix(h) * _MUL
        h = _shift_mix(h)
    return np.where(x == 0.0, _U64(0), h).astype(np.uint64)


def hash_combine(seed, value_hash):
    """The reference's ``HashCombine`` (Bob Jenkins' 64-bit mix); ``value_hash`` is the
    ``std::hash`` of the value (identity for integers). Vectorized over uint64 arrays."""
    a = np.full(np.shape(seed), 0x9E3779B9, np.uint64)
    b = np.asarray(seed, np.uint64).copy()
    c = np.asarray(value_hash, np.uint64).copy()
    s = np.uint64
    with np.errstate(over="ignore"):
        a = a - b; a = a - c; a = a ^ (c >> s(43))  # noqa: E702
        b = b - c; b = b - a; b = b ^ (a << s(9))  # noqa: E702
        c = c - a; c = c - b; c = c ^ (b >> s(8))  # noqa: E702
        a = a - b; a = a - c; a = a ^ (c >> s(38))  # noqa: E702
        b = b - c; b = b - a; b = b ^ (a << s(23))  # noqa: E702
        c = c - a; c = c - b; c = c ^ (b >> s(5))  # noqa: E702
        a = a - b; a = a - c; a = a ^ (c >> s(35))  # noqa: E702
        b = b - c; b = b - a; b = b ^ (a << s(49))  # noqa: E702
        c = c - a; c = c - b; c = c ^ (b >> s(11))  # noqa: E702
        a = a - b; a = a - c; a = a ^ (c >> s(12))  # noqa: E702
        b = b - c; b = b - a; b = b ^ (a << s(18))  # noqa: E702
        c = c - a; c = c - b; c = c ^ (b >> s(22))  # noqa: E702
    return c


def well_mixed_hash(train_errors, valid_errors, task_index: int,
                    num_train_examples: int) -> int:
    """The reference's ``WellMixedHash`` for one (program, task): a Python int."""
    h = batch_hash(np.asarray(train_errors, np.float64)[None],
                   np.ones((1, len(train_errors)), bool),
                   np.asarray(valid_errors, np.float64)[None],
                   np.ones((1, len(valid_errors)), bool),
                   np.asarray([task_index]), num_train_examples)
    return int(h[0])


def batch_hash(train_errors, train_mask, valid_errors, valid_mask, task_index,
               num_train_examples: int) -> np.ndarray:
    """WellMixedHash for many (program, task) pairs. Errors ``[..., n]`` with boolean masks
    of the *recorded* entries (a prefix: the reference stops recording at an early stop);
    ``task_index`` broadcastable to the leading shape. Returns uint64 ``[...]``."""
    train_errors = np.asarray(train_errors, np.float64)
    valid_errors = np.asarray(valid_errors, np.float64)
    seed = np.full(train_errors.shape[:-1], 42, np.uint64)
    for errs, mask in ((train_errors, train_mask), (valid_errors, valid_mask)):
        hashes = std_hash_double(errs)
        for j in range(errs.shape[-1]):
            seed = np.where(mask[..., j], hash_combine(seed, hashes[..., j]), seed)
    idx = np.broadcast_to(np.asarray(task_index).astype(np.int64).astype(np.uint64),
                          seed.shape)
    seed = hash_combine(seed, idx)
    n = np.full(seed.shape, int(num_train_examples) & _MASK, np.uint64)
    return hash_combine(seed, n)


def recorded_masks(train_error, valid_error, max_abs_error: float):
    """Which pre-run errors the reference records: train errors up to (not including) the
    first NaN or > max_abs_error; valid errors likewise, and none if training stopped."""
    train_error = np.asarray(train_error, np.float64)
    valid_error = np.asarray(valid_error, np.float64)
    ok_t = ~np.isnan(train_error) & (train_error <= max_abs_error)
    tmask = np.cumprod(ok_t, axis=-1).astype(bool)
    stopped = ~tmask.all(axis=-1)
    ok_v = ~np.isnan(valid_error) & (valid_error <= max_abs_error)
    vmask = np.cumprod(ok_v, axis=-1).astype(bool) & ~stopped[..., None]
    return tmask, vmask


@dataclasses.dataclass(frozen=True)
class FECConfig:
    """The reference's ``FECSpec`` (defaults as in fec_cache.proto)."""

    num_train_examples: int = 10
    num_valid_examples: int = 10
    cache_size: int = 100000
    forget_every: int = 100

    def __post_init__(self):
        for name, lo in (("num_train_examples", 1), ("num_valid_examples", 1),
                         ("cache_size", 2), ("forget_every", 0)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise ValueError(f"FECConfig.{name} must be an int >= {lo}, got {v!r}")
        if self.forget_every == 1:
            raise ValueError("FECConfig.forget_every must be 0 (never) or > 1, got 1")


class FECCache:
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
        self._pending_source = source
        return (np.asarray(source, np.int64).reshape(B, T),
                np.asarray(cached, np.float64).reshape(B, T))

    def fill(self, fitness: np.ndarray, source: np.ndarray, cached: np.ndarray) -> np.ndarray:
        """Replace pending entries by their evaluated fitness; return the [B, T] fitness
        the reference would have returned."""
        flat = np.asarray(fitness, np.float64).reshape(-1)
        out = np.where(source == -2, cached, 0.0)
        miss = source == -1
        out[miss] = fitness[miss]
        dup = source >= 0
        out[dup] = flat[source[dup]]
        flat_list = flat.tolist()
        for h in (h for h, src in zip(self._pending_hashes, self._pending_source,
                                      strict=True) if src == -1):
            entry = self._d.get(h)
            if entry is not None and type(entry[0]) is _Pending:
                entry[0] = flat_list[entry[0].index]
        return out

    # -- checkpointing ------------------------------------------------------------------

    def state_arrays(self) -> dict[str, np.ndarray]:
        """The cache as arrays (LRU order, least recent first) for checkpoints."""
        keys = np.fromiter(self._d.keys(), np.uint64, len(self._d))
        vals = np.array([v[0] for v in self._d.values()], np.float64)
        counts = np.array([v[1] for v in self._d.values()], np.int64)
        return {"keys": keys, "fitness": vals, "count": counts,
                "stats": np.array([self.hits, self.misses], np.int64)}

    def load_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self._d = collections.OrderedDict(
            (int(k), [float(f), int(c)]) for k, f, c in zip(
                arrays["keys"], arrays["fitness"], arrays["count"], strict=True))
        self.hits, self.misses = (int(x) for x in arrays["stats"])


@dataclasses.dataclass
class _Pending:
    """Placeholder for the fitness of a pair evaluated later in the same batch."""

    index: int
