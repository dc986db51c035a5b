"""Symbolic neural architecture search for Flax: spaces, DNA and search algorithms."""

from nas.algorithms import RandomSearch, RegularizedEvolution, Reinforce
from nas.arch_params import ArchDistribution, ArchParam
from nas.early_stopping import StopByRank, StopByValue
from nas.primitives import (
    Deferred,
    Float,
    Int,
    ManyOf,
    OneOf,
    deferred,
    floatv,
    intv,
    manyof,
    oneof,
)
from nas.space import DNA, Decision, Space
from nas.tuner import Trial, Tuner, run_vectorized, search

__all__ = [
    "DNA", "ArchDistribution", "ArchParam", "Decision", "Deferred", "Float", "Int", "ManyOf",
    "OneOf", "RandomSearch", "RegularizedEvolution", "Reinforce", "Space", "StopByRank",
    "StopByValue", "Trial", "Tuner", "deferred", "floatv", "intv", "manyof", "oneof",
    "run_vectorized", "search",
]
