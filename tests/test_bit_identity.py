"""Same seed, bit-identical results across the redesign: sha256 fingerprints of short
searches and small experiment runs recorded at commit a19f7f0 (before one FEC interface and
one generation path), on the demo and linear presets, FEC on and off, xla and native
backends. The FEC cache's kind (host or native) must not change a bit either."""

import dataclasses
import hashlib

import jax
import numpy as np
import pytest

from evojax_zero import experiment
from evojax_zero.search import fec
from evojax_zero.search.loop import Search

pytestmark = pytest.mark.slow

# preset, fec, backend, search state sha, counters after init + 2 generations,
# run result sha, (individuals, train steps, experiments), FEC hit rate  -- at a19f7f0
RECORDED = [
    ('demo', True, 'xla', 'a4cc657afad9f63b', [60, 6587, 132, 180], '58becd4a53a544e3',
     [940, 81895, 2], 0.7878787878787878),
    ('demo', True, 'native', 'a4cc657afad9f63b', [60, 6587, 132, 180], 'bac2ac8acd17f481',
     [940, 80995, 2], 0.7946969696969697),
    ('demo', False, 'xla', 'a4cc657afad9f63b', [60, 18000, 0, 0], 'e5804478549c5eab',
     [280, 84000, 2], None),
    ('demo', False, 'native', 'a4cc657afad9f63b', [60, 18000, 0, 0], 'e5804478549c5eab',
     [280, 84000, 2], None),
    ('linear', True, 'xla', 'a27711b0ee181bf6', [60, 7188, 126, 180], '85dcecefba50a94f',
     [700, 81222, 2], 0.675),
    ('linear', True, 'native', 'a27711b0ee181bf6', [60, 7188, 126, 180], '6b8797cf796cc884',
     [700, 81222, 2], 0.675),
    ('linear', False, 'xla', 'e1c880c62a9f8620', [60, 18000, 0, 0], '0bb6ef2364ba7c74',
     [280, 84000, 2], None),
    ('linear', False, 'native', 'e1c880c62a9f8620', [60, 18000, 0, 0], 'ddd163108ae3bece',
     [280, 84000, 2], None),
]


def _digest(*arrays):
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(np.asarray(a))
        h.update(str(a.dtype).encode())
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


def _search_fingerprint(cfg):
    s = Search(cfg.search, cfg.search_tasks.build(None))
    st = s.init(jax.random.key(7))
    for _ in range(2):
        st = s.generation(st)
    c = s.counters
    leaves = jax.tree.leaves(st.evolution) + [jax.random.key_data(st.key)]
    return _digest(*leaves), [c.individuals, c.train_steps, c.fec_hits, c.fec_lookups]


def _needs(backend):
    if backend == "native" and not fec.supported():
        pytest.skip("native backend (CPU) unavailable")


@pytest.mark.parametrize("preset,use_fec,backend,state,counters,result,counts,hit_rate",
                         RECORDED, ids=[f"{r[0]}-{'fec' if r[1] else 'nofec'}-{r[2]}"
                                        for r in RECORDED])
def test_same_seed_same_bits_as_before(preset, use_fec, backend, state, counters, result,
                                       counts, hit_rate):
    _needs(backend)
    small = dict(population_size=20, batch_size=10, fec=use_fec, backend=backend,
                 search_num_tasks=3)
    assert _search_fingerprint(experiment.preset(preset, **small)) == (state, counters)
    cfg = experiment.preset(preset, **small, max_train_steps=40000, max_experiments=2,
                            sufficient_fitness=1.0, select_num_tasks=3, final_num_tasks=3)
    r = experiment.run(cfg, 5, progress=False, log=lambda s: None)
    got = _digest(np.asarray(r.final_population_fitness, np.float64),
                  np.frombuffer(r.best_text.encode(), np.uint8))
    assert (got, [r.individuals, r.train_steps, r.experiments], r.fec_hit_rate) == \
        (result, counts, hit_rate)


@pytest.mark.parametrize("preset", ["demo", "linear"])
def test_host_and_native_fec_give_the_recorded_bits(preset):
    """fec="host" on the native evaluator (callbacks into the Python LRU) reproduces the
    native-cache fingerprint recorded at a19f7f0."""
    _needs("native")
    row = next(r for r in RECORDED if r[:3] == (preset, True, "native"))
    cfg = experiment.preset(preset, population_size=20, batch_size=10, backend="native",
                            search_num_tasks=3)
    cfg = dataclasses.replace(cfg, search=dataclasses.replace(cfg.search, fec="host"))
    assert _search_fingerprint(cfg) == (row[3], row[4])
