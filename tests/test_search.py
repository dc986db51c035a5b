"""Search, presets, simplification and export (fast subset)."""

import jax
import numpy as np
import pytest

from evojax_zero import experiment
from evojax_zero import program as P
from evojax_zero.evaluate import analysis
from evojax_zero.program import tasks
from evojax_zero.search import initial as algorithms
from evojax_zero.search.loop import Search

LIN_SPEC = P.ProgramSpec(4, 3, 1, 4, setup_ops=(56,), predict_ops=(27,),
                         learn_ops=(2, 3, 18, 23), max_setup_size=5, max_predict_size=1,
                         max_learn_size=4)


def test_presets_and_overrides_validate():
    cfg = experiment.preset("demo", population_size=40, batch_size=20)
    assert cfg.search.population_size == 40 and cfg.search.fec is not None
    assert cfg.search.mutation.mutate_prob == 0.9 and cfg.randomize_task_seeds
    nl = experiment.preset("nonlinear")
    assert nl.search.fec is None and nl.search.mutation.mutation_types == (0, 4, 5, 6)
    with pytest.raises(ValueError, match="unknown preset overrides"):
        experiment.preset("demo", populaton_size=3)
    with pytest.raises(ValueError, match="unknown preset"):
        experiment.preset("cifar")
    with pytest.raises(ValueError, match="divide"):
        experiment.preset("demo", population_size=30, batch_size=20)


def test_search_generation_deterministic_no_recompile():
    cfg = experiment.preset("linear", population_size=8, batch_size=4, fec=False).search
    t = tasks.linear_regression(2, 4, 20, 10)
    runs = []
    s = Search(cfg, t)
    for _ in range(2):
        st = s.init(jax.random.key(0))
        st = s.generation(st)
        n = s._generation._cache_size()
        st = s.generation(st)
        assert s._generation._cache_size() == n  # second generation: no recompile
        assert s.counters.individuals == 24 and s.counters.train_steps == 24 * 2 * 20
        runs.append(np.asarray(st.evolution.fitness))
    np.testing.assert_array_equal(runs[0], runs[1])


def test_simplify_removes_dead_code_and_keeps_fitness():
    lists = algorithms.linear_lists()
    lists["setup"].append([56, 0, 0, 3, 0.7])  # s3 is overwritten in Learn before use: dead
    lists["learn"].insert(0, [27, 0, 0, 2])  # s2 = dot(v0, v0) kills the learning rate ...
    lists["learn"].pop(0)  # ... removed again: program is LINEAR + one dead setup line
    prog = P.from_lists(LIN_SPEC, **lists)
    keep = analysis.live_instructions(prog)
    assert keep["setup"] == [True, False] and all(keep["learn"]) and all(keep["predict"])
    t = tasks.linear_regression(2, 4, 200, 50)
    simp, f = analysis.simplify_verified(prog, LIN_SPEC,
                                         lambda p: experiment.evaluate(LIN_SPEC, p, t))
    assert int(simp.setup.size) == 1 and f == experiment.evaluate(LIN_SPEC, prog, t)


def test_export_linear_matches_numpy_sgd():
    prog = algorithms.initial_program("linear", LIN_SPEC, (1, 1, 4))
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((50, 4)), rng.standard_normal(4)
    y = x @ w
    preds = analysis.fit_predict(prog, LIN_SPEC, x, y, x[:5])
    wh = np.zeros(4)  # hand-written SGD, lr 0.01
    for xi, yi in zip(x, y, strict=True):
        wh += 0.01 * (yi - wh @ xi) * xi
    np.testing.assert_allclose(preds, x[:5] @ wh, rtol=1e-4, atol=1e-5)


def test_progress_line_format():
    from evojax_zero.search.loop import progress_line

    line = progress_line(1000, 12.4, {"mean": 0.5, "stdev": 0.25, "best": 0.75})
    assert line == ("indivs=1000, elapsed_secs=12, mean=0.500000, stdev=0.250000, "
                    "best fit=0.750000,")
