"""Random search with weight sharing (Li & Talwalkar, UAI 2019).

Training: each step samples one architecture uniformly (``space.sample``) and takes one
SGD step of the shared weights on it (only its ops compute). Selection:
:meth:`RandomSearchWS.select` scores ``num_candidates`` fresh uniform samples with the
inherited weights (one-shot, batched) and returns them best first; the paper then
retrains the best few from scratch. Optimizer defaults are DARTS' (as in the paper).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from nas.space import DNA
from nas.weight_sharing import oneshot
from nas.weight_sharing.base import WeightSharingAlgorithm
from nas.weight_sharing.functional import keep_if
from nas.weight_sharing.selection import from_dna
from nas.weight_sharing.training import SearchState, WeightOptim, init_state, weight_step


@dataclasses.dataclass(frozen=True, eq=False)
class RandomSearchWS(WeightSharingAlgorithm):
    """Random search with weight sharing; ``RandomSearchWS(supernet, num_steps)``."""

    num_steps: int = 1000
    weights: WeightOptim = WeightOptim()

    def __post_init__(self):
        if not isinstance(self.num_steps, int) or self.num_steps < 1:
            raise ValueError(
                f"RandomSearchWS.num_steps must be an int >= 1, got {self.num_steps!r}")
        object.__setattr__(self, "w_tx", self.weights.make(self.num_steps))
        super().__post_init__()

    def init(self) -> SearchState:
        return init_state(*self._init_parts, self.w_tx, None)

    def _step_impl(self, state: SearchState, train_batch, valid_batch, key):
        del valid_batch  # training only; selection is separate
        dna = self.space.sample(key)
        params, w_opt, rest, loss, acc, ok = weight_step(
            self.fns, self.w_tx, state, train_batch, from_dna(self.space, dna))
        new = state.replace(params=params, w_opt=w_opt, rest=rest, step=state.step + 1)
        return keep_if(ok, new, state), {"train_loss": loss, "train_metric": acc, "finite": ok}

    def select(self, state: SearchState, batch, key: jax.Array, num_candidates: int = 100,
               chunk: int = 16) -> tuple[DNA, jax.Array]:
        """``num_candidates`` uniform samples sorted by one-shot metric (best first) and
        their metrics."""
        dnas = self.space.sample_batch(key, num_candidates)
        metric, _ = oneshot.evaluate_state(self, state, dnas, batch, chunk)
        order = jnp.argsort(-metric)
        return jax.tree.map(lambda a: a[order], dnas), metric[order]

    def derive(self, state) -> DNA:
        raise ValueError(
            "RandomSearchWS has no architecture parameters to derive from: use "
            "select(state, batch, key) to rank sampled architectures with shared weights")
