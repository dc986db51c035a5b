"""Search algorithms without weight sharing, one per module, behind one ask/tell protocol
(:mod:`nas.algorithms.base`): random search, regularized evolution, REINFORCE."""

from nas.algorithms.base import Best, SearchAlgorithm
from nas.algorithms.evolution import EvolutionSearchState, RegularizedEvolution
from nas.algorithms.random_search import RandomSearch, RandomSearchState
from nas.algorithms.reinforce import Reinforce, ReinforceState

__all__ = ["Best", "SearchAlgorithm", "EvolutionSearchState", "RegularizedEvolution",
           "RandomSearch", "RandomSearchState", "Reinforce", "ReinforceState"]
