"""Shared pieces of the weight-sharing algorithms: state, optimizers, one weight step.

Published defaults (DARTS, Liu et al. 2019, ``train_search.py``; also used by GDAS and by
Li & Talwalkar's random search with weight sharing): weights by SGD, momentum 0.9,
learning rate 0.025 cosine-annealed to 0.001, weight decay 3e-4 (coupled, added to the
gradient after clipping the gradient's global norm to 5); architecture by Adam, learning
rate 3e-4, betas (0.5, 0.999), weight decay 1e-3 (coupled, as PyTorch's Adam).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct

from nas.weight_sharing.functional import Batch, SupernetFns, all_finite
from nas.weight_sharing.selection import Selection


@dataclasses.dataclass(frozen=True)
class WeightOptim:
    """SGD for the shared weights (DARTS defaults); cosine over ``num_steps``."""

    learning_rate: float = 0.025
    learning_rate_min: float = 0.001
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 3e-4
    grad_clip: float = 5.0

    def schedule(self, num_steps: int) -> optax.Schedule:
        return optax.cosine_decay_schedule(
            self.learning_rate, max(int(num_steps), 1),
            alpha=self.learning_rate_min / self.learning_rate)

    def make(self, num_steps: int) -> optax.GradientTransformation:
        return optax.chain(
            optax.clip_by_global_norm(self.grad_clip),
            optax.add_decayed_weights(self.weight_decay),
            optax.sgd(self.schedule(num_steps), momentum=self.momentum, nesterov=self.nesterov))


@dataclasses.dataclass(frozen=True)
class ArchOptim:
    """Adam for the architecture parameters (DARTS defaults)."""

    learning_rate: float = 3e-4
    b1: float = 0.5
    b2: float = 0.999
    weight_decay: float = 1e-3

    def make(self) -> optax.GradientTransformation:
        return optax.chain(optax.add_decayed_weights(self.weight_decay),
                           optax.adam(self.learning_rate, b1=self.b1, b2=self.b2))


@struct.dataclass
class SearchState:
    """State of a DARTS / GDAS / random-search-with-sharing run (a pytree)."""

    params: Any
    arch: Any
    rest: Any
    w_opt: Any
    a_opt: Any
    step: jax.Array  # int32 scalar


def init_state(params, arch, rest, w_tx, a_tx) -> SearchState:
    """A fresh state with optimizer states and ``step = 0``."""
    return SearchState(params, arch, rest, w_tx.init(params), a_tx.init(arch) if a_tx else (),
                       jnp.zeros((), jnp.int32))


def weight_step(fns: SupernetFns, tx: optax.GradientTransformation, state: SearchState,
                batch: Batch, selection: Selection):
    """One optimizer step of the shared weights under ``selection`` (architecture fixed).
    Returns ``(params, w_opt, rest, loss, metric, finite)``."""
    (loss, (metric, rest)), grads = jax.value_and_grad(fns.loss, has_aux=True)(
        state.params, state.arch, state.rest, batch, selection)
    updates, w_opt = tx.update(grads, state.w_opt, state.params)
    params = optax.apply_updates(state.params, updates)
    return params, w_opt, rest, loss, metric, all_finite(loss, grads)


def check_batch(batch: Any, name: str) -> None:
    """``ValueError`` unless ``batch`` is an ``(x, y)`` pair of arrays."""
    if not (isinstance(batch, (tuple, list)) and len(batch) == 2):
        raise ValueError(f"{name} must be a pair (x, y) of arrays, got {type(batch).__name__}")
