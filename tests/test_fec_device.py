"""Device FEC cache (native custom calls) against the host cache, which follows the
reference's fec_cache.cc, and the fused search against the host-cache search."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from evojax_zero import experiment
from evojax_zero import search as search_mod
from evojax_zero.program import tasks
from evojax_zero.search import fec
from evojax_zero.search import fec_native as fec_device

pytestmark = pytest.mark.skipif(not fec_device.supported(),
                                reason="native backend (CPU) unavailable")


def _words(h):
    return np.stack([(h & np.uint64(0xFFFFFFFF)).astype(np.uint32),
                     (h >> np.uint64(32)).astype(np.uint32)], -1)


@pytest.mark.parametrize("cache_size,forget", [(2, 2), (5, 3), (7, 0), (50, 100)])
def test_device_cache_equals_host_cache_on_random_streams(cache_size, forget):
    """Same sources, cached values, resolved fitness and LRU contents after every batch,
    with repeats inside a batch, forget_every and eviction (small caches)."""
    rng = np.random.default_rng(cache_size)
    host, dev = fec.FECCache(cache_size, forget), fec_device.init(cache_size)
    lookup = jax.jit(lambda s, h: fec_device.lookup(s, h, cache_size, forget))
    fill = jax.jit(fec_device.fill)
    for step in range(40):
        h = (rng.integers(0, 12, size=(6, 3)).astype(np.uint64)
             * np.uint64(0x9E3779B97F4A7C15) + np.uint64(step % 3))
        src_h, cached_h = host.lookup_batch(h)
        dev, src_d, cached_d = lookup(dev, jnp.asarray(_words(h)))
        np.testing.assert_array_equal(np.asarray(src_d), src_h)
        np.testing.assert_array_equal(np.asarray(cached_d, np.float64), cached_h)
        fit = rng.random((6, 3)).astype(np.float32)
        out_h = host.fill(fit.astype(np.float64), src_h, cached_h)
        dev = fill(dev, jnp.asarray(_words(h)), src_d, jnp.asarray(fit))
        out_d = fec_device.resolve(src_d, cached_d, jnp.asarray(fit))
        np.testing.assert_array_equal(np.asarray(out_d, np.float64), out_h)
        got, want = fec_device.to_lru_arrays(dev), host.state_arrays()
        for k in ("keys", "fitness", "count"):
            np.testing.assert_array_equal(got[k], want[k])
    rebuilt = fec_device.to_lru_arrays(fec_device.from_lru_arrays(want, cache_size))
    np.testing.assert_array_equal(rebuilt["keys"], want["keys"])


def test_native_hash_equals_reference_hash():
    rng = np.random.default_rng(1)
    tr = (rng.standard_normal((5, 4, 10)) * 60).astype(np.float32)
    va = (rng.standard_normal((5, 4, 10)) * 60).astype(np.float32)
    tr[0, 0, 3], tr[1, 1, 0], va[2, 2, 5] = np.nan, 0.0, np.inf
    tm, vm = fec.recorded_masks(tr, va, 100.0)
    want = fec.batch_hash(tr, tm, va, vm, np.arange(4)[None], 100)
    got = np.asarray(fec_device.hash_prerun(jnp.asarray(tr), jnp.asarray(va), 100.0, 100))
    got = got[..., 0].astype(np.uint64) | (got[..., 1].astype(np.uint64) << np.uint64(32))
    np.testing.assert_array_equal(got, want)


def _search(fused: bool, cfg, t):
    search_mod._kernels.cache_clear()
    orig = fec_device.supported
    if not fused:
        fec_device.supported = lambda: False
    try:
        s = search_mod.Search(cfg, t)
    finally:
        fec_device.supported = orig
    assert s.fused_fec is fused
    return s


def test_fused_fec_search_equals_host_fec_search_and_does_not_recompile():
    cfg = experiment.preset("demo", population_size=40, batch_size=10).search
    t = tasks.linear_regression(3, 4, 20, 10)
    results = []
    for fused in (True, False):
        s = _search(fused, cfg, t)
        st = s.init(jax.random.key(5))
        st = s.generation(st)
        if fused:
            n = s._fec_generation._cache_size()
        st = s.generation(st)
        if fused:
            assert s._fec_generation._cache_size() == n  # generation 2: no recompile
        results.append((st, s.counters, s.cache.state_arrays()))
    (a, ca, ka), (b, cb, kb) = results
    for x, y in zip(jax.tree.leaves(a.evolution), jax.tree.leaves(b.evolution), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    assert ca == cb and ca.fec_hits > 0
    for k in ka:
        np.testing.assert_array_equal(ka[k], kb[k])
    search_mod._kernels.cache_clear()
