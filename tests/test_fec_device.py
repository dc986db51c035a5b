"""The native FEC cache (fec.cc custom calls) against the host LRU, which follows the
reference's fec_cache.cc, and searches with fec="native" against fec="host"."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from evojax_zero import experiment
from evojax_zero.program import tasks
from evojax_zero.search import fec
from evojax_zero.search.loop import Search

pytestmark = pytest.mark.skipif(not fec.supported(), reason="native backend (CPU) unavailable")


@pytest.mark.parametrize("cache_size,forget", [(2, 2), (5, 3), (7, 0), (50, 100)])
def test_native_cache_equals_host_lru_on_random_streams(cache_size, forget):
    """Same sources, cached values, resolved fitness and LRU contents after every batch,
    with repeats inside a batch, forget_every and eviction (small caches); the arrays
    round-trip through from_arrays."""
    rng = np.random.default_rng(cache_size)
    nat = fec.NativeFEC(fec.FECConfig(cache_size=cache_size, forget_every=forget), 100.0)
    host, dev = fec.LRUCache(cache_size, forget), nat.init()
    lookup, fill = jax.jit(nat.lookup), jax.jit(nat.fill)
    for step in range(40):
        h = (rng.integers(0, 12, size=(6, 3)).astype(np.uint64)
             * np.uint64(0x9E3779B97F4A7C15) + np.uint64(step % 3))
        src_h, cached_h = host.lookup_batch(h)
        dev, src_d, cached_d = lookup(dev, jnp.asarray(fec.to_words(h)))
        np.testing.assert_array_equal(np.asarray(src_d), src_h)
        np.testing.assert_array_equal(np.asarray(cached_d, np.float64), cached_h)
        fit = rng.random((6, 3)).astype(np.float32)
        out_h = host.fill(fit.astype(np.float64), src_h, cached_h)
        dev = fill(dev, jnp.asarray(fec.to_words(h)), src_d, jnp.asarray(fit))
        out_d = fec.resolve(src_d, cached_d, jnp.asarray(fit))
        np.testing.assert_array_equal(np.asarray(out_d, np.float64), out_h)
        got, want = nat.to_arrays(dev), host.to_arrays()
        for k in fec.ARRAY_FIELDS:
            np.testing.assert_array_equal(got[k], want[k])
    rebuilt = nat.from_arrays(want)
    for k in fec.ARRAY_FIELDS:
        np.testing.assert_array_equal(nat.to_arrays(rebuilt)[k], want[k])
    # the rebuilt cache behaves like the original on the next batch
    h = rng.integers(0, 12, size=(6, 3)).astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    _, src_a, _ = lookup(dev, jnp.asarray(fec.to_words(h)))
    _, src_b, _ = lookup(rebuilt, jnp.asarray(fec.to_words(h)))
    np.testing.assert_array_equal(np.asarray(src_a), np.asarray(src_b))


def test_native_hash_equals_reference_hash():
    rng = np.random.default_rng(1)
    tr = (rng.standard_normal((5, 4, 10)) * 60).astype(np.float32)
    va = (rng.standard_normal((5, 4, 10)) * 60).astype(np.float32)
    tr[0, 0, 3], tr[1, 1, 0], va[2, 2, 5] = np.nan, 0.0, np.inf
    want = fec.prerun_hash_words(tr, va, 100.0, 100)
    tm, vm = fec.recorded_masks(tr, va, 100.0)
    np.testing.assert_array_equal(fec.from_words(want),
                                  fec.batch_hash(tr, tm, va, vm, np.arange(4)[None], 100))
    nat = fec.NativeFEC(fec.FECConfig(), 100.0)
    np.testing.assert_array_equal(np.asarray(nat.hash(jnp.asarray(tr), jnp.asarray(va), 100)),
                                  want)


def test_native_and_host_fec_searches_are_identical_and_do_not_recompile(compile_count):
    """fec="native" and fec="host" (chosen by the config, no flags) give the same
    population, counters and cache; the cache converts between the two kinds."""
    base = experiment.preset("demo", population_size=40, batch_size=10).search
    t = tasks.linear_regression(3, 4, 20, 10)
    results = []
    for mode in ("native", "host"):
        s = Search(dataclasses.replace(base, fec=mode), t)
        assert s.fec.kind == mode
        st = s.init(jax.random.key(5))
        st = s.generation(st)
        with compile_count() as compiles:
            st = s.generation(st)
            jax.block_until_ready(st)
        assert compiles.count == 0  # generation 2: no recompile
        results.append((st, s.counters, s.cache_arrays(), s))
    (a, ca, ka, sa), (b, cb, kb, sb) = results
    for x, y in zip(jax.tree.leaves(a.evolution), jax.tree.leaves(b.evolution), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    assert ca == cb and ca.fec_hits > 0 and ca.fec_lookups > ca.fec_hits
    for k in fec.ARRAY_FIELDS:
        np.testing.assert_array_equal(ka[k], kb[k])
    # swap the caches: a native search continues from the host cache and vice versa
    sa.load_cache(kb)
    sb.load_cache(ka)
    a, b = sa.generation(a), sb.generation(b)
    np.testing.assert_array_equal(np.asarray(a.evolution.fitness),
                                  np.asarray(b.evolution.fitness))
    assert sa.counters == sb.counters
