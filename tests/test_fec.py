"""FEC: hash bits against an independent C++ (libstdc++) reference; LRU semantics; the host
cache behind the FEC interface."""

import jax
import numpy as np
import pytest

from evojax_zero.search import fec


def test_std_hash_double_matches_libstdcxx():
    # printed by g++ 13 / libstdc++: std::hash<double>{}(x)
    xs = [0.0, -0.0, 1.0, 0.5, -2.25, 1e-300, 3.141592653589793, np.inf]
    want = [0, 0, 8386164645967068059, 15617511457935402772, 12702181646673766799,
            4776567456870509882, 14119221853667466583, 3377428025507081056]
    assert [int(h) for h in fec.std_hash_double(np.array(xs))] == want


def test_well_mixed_hash_matches_reference():
    # seed 42; HashCombine over errors, then task index 3 and 100 train examples
    assert fec.well_mixed_hash([0.1, 0.25, 1.5, 0.0, 2.0], [0.3, 0.0], 3, 100) == \
        10860341022035613916
    assert int(fec.hash_combine(np.uint64(42), np.uint64(7))) == 7515452516183101343


def test_batch_hash_respects_recorded_prefix():
    tr = np.array([[0.1, 0.2, np.nan, np.nan], [0.1, 0.2, 500.0, 0.3]])
    va = np.array([[0.5, 0.5], [0.5, 0.5]])
    tm, vm = fec.recorded_masks(tr, va, 100.0)
    assert tm.tolist() == [[True, True, False, False], [True, True, False, False]]
    assert not vm.any()  # training stopped: nothing validated
    h = fec.batch_hash(tr, tm, va, vm, np.array([0, 0]), 100)
    assert h[0] == h[1] == fec.well_mixed_hash([0.1, 0.2], [], 0, 100)
    tm, vm = fec.recorded_masks(np.array([0.1]), np.array([0.2, np.nan, 0.1]), 100.0)
    assert vm.tolist() == [True, False, False]


def test_lru_forget_every_and_eviction():
    c = fec.LRUCache(cache_size=2, forget_every=3)
    assert c.find(1) == (False, 0.0)
    c.insert(1, 0.5)
    assert c.find(1) == (True, 0.5)  # count 2
    assert c.find(1) == (True, 0.5)  # count 3 -> forgotten
    assert c.find(1) == (False, 0.0)
    c.insert(1, 0.1)
    c.insert(2, 0.2)
    c.find(1)  # 1 becomes most recent
    c.insert(3, 0.3)  # evicts 2 (least recently used)
    assert c.find(2)[0] is False and c.find(1)[0] and c.find(3)[0]


def test_batch_lookup_is_sequential():
    c = fec.LRUCache(cache_size=10, forget_every=100)
    c.insert(7, 0.7)
    hashes = np.array([[5, 7], [5, 9]], np.uint64)
    source, cached = c.lookup_batch(hashes)
    assert source.tolist() == [[-1, -2], [0, -1]]
    out = c.fill(np.array([[0.25, 0.0], [0.0, 0.125]]), source, cached)
    assert out.tolist() == [[0.25, 0.7], [0.25, 0.125]]
    assert c.find(5) == (True, 0.25) and c.find(9) == (True, 0.125)
    state = c.to_arrays()
    assert int(state["size"]) == 3
    assert fec.from_words(state["keys"][:3]).tolist() == [7, 5, 9]  # LRU order
    d = fec.LRUCache(10, 100)
    d.load_arrays(state)
    for k in fec.ARRAY_FIELDS:
        np.testing.assert_array_equal(d.to_arrays()[k], state[k])


def test_batch_lookup_equals_sequential_reference_on_random_streams():
    """lookup_batch + fill == the reference's per-pair find / insert, in order, including
    duplicates within a batch, forget_every and LRU eviction (small cache)."""
    rng = np.random.default_rng(0)
    for cache_size, forget in ((3, 2), (5, 3), (8, 0), (4, 100)):
        fast, slow = fec.LRUCache(cache_size, forget), fec.LRUCache(cache_size, forget)
        for _ in range(30):
            hashes = rng.integers(0, 12, (4, 3)).astype(np.uint64)
            fitness = rng.random((4, 3))
            want = np.zeros((4, 3))
            for b in range(4):
                for t in range(3):
                    found, v = slow.find(int(hashes[b, t]))
                    if found:
                        want[b, t] = v
                    else:
                        want[b, t] = fitness[b, t]
                        slow.insert(int(hashes[b, t]), fitness[b, t])
            source, cached = fast.lookup_batch(hashes)
            # only misses are evaluated: poison the other entries
            got = fast.fill(np.where(source == -1, fitness, np.nan), source, cached)
            np.testing.assert_array_equal(got, want)
            a, b_ = fast.to_arrays(), slow.to_arrays()
            for k in fec.ARRAY_FIELDS:
                np.testing.assert_array_equal(a[k], b_[k])
            assert (fast.hits, fast.misses) == (slow.hits, slow.misses)


def test_fec_config_spellings():
    assert fec.as_fec_config(False) is None and fec.as_fec_config("off") is None
    assert fec.as_fec_config(None) is None
    assert fec.as_fec_config(True) == fec.FECConfig(mode="auto")
    assert fec.as_fec_config("host").mode == "host"
    with pytest.raises(ValueError, match="fec must be one of"):
        fec.as_fec_config("no")
    with pytest.raises(ValueError, match="FECConfig.mode"):
        fec.FECConfig(mode="gpu")


def test_host_fec_interface_in_jit_equals_lru():
    """HostFEC's traced hash/lookup/fill (callbacks, inside one jit) give the LRU's results
    and its hash equals the NumPy reference hash."""
    cfg = fec.FECConfig(cache_size=4, forget_every=3, mode="host")
    h = fec.HostFEC(cfg, 100.0)
    rng = np.random.default_rng(3)

    @jax.jit
    def step(state, tr, va, fit):
        hashes = h.hash(tr, va, 50)
        state, source, cached = h.lookup(state, hashes)
        state = h.fill(state, hashes, source, fit)
        return state, hashes, source, fec.resolve(source, cached, fit)

    state, ref = h.init(), fec.LRUCache(4, 3)
    for _ in range(12):
        tr = rng.integers(0, 3, (3, 2, 4)).astype(np.float32)  # few distinct pre-runs
        va = rng.integers(0, 2, (3, 2, 4)).astype(np.float32)
        fit = rng.random((3, 2)).astype(np.float32)
        state, hashes, source, got = step(state, tr, va, fit)
        tm, vm = fec.recorded_masks(tr, va, 100.0)
        want_h = fec.batch_hash(tr, tm, va, vm, np.arange(2)[None], 50)
        np.testing.assert_array_equal(fec.from_words(np.asarray(hashes)), want_h)
        src, cached = ref.lookup_batch(want_h)
        want = ref.fill(fit.astype(np.float64), src, cached)
        np.testing.assert_array_equal(np.asarray(source), src)
        np.testing.assert_array_equal(np.asarray(got, np.float64), want)
    for k in fec.ARRAY_FIELDS:
        np.testing.assert_array_equal(h.to_arrays(state)[k], ref.to_arrays()[k])
    h.release(state)
    with pytest.raises(ValueError, match="released"):
        h.to_arrays(state)
