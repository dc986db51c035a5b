"""Hurdles: staged evaluation equals a step-by-step NumPy reference; counters; no recompile."""

import dataclasses

import jax
import numpy as np
import pytest
from reference_interpreter import tournament_children

from evojax_zero import experiment
from evojax_zero.evaluate.evaluator import EvalConfig, Evaluator
from evojax_zero.program import tasks
from evojax_zero.search import fec as fec_lib
from evojax_zero.search.hurdles import HurdleConfig, HurdleSearch
from evojax_zero.search.mutation import mutate


def _reference(cfg, evolution, key, t, k, percentile):
    """One generation from the definition: B tournaments, mutation, then each child scored
    on the first k tasks; if that mean is >= the population's `percentile` (taken before
    the step) it is scored on all tasks (deterministic programs: same as one full call),
    else it keeps the partial mean. Returns population fitness and the number stopped."""
    P, B = cfg.population_size, cfg.batch_size
    pop = jax.tree.map(np.array, jax.device_get(evolution.population))
    fit = np.array(evolution.fitness)
    oldest, stopped = int(evolution.oldest), 0
    mutate_batch = jax.jit(jax.vmap(lambda kk, p: mutate(kk, p, cfg.mutation, cfg.spec)))
    ev = Evaluator(cfg.spec, EvalConfig(max_abs_error=cfg.max_abs_error), backend=cfg.backend)
    for _ in range(P // B):
        key, k_eval, children = tournament_children(key, pop, fit, cfg, mutate_batch)
        hurdle = np.percentile(fit, percentile)
        per_task = np.asarray(ev.per_task(children, t, jax.random.key(1)), np.float64)
        partial = per_task[:, :k].mean(axis=1)
        child_fit = np.where(partial >= hurdle, per_task.mean(axis=1), partial)
        stopped += int((partial < hurdle).sum())
        slots = (oldest + np.arange(B)) % P
        for leaf, new in zip(jax.tree.leaves(pop), jax.tree.leaves(children), strict=True):
            leaf[slots] = np.asarray(new)
        fit[slots] = child_fit
        oldest = (oldest + B) % P
    return fit, stopped


@pytest.mark.slow
def test_hurdled_generation_matches_reference_and_counts_savings(compile_count):
    cfg = experiment.preset("linear", population_size=8, batch_size=4, fec=False).search
    t = tasks.linear_regression(4, 4, 20, 10)
    h = HurdleConfig(num_tasks=1, percentile=0)
    s = HurdleSearch(cfg, t, h)
    st0 = s.init(jax.random.key(0))
    per_task = t.num_train * t.num_epochs
    assert s.counters.train_steps == 8 * 4 * per_task and s.hurdle_counters.children == 0
    want_fit, want_stopped = _reference(cfg, st0.evolution, st0.key, t, 1, 0)
    st1 = s.generation(st0)
    np.testing.assert_allclose(st1.evolution.fitness, want_fit, rtol=1e-5)
    hc = s.hurdle_counters
    assert 0 < hc.stopped < 8 and hc.stopped == want_stopped and hc.children == 8
    assert hc.pairs_avoided == 3 * hc.stopped
    assert hc.train_steps_avoided == 3 * hc.stopped * per_task
    # train steps actually spent: the initial population in full, then 1 task per child
    # plus 3 more for each child past the hurdle
    assert s.counters.train_steps == (32 + 8 + 3 * (8 - hc.stopped)) * per_task
    with compile_count() as compiles:
        jax.block_until_ready(s.generation(st1))
    assert compiles.count == 0


@pytest.mark.slow
def test_fixed_threshold_stops_everyone_below_it():
    cfg = experiment.preset("linear", population_size=8, batch_size=4, fec=False).search
    t = tasks.linear_regression(3, 4, 20, 10)
    s = HurdleSearch(cfg, t, HurdleConfig(num_tasks=2, threshold=2.0))  # fitness is <= 1
    s.generation(s.init(jax.random.key(3)))
    assert s.hurdle_counters.stopped == 8 and s.hurdle_counters.pairs_avoided == 8


@pytest.mark.parametrize("kw, match", [
    (dict(num_tasks=0, threshold=0.5), "num_tasks"),
    (dict(num_tasks=1), "exactly one"),
    (dict(num_tasks=1, threshold=0.5, percentile=50), "exactly one"),
    (dict(num_tasks=1, percentile=150), "percentile"),
    (dict(num_tasks=1, threshold=float("nan")), "threshold"),
])
def test_bad_hurdle_config(kw, match):
    with pytest.raises(ValueError, match=match):
        HurdleConfig(**kw)


def test_hurdle_needs_fewer_stage1_tasks():
    cfg = experiment.preset("linear", population_size=8, batch_size=4, fec=False).search
    with pytest.raises(ValueError, match="below the number of search tasks"):
        HurdleSearch(cfg, tasks.linear_regression(2, 4, 20, 10), HurdleConfig(2, 0.5))


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["host", "native"])
def test_hurdle_with_fec_gives_the_uncached_fitness(mode):
    """Hurdle + FEC against the same hurdle without the cache (deterministic programs: a
    cached pair must give what evaluating it gives): identical populations after 3
    generations, with hits; lookups as worked out by hand: the initial population P*T, then
    per generation every child's k stage-1 pairs plus T-k for each child past the hurdle
    (stopped children never look up their stage-2 pairs)."""
    if mode == "native" and not fec_lib.supported():
        pytest.skip("native FEC unavailable")
    base = experiment.preset("linear", population_size=16, batch_size=8, fec=False).search
    t = tasks.linear_regression(4, 4, 20, 10)
    h = HurdleConfig(num_tasks=1, percentile=50)
    out = {}
    for fec in (None, mode):
        s = HurdleSearch(dataclasses.replace(base, fec=fec), t, h)
        st = s.init(jax.random.key(0))
        for _ in range(3):
            st = s.generation(st)
        out[fec] = (np.asarray(st.evolution.fitness), s.counters, s.hurdle_counters)
    (f0, c0, h0), (f1, c1, h1) = out[None], out[mode]
    np.testing.assert_array_equal(f1, f0)
    assert h1 == h0 and 0 < h1.stopped < 3 * 16
    P, T, k, G = 16, 4, 1, 3
    assert c1.fec_lookups == P * T + G * P * k + (G * P - h1.stopped) * (T - k)
    # the cache saved evaluations: fewer (program, task) runs than without it (20 train
    # steps each there)
    assert c1.fec_hits > 0 and c1.fec_lookups - c1.fec_hits < c0.train_steps // 20
