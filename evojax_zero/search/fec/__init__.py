"""Functional equivalence checking (FEC), as the reference's ``fec_cache.cc``.

For each (program, task) a short pre-run (``num_train_examples`` = 10 train steps and
``num_valid_examples`` = 10 validation examples, with one fixed random key shared by all
programs, like the reference's generator reseeded to 235732282) records the absolute
errors; their bit patterns, the task index and the requested number of train examples are
hashed (:mod:`.hashing`); a hit in an LRU cache returns the cached task fitness instead of a
full run.

One interface, :class:`~.base.FEC` (init, hash, lookup, fill, to/from arrays), two
implementations chosen by ``FECConfig.mode`` / ``SearchConfig.fec``:

* :class:`~.host.HostFEC` (``"host"``): NumPy hash and a Python LRU, the specification;
* :class:`~.native.NativeFEC` (``"native"``): ``native/fec.cc`` custom calls on device
  arrays (CPU);
* ``"auto"``: native when the search's evaluator runs the native backend, else host.

Both run inside the jitted generation and give bit-identical searches.
"""

from __future__ import annotations

from evojax_zero.search.fec.base import (
    ARRAY_FIELDS,
    FEC,
    FEC_MODES,
    FECConfig,
    as_fec_config,
    check_arrays,
    empty_arrays,
    resolve,
)
from evojax_zero.search.fec.hashing import (
    batch_hash,
    from_words,
    hash_combine,
    prerun_hash_words,
    recorded_masks,
    std_hash_double,
    to_words,
    well_mixed_hash,
)
from evojax_zero.search.fec.host import FECCache, HostFEC, LRUCache
from evojax_zero.search.fec.native import NativeFEC, supported


def make(config: FECConfig, max_abs_error: float, evaluator_backend: str) -> FEC:
    """The cache implementation ``config.mode`` asks for (``"auto"``: native when the
    evaluator runs the native backend and the native FEC calls are available)."""
    mode = config.mode
    if mode == "auto":
        mode = "native" if evaluator_backend == "native" and supported() else "host"
    return (NativeFEC if mode == "native" else HostFEC)(config, max_abs_error)


__all__ = ["ARRAY_FIELDS", "FEC", "FEC_MODES", "FECCache", "FECConfig", "HostFEC", "LRUCache",
           "NativeFEC", "as_fec_config", "check_arrays", "batch_hash", "empty_arrays", "from_words",
           "hash_combine", "make", "prerun_hash_words", "recorded_masks", "resolve",
           "std_hash_double", "supported", "to_words", "well_mixed_hash"]
