"""The reference's FEC hash in NumPy: libstdc++'s ``std::hash<double>`` and the Jenkins-style
64-bit ``HashCombine``, folded from 42 over the recorded pre-run errors, the task index and
the requested number of train examples (``WellMixedHash``). Exact ``uint64`` bits without
``jax_enable_x64``. ``evojax_zero/native/fec.cc`` computes the same bits on device; the tests
hold the two equal and this module equal to numbers printed by g++/libstdc++."""

from __future__ import annotations

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


def to_words(hashes) -> np.ndarray:
    """uint64 [...] -> uint32 [..., 2] (low, high words), the layout of the native hash."""
    h = np.asarray(hashes, np.uint64)
    return np.stack([(h & np.uint64(0xFFFFFFFF)).astype(np.uint32),
                     (h >> np.uint64(32)).astype(np.uint32)], -1)


def from_words(words) -> np.ndarray:
    """uint32 [..., 2] (low, high words) -> uint64 [...]."""
    w = np.asarray(words, np.uint32).astype(np.uint64)
    return w[..., 0] | (w[..., 1] << np.uint64(32))


def prerun_hash_words(train_error, valid_error, max_abs_error: float,
                      num_train_examples: int) -> np.ndarray:
    """WellMixedHash words uint32 [B, T, 2] of pre-run errors [B, T, n] (task index = t),
    the NumPy twin of ``native.fec_hash``."""
    tmask, vmask = recorded_masks(train_error, valid_error, max_abs_error)
    T = np.shape(train_error)[1]
    return to_words(batch_hash(train_error, tmask, valid_error, vmask, np.arange(T)[None, :],
                               num_train_examples))
