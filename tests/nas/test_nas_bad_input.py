"""Table-driven bad inputs to the public ``nas`` API: each must raise a ``ValueError``
whose message names the field (and, where there is one, the fix) -- never a traceback
from inside JAX, Flax or Python's builtins. The count is quoted in docs/nas.md."""

import collections
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import nas
from nas import DNA, Space, deferred, floatv, intv, manyof, oneof
from nas.benchmarks import digits
from nas.flows import cost_aware, latency, nested_search, param_count

KEY = jax.random.key(0)
Pair = collections.namedtuple("Pair", "a b")


@functools.cache
def space() -> Space:
    return Space({"op": oneof(["a", "b", "c"]), "m": manyof(2, ["x", "y", "z"]),
                  "lr": floatv(0.1, 1.0)})


def dna(ints=(0, 0, 1), floats=(0.5,)) -> DNA:
    return DNA(jnp.asarray(ints), jnp.asarray(floats, jnp.float32))


@functools.cache
def algo():
    return nas.RandomSearch(space())


def pending_trial():
    tuner = nas.Tuner(algo(), materialize=False)
    return tuner, tuner.ask()


def told_twice():
    tuner, trial = pending_trial()
    tuner.tell(trial, 1.0)
    tuner.tell(trial, 1.0)


def ask_twice():
    tuner = nas.Tuner(algo(), materialize=False)
    tuner.ask()
    tuner.ask()


def objective(d):
    return jnp.sum(d.ints).astype(jnp.float32)


def other_state():
    return {"population": jnp.zeros((4, 3), jnp.int32)}  # e.g. a state of another algorithm


DIGITS_CFG = {"convs": [(8, 3)], "act": "relu", "dense": 32, "lr": 1e-3}

CASES = [
    # primitives
    ("oneof-empty", lambda: oneof([]), "at least one"),
    ("oneof-str", lambda: oneof("abc"), "oneof.candidates must be a list or tuple"),
    ("oneof-dict", lambda: oneof({"a": 1}), "oneof.candidates must be a list or tuple"),
    ("name-empty", lambda: oneof([1], name=""), "name must be a non-empty string"),
    ("name-int", lambda: oneof([1], name=3), "name must be a non-empty string"),
    ("name-empty-part", lambda: oneof([1], name="a//b"), "non-empty parts"),
    ("manyof-k0", lambda: manyof(0, [1, 2]), "manyof.k must be an int >= 1"),
    ("manyof-k-bool", lambda: manyof(True, [1, 2]), "manyof.k must be an int >= 1"),
    ("manyof-k-float", lambda: manyof(2.0, [1, 2, 3]), "manyof.k must be an int >= 1"),
    ("manyof-k-too-big", lambda: manyof(4, [1, 2, 3]), r"k \(4\) must be <= len"),
    ("manyof-distinct", lambda: manyof(1, [1, 2], distinct="yes"),
     "manyof.distinct must be True or False"),
    ("manyof-sorted", lambda: manyof(1, [1, 2], sorted=1), "manyof.sorted must be True or"),
    ("manyof-str", lambda: manyof(1, "ab"), "manyof.candidates must be a list or tuple"),
    ("floatv-str", lambda: floatv("a", 1.0), "floatv.low must be a number"),
    ("floatv-bool", lambda: floatv(True, 2.0), "floatv.low must be a number"),
    ("floatv-nan", lambda: floatv(0.0, float("nan")), "finite low < high"),
    ("floatv-inf", lambda: floatv(0.0, float("inf")), "finite low < high"),
    ("floatv-empty", lambda: floatv(1.0, 1.0), "low < high"),
    ("floatv-scale", lambda: floatv(0.0, 1.0, "cubic"), "scale must be one of"),
    ("floatv-scale-none", lambda: floatv(0.0, 1.0, None), "scale must be one of"),
    ("floatv-log-0", lambda: floatv(0.0, 1.0, "log"), "must be > 0 for scale='log'"),
    ("intv-float", lambda: intv(1.0, 3), "intv.low must be an int"),
    ("intv-bool", lambda: intv(0, True), "intv.high must be an int"),
    ("intv-empty", lambda: intv(3, 1), "low <= high"),
    ("deferred-fn", lambda: deferred(5), "deferred.fn must be callable"),
    # templates
    ("space-no-choice", lambda: Space({"a": 1}), "holds no choice"),
    ("space-none", lambda: Space(None), "holds no choice"),
    ("space-set", lambda: Space({"a": {oneof([1, 2], name="s")}}), "inside a set at 'a'"),
    ("space-namedtuple", lambda: Space(Pair(oneof([1, 2]), 3)), "inside a Pair"),
    ("shared-other-candidates",
     lambda: Space({"a": oneof([1, 2], name="w"), "b": oneof([1, 4], name="w")}),
     "'w' is used in several places with different candidates"),
    ("shared-other-kind", lambda: Space({"a": oneof([1, 2], name="w"), "b": intv(1, 2, name="w")}),
     "'w' is used in several places with different kinds"),
    ("reused-unnamed", lambda: Space([oneof([1, 2])] * 2), "same oneof object is used at"),
    ("name-clash", lambda: Space({"w": oneof([1, 2]), "b": oneof([3, 4], name="w")}),
     "duplicate decision name 'w'"),
    ("sorted-nested", lambda: Space(manyof(2, [oneof([1, 2]), 3], sorted=True)),
     "sorted=True is not supported"),
    # Space methods
    ("sample-int-key", lambda: space().sample(0), "sample.key must be one PRNG key"),
    ("sample-keys", lambda: space().sample(jax.random.split(KEY, 3)),
     "sample.key must be one PRNG key"),
    ("sample-batch-n0", lambda: space().sample_batch(KEY, 0), "sample_batch.n must be an int"),
    ("sample-batch-float", lambda: space().sample_batch(KEY, 2.5), "sample_batch.n must be an"),
    ("mutate-key", lambda: space().mutate(1, dna()), "mutate.key must be one PRNG key"),
    ("mutate-population", lambda: space().mutate(KEY, dna([(0, 0, 1)] * 2, [(0.5,)] * 2)),
     "a population"),
    ("mutate-other-space", lambda: space().mutate(KEY, dna((0, 1), ())), "another space"),
    ("mutate-sigma", lambda: space().mutate(KEY, dna(), float_sigma=-1.0),
     "mutate.float_sigma must be >= 0"),
    ("materialize-list", lambda: space().materialize([0, 1, 2]), "expected a nas.DNA"),
    ("materialize-range", lambda: space().materialize(dna((3, 0, 1))), "'op' is out of range"),
    ("materialize-repeat", lambda: space().materialize(dna((0, 1, 1))), "repeats a choice"),
    ("materialize-nan", lambda: space().materialize(dna(floats=(np.nan,))), "'lr' is outside"),
    ("materialize-float-ints", lambda: space().materialize(dna((0.0, 0.0, 1.0))),
     "must be integers"),
    ("materialize-seed", lambda: space().materialize(dna(), seed=-1),
     "materialize.seed must be None or an int >= 0"),
    ("decode-population", lambda: space().decode(dna([(0, 0, 1)] * 2, [(0.5,)] * 2)),
     "a population"),
    ("encode-unproducible", lambda: space().encode({"op": "q", "m": ["x", "y"], "lr": 0.5}),
     "cannot be produced by this space"),
    ("enumerate-limit", lambda: Space(oneof([1, 2])).enumerate(limit=0),
     "enumerate.limit must be an int >= 1"),
    ("enumerate-floats", lambda: space().enumerate(), "needs a finite space"),
    # Tuner, search, run_vectorized
    ("tuner-algorithm", lambda: nas.Tuner(object()), "Tuner.algorithm must be a nas search"),
    ("tuner-space", lambda: nas.Tuner(space()), "Tuner.algorithm must be a nas search"),
    ("tuner-seed-negative", lambda: nas.Tuner(algo(), seed=-1), "Tuner.seed must be an int >= 0"),
    ("tuner-seed-float", lambda: nas.Tuner(algo(), seed=1.5), "Tuner.seed must be an int >= 0"),
    ("tuner-early-stopping", lambda: nas.Tuner(algo(), early_stopping=object()),
     "Tuner.early_stopping must be None or a policy"),
    ("tuner-materialize", lambda: nas.Tuner(algo(), materialize="no"),
     "Tuner.materialize must be True or False"),
    ("tell-str", lambda: pending_trial()[0].tell(pending_trial()[1], "good"),
     "tell.reward must be a number"),
    ("tell-none", lambda: (lambda t, tr: t.tell(tr, None))(*pending_trial()),
     "tell.reward must be a number"),
    ("tell-inf", lambda: (lambda t, tr: t.tell(tr, float("inf")))(*pending_trial()),
     r"tell.reward must not be \+inf"),
    ("tell-not-a-trial", lambda: pending_trial()[0].tell("trial", 1.0),
     "tell.trial must be a nas.Trial"),
    ("tell-twice", told_twice, "is not pending in this tuner"),
    ("ask-before-tell", ask_twice, r"tell\(\) the 1 pending trials"),
    ("report-step", lambda: pending_trial()[1].report(-1, 0.5), "report.step must be an int"),
    ("report-value", lambda: pending_trial()[1].report(1, "x"), "report.value must be a number"),
    ("search-objective", lambda: nas.search(5, algo(), 3), "search.objective must be callable"),
    ("search-algorithm", lambda: nas.search(len, "algo", 3), "search.algorithm must be a nas"),
    ("search-trials-0", lambda: nas.search(len, algo(), 0), "search.num_trials must be an int"),
    ("search-trials-float", lambda: nas.search(len, algo(), 2.0), "search.num_trials must be"),
    ("search-returns-dict", lambda: nas.search(lambda v: {"valid": 1.0}, algo(), 1,
                                               progress=False),
     "the objective's return value \\(trial 0\\) must be a number"),
    ("search-pass-trial", lambda: nas.search(len, algo(), 1, pass_trial="yes"),
     "search.pass_trial must be True or False"),
    ("vectorized-key", lambda: nas.run_vectorized(algo(), objective, 0, 3),
     "run_vectorized.key must be one PRNG key"),
    ("vectorized-steps", lambda: nas.run_vectorized(algo(), objective, KEY, 0),
     "run_vectorized.num_steps must be an int >= 1"),
    ("vectorized-objective", lambda: nas.run_vectorized(algo(), 3, KEY, 1),
     "run_vectorized.objective must be callable"),
    ("vectorized-vector-reward", lambda: nas.run_vectorized(algo(), lambda d: d.ints, KEY, 1),
     "must return one real scalar per DNA"),
    ("vectorized-not-jax", lambda: nas.run_vectorized(algo(), lambda d: float(d.ints[0]), KEY, 1),
     "must be a pure JAX function of one nas.DNA"),
    ("vectorized-state", lambda: nas.run_vectorized(algo(), objective, KEY, 1,
                                                    state=other_state()),
     "run_vectorized.state does not fit this RandomSearch"),
    # algorithms (their checks live in nas/algorithms.py)
    ("random-space", lambda: nas.RandomSearch("space"), "RandomSearch.space must be a nas.Space"),
    ("random-batch", lambda: nas.RandomSearch(space(), batch_size=0),
     "RandomSearch.batch_size must be an int >= 1"),
    ("evolution-population", lambda: nas.RegularizedEvolution(space(), population_size=0),
     "population_size must be an int >= 1"),
    ("random-batch-bool", lambda: nas.RandomSearch(space(), batch_size=True),
     "RandomSearch.batch_size must be an int >= 1"),
    ("evolution-tournament", lambda: nas.RegularizedEvolution(space(), 4, 5),
     "RegularizedEvolution.tournament_size must be <= population_size"),
    ("evolution-sigma", lambda: nas.RegularizedEvolution(space(), float_sigma=-1.0),
     "RegularizedEvolution.float_sigma must be > 0"),
    ("reinforce-entropy", lambda: nas.Reinforce(space(), entropy_weight=-0.1),
     "Reinforce.entropy_weight must be >= 0"),
    ("reinforce-lr", lambda: nas.Reinforce(space(), learning_rate=0.0),
     "Reinforce.learning_rate must be > 0"),
    ("reinforce-decay", lambda: nas.Reinforce(space(), baseline_decay=1.0),
     r"Reinforce.baseline_decay must be in \[0, 1\)"),
    ("arch-distribution-space", lambda: nas.ArchDistribution("space"),
     "ArchDistribution.space must be a nas.Space"),
    ("arch-distribution-std", lambda: nas.ArchDistribution(space(), init_std=0.0),
     "ArchDistribution.init_std must be > 0"),
    ("arch-distribution-key", lambda: nas.ArchDistribution(space()).sample(3),
     "ArchDistribution.sample.key must be one PRNG key"),
    ("arch-distribution-dna", lambda: nas.ArchDistribution(space()).log_prob(dna((0,), ())),
     "log_prob.dna: DNA shapes must be"),
    # early stopping and flows
    ("stop-by-value-list", lambda: nas.StopByValue([0.5]), "StopByValue.thresholds must be a"),
    ("stop-by-value-empty", lambda: nas.StopByValue({}), "StopByValue.thresholds must be a"),
    ("stop-by-value-step", lambda: nas.StopByValue({-1: 0.5}), "keys must be ints >= 0"),
    ("stop-by-value-value", lambda: nas.StopByValue({1: "x"}),
     r"StopByValue.thresholds\[1\] must be a number"),
    ("stop-by-rank-rank", lambda: nas.StopByRank({1: 1.5}), r"StopByRank.max_rank\[1\] must"),
    ("stop-by-rank-min", lambda: nas.StopByRank({1: 0.5}, min_reports=0),
     "StopByRank.min_reports must be an int >= 1"),
    ("nested-trials", lambda: nested_search(lambda h, a: 0.0, algo(), lambda h: algo(), 2.5, 1),
     "nested_search.outer_trials must be an int >= 1"),
    ("nested-inner", lambda: nested_search(lambda h, a: 0.0, algo(), algo(), 1, 1),
     "nested_search.inner_algorithm must be callable"),
    ("cost-aware-target", lambda: cost_aware(0.9, 10.0, target=0.0), "cost_aware.target must"),
    ("cost-aware-nan", lambda: cost_aware(0.9, 10.0, target=float("nan")),
     "cost_aware.target must be a finite number"),
    ("param-count", lambda: param_count("model"), "param_count.model must be a Flax NNX"),
    ("latency-repeats", lambda: latency(nnx.Linear(2, 2, rngs=nnx.Rngs(0)), jnp.ones((1, 2)),
                                        repeats=0), "latency.repeats must be an int >= 1"),
    # the digits case study
    ("digits-cfg-keys", lambda: digits.evaluate({"convs": [(8, 3)]}, epochs=1),
     "cfg must be a dict with keys convs, act, dense, lr"),
    ("digits-convs", lambda: digits.evaluate({**DIGITS_CFG, "convs": [8]}, epochs=1),
     r"cfg\['convs'\] must be a non-empty list of \(channels, kernel\) pairs"),
    ("digits-act", lambda: digits.evaluate({**DIGITS_CFG, "act": "swish"}, epochs=1),
     "act must be one of"),
    ("digits-lr", lambda: digits.evaluate({**DIGITS_CFG, "lr": -1.0}, epochs=1),
     r"cfg\['lr'\] must be a finite float > 0"),
    ("digits-epochs", lambda: digits.evaluate(DIGITS_CFG, epochs=0),
     "evaluate.epochs must be an int >= 1"),
    ("digits-batch", lambda: digits.evaluate(DIGITS_CFG, epochs=1, batch_size=10**6),
     "evaluate.batch_size must be <= the 1078 training images"),
]


def test_case_ids_are_unique():
    ids = [c[0] for c in CASES]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("make,match", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_raises_a_clear_value_error(make, match):
    with pytest.raises(ValueError, match=match):
        make()
