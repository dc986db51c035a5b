"""Weight-sharing NAS on any ``nas.Space``: supernets, DARTS, GDAS, ENAS, random search.

>>> supernet = Supernet(space)                 # every candidate's weights, once
>>> algo = Darts(supernet, num_steps=200, order=2)
>>> state, history = run(algo, batches, 200, key=jax.random.key(0))
>>> model = space.materialize(algo.derive(state))   # a plain stand-alone NNX model

See docs/weight_sharing.md.
"""

from nas.weight_sharing import host_memory, step_jit
from nas.weight_sharing.base import WeightSharingAlgorithm
from nas.weight_sharing.controller import LSTMController
from nas.weight_sharing.darts import Darts
from nas.weight_sharing.derive import derive
from nas.weight_sharing.diagnostics import dominant_eigenvalue, entropy, param_free_share, plot
from nas.weight_sharing.driver import Checkpointer, run
from nas.weight_sharing.enas import Enas, EnasState
from nas.weight_sharing.functional import SupernetFns, accuracy, cross_entropy
from nas.weight_sharing.gdas import Gdas
from nas.weight_sharing.oneshot import evaluate, evaluate_state
from nas.weight_sharing.random_ws import RandomSearchWS
from nas.weight_sharing.selection import Selection, from_dna, gumbel, mix
from nas.weight_sharing.supernet import MixedOp, Supernet
from nas.weight_sharing.training import ArchOptim, SearchState, WeightOptim

__all__ = [
    "ArchOptim", "Checkpointer", "Darts", "Enas", "EnasState", "Gdas", "LSTMController",
    "MixedOp", "RandomSearchWS", "SearchState", "Selection", "Supernet", "SupernetFns",
    "WeightOptim", "WeightSharingAlgorithm", "accuracy", "cross_entropy", "derive",
    "dominant_eigenvalue", "entropy", "evaluate", "evaluate_state", "from_dna", "gumbel",
    "host_memory", "mix", "param_free_share", "plot", "run", "step_jit",
]
