"""FEC: hash bits against an independent C++ (libstdc++) reference; LRU semantics."""

import numpy as np

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
    c = fec.FECCache(cache_size=2, forget_every=3)
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
    c = fec.FECCache(cache_size=10, forget_every=100)
    c.insert(7, 0.7)
    hashes = np.array([[5, 7], [5, 9]], np.uint64)
    source, cached = c.lookup_batch(hashes)
    assert source.tolist() == [[-1, -2], [0, -1]]
    out = c.fill(np.array([[0.25, 0.0], [0.0, 0.125]]), source, cached)
    assert out.tolist() == [[0.25, 0.7], [0.25, 0.125]]
    assert c.find(5) == (True, 0.25) and c.find(9) == (True, 0.125)
    state = c.state_arrays()
    d = fec.FECCache(10, 100)
    d.load_arrays(state)
    assert d.state_arrays()["keys"].tolist() == state["keys"].tolist()


def test_batch_lookup_equals_sequential_reference_on_random_streams():
    """lookup_batch + fill == the reference's per-pair find / insert, in order, including
    duplicates within a batch, forget_every and LRU eviction (small cache)."""
    rng = np.random.default_rng(0)
    for cache_size, forget in ((3, 2), (5, 3), (8, 0), (4, 100)):
        fast, slow = fec.FECCache(cache_size, forget), fec.FECCache(cache_size, forget)
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
            a, b_ = fast.state_arrays(), slow.state_arrays()
            for k in ("keys", "fitness", "count", "stats"):
                np.testing.assert_array_equal(a[k], b_[k])
