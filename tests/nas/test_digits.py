"""The digits case-study space and trainer (tiny sizes)."""

import numpy as np
import pytest

from nas.benchmarks import digits


def test_space_contains_the_default_and_split_sizes():
    space = digits.space()
    back = space.materialize(space.encode(digits.DEFAULT))
    assert back == {**digits.DEFAULT, "lr": back["lr"]}
    assert back["lr"] == pytest.approx(digits.DEFAULT["lr"], rel=1e-6)  # float32 DNA
    dna = space.encode(digits.DEFAULT)
    assert space.decode(dna)["convs"] == "[2 items]"
    assert space.size() == float("inf")
    sizes = {k: len(v[1]) for k, v in digits.data().items()}
    assert sizes == {"train": 1078, "valid": 359, "test": 360}
    assert set(np.unique(digits.data()["test"][1])) == set(range(10))


def test_short_training_beats_chance_and_is_deterministic():
    cfg = {"convs": [(8, 3)], "act": "relu", "dense": 32, "lr": 3e-3}
    a = digits.evaluate(cfg, epochs=2, seed=0)
    b = digits.evaluate(cfg, epochs=2, seed=0)
    assert a == b
    assert a["valid"] > 0.5  # chance is 0.1


def test_trainer_compiles_once_per_architecture_and_reads_lr_and_seed():
    cfg = {"convs": [(8, 3)], "act": "relu", "dense": 32, "lr": 3e-3}
    digits.evaluate(cfg, epochs=2, seed=0)  # compiled here or by the test above
    before = digits.TRACE_COUNTS["train"]
    other_lr = digits.evaluate({**cfg, "lr": 1e-2}, epochs=2, seed=1)
    same_lr = digits.evaluate({**cfg, "convs": [[8, 3]]}, epochs=2, seed=1)
    assert digits.TRACE_COUNTS["train"] == before  # a repeated architecture: no retrace
    assert other_lr != same_lr  # lr and seed are arguments, not constants of the first call


@pytest.mark.slow
def test_cached_trainer_equals_a_fresh_compile():
    cfg = {"convs": [(8, 3)], "act": "relu", "dense": 32, "lr": 1e-2}
    cached = digits.evaluate(cfg, epochs=2, seed=1)
    digits.clear_trainer_cache()
    before = digits.TRACE_COUNTS["train"]
    assert digits.evaluate(cfg, epochs=2, seed=1) == cached
    assert digits.TRACE_COUNTS["train"] == before + 1


def test_bad_activation_is_rejected():
    with pytest.raises(ValueError, match="act must be one of"):
        digits.evaluate({"convs": [(8, 3)], "act": "swish", "dense": 32, "lr": 1e-3}, epochs=1)
