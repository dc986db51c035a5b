"""Search, presets, simplification and export (fast subset)."""

import jax
import numpy as np
import pytest
from reference_interpreter import tournament_children

from evojax_zero import experiment
from evojax_zero import program as P
from evojax_zero.evaluate import analysis
from evojax_zero.evaluate.evaluator import EvalConfig, Evaluator
from evojax_zero.program import tasks
from evojax_zero.search import initial as algorithms
from evojax_zero.search.loop import Search
from evojax_zero.search.mutation import mutate

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


def _reference_generation(cfg, evolution, key, tasks_):
    """One generation written out step by step from its definition (P / B steps of: B
    tournaments of T draws with replacement, first best wins; each winner mutated with its own
    key; children evaluated; the B oldest members replaced), on host NumPy arrays, with the
    keys the search documents: ``key, k_ask, k_eval = split(key, 3)``, then
    ``k_sel, k_mut = split(k_ask)``, draws ``randint(k_sel, (B, T), 0, P)`` and child keys
    ``split(k_mut, B)``."""
    P, B = cfg.population_size, cfg.batch_size
    pop = jax.tree.map(np.array, jax.device_get(evolution.population))
    fit = np.array(evolution.fitness)
    oldest = int(evolution.oldest)
    mutate_batch = jax.jit(jax.vmap(lambda k, p: mutate(k, p, cfg.mutation, cfg.spec)))
    evaluator = Evaluator(cfg.spec, EvalConfig(max_abs_error=cfg.max_abs_error,
                                               combine=cfg.combine), backend=cfg.backend)
    for _ in range(P // B):
        key, k_eval, children = tournament_children(key, pop, fit, cfg, mutate_batch)
        child_fit = np.asarray(evaluator(children, tasks_, k_eval))
        slots = (oldest + np.arange(B)) % P
        for leaf, new in zip(jax.tree.leaves(pop), jax.tree.leaves(children), strict=True):
            leaf[slots] = np.asarray(new)
        fit[slots] = child_fit
        oldest = (oldest + B) % P
    return pop, fit


def _assert_same_population(got, want):
    for path_leaf, w in zip(jax.tree_util.tree_leaves_with_path(got), jax.tree.leaves(want),
                            strict=True):
        path, g = path_leaf
        g, w = np.asarray(g), np.asarray(w)
        if np.issubdtype(w.dtype, np.floating):
            np.testing.assert_allclose(g, w, rtol=1e-6, err_msg=str(path))
        else:
            np.testing.assert_array_equal(g, w, err_msg=str(path))


def test_search_generation_replaces_the_oldest_with_evaluated_children(compile_count):
    """A generation (FEC off) equals the step-by-step reference above: every member replaced
    (P evaluations, oldest first) by a mutated tournament winner whose stored fitness is its
    evaluation; counters advance by P individuals and P * tasks * train steps; same seed,
    same result; the second generation does not compile anything."""
    cfg = experiment.preset("linear", population_size=8, batch_size=4, fec=False).search
    t = tasks.linear_regression(2, 4, 20, 10)
    evaluator = Evaluator(cfg.spec, EvalConfig(max_abs_error=cfg.max_abs_error,
                                               combine=cfg.combine), backend=cfg.backend)
    steps_per_individual = t.num_tasks * t.num_train * t.num_epochs  # 2 tasks x 20 examples
    s = Search(cfg, t)
    st0 = s.init(jax.random.key(0))
    assert (s.counters.individuals, s.counters.train_steps) == (8, 8 * steps_per_individual)
    # the initial fitness is the evaluation of the initial population (programs of the
    # linear preset have no random ops: the evaluation key does not matter)
    np.testing.assert_allclose(st0.evolution.fitness,
                               evaluator(st0.evolution.population, t, jax.random.key(5)),
                               rtol=1e-6)
    want_pop, want_fit = _reference_generation(cfg, st0.evolution, st0.key, t)
    st1 = s.generation(st0)
    assert (s.counters.individuals, s.counters.train_steps) == (16, 16 * steps_per_individual)
    assert int(st1.evolution.num_evaluated) == 16 and int(st1.evolution.oldest) == 0
    _assert_same_population(st1.evolution.population, want_pop)
    np.testing.assert_allclose(st1.evolution.fitness, want_fit, rtol=1e-6)
    # every stored fitness is the evaluation of the program stored beside it
    np.testing.assert_allclose(st1.evolution.fitness,
                               evaluator(st1.evolution.population, t, jax.random.key(5)),
                               rtol=1e-6)
    # the generation changed the population (the children are not all unmutated clones)
    assert any((np.asarray(a) != np.asarray(b)).any() for a, b in zip(
        jax.tree.leaves(st0.evolution.population), jax.tree.leaves(st1.evolution.population),
        strict=True))
    with compile_count() as compiles:
        st2 = s.generation(st1)
        jax.block_until_ready(st2)
    assert compiles.count == 0  # second generation: no recompile
    assert (s.counters.individuals, s.counters.train_steps) == (24, 24 * steps_per_individual)
    # same seed, same result (a fresh Search of the same config)
    again = Search(cfg, t)
    st = again.generation(again.generation(again.init(jax.random.key(0))))
    _assert_same_population(st.evolution.population, st2.evolution.population)
    np.testing.assert_array_equal(st.evolution.fitness, st2.evolution.fitness)


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
