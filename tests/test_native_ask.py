"""The native ask (evojax_zero/native/ask.cc) gives the XLA ask's children and parents, bit
for bit: the XLA ask (EvolutionEngine.ask with mutation.mutate) is the reference."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from evojax_zero import program as P
from evojax_zero.engine.regularized import EvolutionEngine
from evojax_zero.search import initial, loop, native_ask
from evojax_zero.search.loop import Search, SearchConfig
from evojax_zero.search.mutation import MutationConfig, mutate

pytestmark = pytest.mark.skipif(not native_ask.available(),
                                reason=f"native ask unavailable: {native_ask.why_unavailable()}")

DEMO_OPS = (56, 27, 2, 3, 18, 23)
DEMO_SPEC = P.ProgramSpec(4, 3, 1, 4, setup_ops=DEMO_OPS, predict_ops=DEMO_OPS,
                          learn_ops=DEMO_OPS, max_setup_size=10, max_predict_size=2,
                          max_learn_size=8)
DEMO_CFG = MutationConfig(setup_ops=DEMO_OPS, predict_ops=DEMO_OPS, learn_ops=DEMO_OPS)
# Every op (all data ops: const, uniform, gaussian sets), every mutation type, size bounds,
# a frozen function and mutate_prob < 1.
ALL_OPS = tuple(range(1, 65))
WIDE_SPEC = P.ProgramSpec(3, 3, 2, 4, setup_ops=ALL_OPS, predict_ops=ALL_OPS,
                          learn_ops=ALL_OPS, max_setup_size=6, max_predict_size=4,
                          max_learn_size=7)
WIDE_CFG = MutationConfig(setup_ops=ALL_OPS, predict_ops=(), learn_ops=ALL_OPS,
                          mutation_types=tuple(range(8)), mutate_prob=0.8,
                          setup_size_min=1, setup_size_max=7, learn_size_min=2,
                          learn_size_max=6)
# Only data ops, so ALTER_PARAM alters data (log-scale-or-flip, sorting) most of the time.
DATA_OPS = tuple(range(56, 65))
DATA_SPEC = P.ProgramSpec(3, 3, 2, 4, setup_ops=DATA_OPS, predict_ops=DATA_OPS,
                          learn_ops=DATA_OPS, max_setup_size=5, max_predict_size=3,
                          max_learn_size=4)
DATA_CFG = MutationConfig(setup_ops=DATA_OPS, predict_ops=DATA_OPS, learn_ops=DATA_OPS,
                          mutation_types=(0,), mutate_prob=1.0)


def _population(spec, cfg, pop_size, sizes, seed):
    k1, k2, k3 = jax.random.split(jax.random.key(seed), 3)
    pop = initial.initial_population("random", spec, pop_size, sizes, k1, cfg)
    # Give the parents' data ops a history: a few rounds of mutation of everyone.
    mutate_all = jax.jit(jax.vmap(lambda kk, p: mutate(kk, p, cfg, spec)))
    for k in jax.random.split(k3, 3):
        pop = mutate_all(jax.random.split(k, pop_size), pop)
    # Fitness with ties, -inf and repeated values (first-drawn wins ties).
    fit = jnp.round(jax.random.uniform(k2, (pop_size,)) * 4) / 4
    return pop, fit.at[::7].set(-jnp.inf)


def _same(a, b) -> bool:
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        x, y = np.asarray(x), np.asarray(y)
        if x.shape != y.shape or x.dtype != y.dtype:
            return False
        if x.dtype.kind == "f":
            x, y = x.view(np.uint32), y.view(np.uint32)
        if not np.array_equal(x, y):
            return False
    return True


@pytest.mark.parametrize("spec,cfg,sizes", [
    (DEMO_SPEC, DEMO_CFG, (10, 2, 8)),
    # compiling the XLA ask of these configs takes longer than the demo's
    pytest.param(WIDE_SPEC, WIDE_CFG, (3, 2, 4), marks=pytest.mark.slow),
    pytest.param(DATA_SPEC, DATA_CFG, (4, 2, 3), marks=pytest.mark.slow),
], ids=["demo", "wide", "data"])
def test_native_ask_equals_xla_ask(spec, cfg, sizes):
    engine = EvolutionEngine(60, 5, 40)
    pop, fit = _population(spec, cfg, 60, sizes, 0)
    state = engine.init(pop, fit)
    xla = jax.jit(lambda k, s: engine.ask(k, s, lambda kk, p: mutate(kk, p, cfg, spec)))
    nat = jax.jit(lambda k, s: native_ask.ask(k, s, engine, cfg, spec))
    changed = 0
    for seed in range(6):
        key = jax.random.key(seed)
        (a, pa), (b, pb) = xla(key, state), nat(key, state)
        assert np.array_equal(pa, pb), seed
        assert _same(a, b), seed
        parents = jax.tree.map(lambda x, pa=pa: x[pa], pop)
        changed += int(np.sum(np.any(np.asarray(a.learn.data != parents.learn.data)
                                     .reshape(40, -1), axis=1)))
    assert changed > 0  # the comparison covers altered data, not only clones


@pytest.mark.slow
def test_search_generation_same_with_either_ask(linear_tasks, monkeypatch):
    """Two generations of a search with the native ask end in the state (population,
    fitness, key) the XLA ask gives."""
    spec = P.ProgramSpec(4, 3, 1, 4, setup_ops=DEMO_OPS, predict_ops=DEMO_OPS,
                         learn_ops=DEMO_OPS, max_setup_size=5, max_predict_size=2,
                         max_learn_size=4)
    cfg = SearchConfig(spec, DEMO_CFG, population_size=40, tournament_size=5,
                       batch_size=10, sizes_init=(4, 2, 3), fec=False)
    native_kernels = loop._Kernels(cfg, None)
    monkeypatch.setenv("EVOJAX_ZERO_ASK", "xla")
    xla_kernels = loop._Kernels(cfg, None)
    assert native_kernels.native_ask and not xla_kernels.native_ask
    s = Search(cfg, linear_tasks)
    init = s.init(jax.random.key(3))
    states = []
    for kernels in (native_kernels, xla_kernels):
        st, cache = init, None
        for _ in range(2):
            st, cache, _ = kernels.generation(jax.tree.map(jnp.copy, st), cache, linear_tasks)
        states.append(st)
    assert _same(states[0].evolution, states[1].evolution)
    assert np.array_equal(jax.random.key_data(states[0].key),
                          jax.random.key_data(states[1].key))
