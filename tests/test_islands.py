"""Islands: each island is a plain Search until migration; ring migration against NumPy;
same result on 1 and 8 devices (subprocess); checkpoint keeps the islands."""

import dataclasses
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from evojax_zero import experiment
from evojax_zero.engine.regularized import EvolutionState
from evojax_zero.experiment.checkpoint import Checkpointer
from evojax_zero.experiment.state import RunState
from evojax_zero.program import tasks
from evojax_zero.search import fec as fec_lib
from evojax_zero.search.hurdles import HurdleConfig
from evojax_zero.search.islands import IslandConfig, IslandSearch, migrate
from evojax_zero.search.loop import Search, SearchState

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _cfg():
    return experiment.preset("linear", population_size=8, batch_size=4, fec=False).search


def test_migration_matches_numpy_ring():
    rng = np.random.default_rng(0)
    I, P, m = 3, 5, 2
    fit = rng.permutation(I * P).reshape(I, P).astype(np.float32)
    genome = np.arange(I * P * 2, dtype=np.float32).reshape(I, P, 2)
    oldest = np.array([0, 4, 2], np.int32)
    st = SearchState(EvolutionState({"g": jnp.asarray(genome)}, jnp.asarray(fit),
                                    jnp.asarray(oldest), jnp.zeros(I, jnp.int32)),
                     jnp.zeros(I))
    out = migrate(st, m)
    want_g, want_f = genome.copy(), fit.copy()
    for i in range(I):
        src = (i - 1) % I
        top = np.argsort(-fit[src], kind="stable")[:m]
        for j, t in enumerate(top):
            slot = (oldest[i] + j) % P
            want_g[i, slot], want_f[i, slot] = genome[src, t], fit[src, t]
    np.testing.assert_array_equal(out.evolution.population["g"], want_g)
    np.testing.assert_array_equal(out.evolution.fitness, want_f)
    np.testing.assert_array_equal(out.evolution.oldest, (oldest + m) % P)


@pytest.mark.slow
def test_islands_without_migration_are_independent_searches(compile_count):
    cfg, t = _cfg(), tasks.linear_regression(2, 4, 20, 10)
    isl = IslandSearch(cfg, t, IslandConfig(num_islands=3, migrate_every=0))
    key = jax.random.key(7)
    st = isl.generation(isl.init(key))
    for i, k in enumerate(jax.random.split(key, 3)):
        s = Search(cfg, t)
        one = s.generation(s.init(k))
        np.testing.assert_array_equal(st.evolution.fitness[i], one.evolution.fitness)
        for a, b in zip(jax.tree.leaves(st.evolution.population),
                        jax.tree.leaves(one.evolution.population), strict=True):
            np.testing.assert_array_equal(np.asarray(a)[i], np.asarray(b))
    assert isl.counters.individuals == 2 * 3 * 8
    assert isl.counters.train_steps == 2 * 3 * 8 * 2 * 20
    with compile_count() as compiles:
        jax.block_until_ready(isl.generation(st))
    assert compiles.count == 0


_SCRIPT = textwrap.dedent("""
    import jax, numpy as np
    from jax.sharding import Mesh
    from evojax_zero import experiment
    from evojax_zero.program import tasks
    from evojax_zero.search.islands import IslandConfig, IslandSearch
    assert len(jax.devices()) == 8
    cfg = experiment.preset("linear", population_size=8, batch_size=4, fec=False).search
    t = tasks.linear_regression(2, 4, 20, 10)
    ic = IslandConfig(num_islands=8, migrate_every=1, num_migrants=2)
    out = []
    for mesh in (None, Mesh(np.array(jax.devices()), ("islands",))):
        s = IslandSearch(cfg, t, ic, mesh)
        st = s.generation(s.generation(s.init(jax.random.key(3))))
        out.append([np.asarray(x) for x in jax.tree.leaves(st.evolution)])
        if mesh is not None:
            assert len(st.evolution.fitness.sharding.device_set) == 8
    for a, b in zip(*out):
        np.testing.assert_array_equal(a, b)
    print("SAME")
""")


@pytest.mark.slow
def test_same_result_on_1_and_8_devices():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8",
               JAX_PLATFORMS="cpu")
    r = subprocess.run([sys.executable, "-c", _SCRIPT], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0 and "SAME" in r.stdout, r.stderr[-3000:]


@pytest.mark.slow
def test_checkpoint_keeps_the_islands(tmp_path):
    cfg, t = _cfg(), tasks.linear_regression(2, 4, 20, 10)
    isl = IslandSearch(cfg, t, IslandConfig(num_islands=2, migrate_every=1))
    st = isl.generation(isl.init(jax.random.key(1)))
    ck = Checkpointer(str(tmp_path), {"run": "islands"})
    ck.save(RunState(in_experiment=True, counters=isl.counters, search=st))
    back = Checkpointer(str(tmp_path), {"run": "islands"}).restore(isl.abstract_state(), None)
    assert back.counters == isl.counters
    for a, b in zip(jax.tree.leaves(back.search), jax.tree.leaves(st), strict=True):
        if jnp.issubdtype(b.dtype, jax.dtypes.prng_key):
            a, b = jax.random.key_data(a), jax.random.key_data(b)
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # resumed islands continue exactly as the uninterrupted ones
    np.testing.assert_array_equal(isl.generation(back.search).evolution.fitness,
                                  isl.generation(st).evolution.fitness)


def test_bad_island_config():
    with pytest.raises(ValueError, match="num_islands"):
        IslandConfig(num_islands=0)
    mesh = jax.sharding.Mesh(np.array(jax.devices()[:1]), ("islands",))
    with pytest.raises(ValueError, match="FEC share one cache"):
        IslandSearch(experiment.preset("demo", population_size=8, batch_size=4).search,
                     tasks.linear_regression(2, 4, 20, 10), IslandConfig(), mesh)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["host", "native"])
def test_islands_with_fec_and_hurdle_give_the_uncached_fitness(mode):
    """Islands (ring migration every generation) with a hurdle, with and without the shared
    FEC cache: a cached child gets the fitness its evaluation gives (deterministic
    programs), so the islands are identical after 3 generations; islands hit each other's
    entries; lookups as worked out by hand (I*P*T at init, then per generation k per child
    plus T-k per child past the hurdle)."""
    if mode == "native" and not fec_lib.supported():
        pytest.skip("native FEC unavailable")
    t = tasks.linear_regression(4, 4, 20, 10)
    ic = IslandConfig(num_islands=3, migrate_every=1, num_migrants=2)
    h = HurdleConfig(num_tasks=1, percentile=50)
    out = {}
    for fec in (None, mode):
        s = IslandSearch(dataclasses.replace(_cfg(), fec=fec), t, ic, hurdle=h)
        st = s.init(jax.random.key(0))
        for _ in range(3):
            st = s.generation(st)
        out[fec] = (jax.tree.map(np.asarray, st.evolution), s.counters, s.hurdle_counters)
    (e0, c0, h0), (e1, c1, h1) = out[None], out[mode]
    for a, b in zip(jax.tree.leaves(e1), jax.tree.leaves(e0), strict=True):
        np.testing.assert_array_equal(a, b)
    assert h1 == h0 and h1.children == 3 * 3 * 8 and 0 < h1.stopped < h1.children
    I, P, T, k, G = 3, 8, 4, 1, 3
    assert c1.fec_lookups == I * P * T + G * I * P * k + (G * I * P - h1.stopped) * (T - k)
    assert c1.fec_hits > 0 and c1.fec_lookups - c1.fec_hits < c0.train_steps // 20
    assert c1.individuals == c0.individuals == (G + 1) * I * P
