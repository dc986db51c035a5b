"""REINFORCE (Williams, 1992; Zoph & Le, 2017): a policy-gradient controller over DNA
(an ``ArchDistribution``) with an exponential-moving-average baseline and Adam."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import optax
from flax import nnx, struct

from nas.algorithms.base import Best, check_common, init_best, sanitize, update_best
from nas.arch_params import ArchDistribution
from nas.checks import check_real
from nas.space import DNA, Space


@struct.dataclass
class ReinforceState:
    params: nnx.State  # the ArchParam leaves of an ArchDistribution
    opt_state: optax.OptState
    baseline: jax.Array  # float32[]
    best: Best


@dataclasses.dataclass(frozen=True)
class Reinforce:
    """REINFORCE controller: an :class:`ArchDistribution` trained by policy gradient
    with an exponential-moving-average baseline and Adam."""

    space: Space
    batch_size: int = 1
    learning_rate: float = 0.05
    baseline_decay: float = 0.95
    entropy_weight: float = 0.0

    def __post_init__(self):
        check_common("Reinforce", self.space, self.batch_size)
        if not check_real("Reinforce.learning_rate", self.learning_rate) > 0:
            raise ValueError(f"Reinforce.learning_rate must be > 0, got {self.learning_rate}")
        if not 0 <= check_real("Reinforce.baseline_decay", self.baseline_decay) < 1:
            raise ValueError(
                f"Reinforce.baseline_decay must be in [0, 1), got {self.baseline_decay}")
        if check_real("Reinforce.entropy_weight", self.entropy_weight) < 0:
            raise ValueError(f"Reinforce.entropy_weight must be >= 0, got {self.entropy_weight}")
        graphdef, _ = nnx.split(ArchDistribution(self.space))
        object.__setattr__(self, "graphdef", graphdef)
        object.__setattr__(self, "optimizer", optax.adam(self.learning_rate))

    def init(self, key: jax.Array) -> ReinforceState:
        del key
        _, params = nnx.split(ArchDistribution(self.space))
        return ReinforceState(params, self.optimizer.init(params),
                              jnp.full((), jnp.nan, jnp.float32), init_best(self.space))

    def distribution(self, state: ReinforceState) -> ArchDistribution:
        """The controller's current distribution as an NNX module."""
        return nnx.merge(self.graphdef, state.params)

    def ask(self, key: jax.Array, state: ReinforceState) -> DNA:
        dist = self.distribution(state)
        return jax.vmap(dist.sample)(jax.random.split(key, self.batch_size))

    def tell(self, state: ReinforceState, dna: DNA, reward: jax.Array) -> ReinforceState:
        raw = sanitize(reward)
        ok = jnp.isfinite(raw)
        r = jnp.where(ok, raw, 0.0)  # failed trials get reward 0 in the gradient
        mean_r = jnp.sum(r) / jnp.maximum(jnp.sum(ok), 1)
        baseline = jnp.where(jnp.isnan(state.baseline), mean_r, state.baseline)
        adv = jnp.where(ok, r - baseline, 0.0)

        def loss_fn(params):
            dist = nnx.merge(self.graphdef, params)
            logp = jax.vmap(dist.log_prob)(dna)
            return -jnp.mean(adv * logp) - self.entropy_weight * dist.entropy()

        grads = jax.grad(loss_fn)(state.params)
        updates, opt_state = self.optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        new_baseline = self.baseline_decay * baseline + (1 - self.baseline_decay) * mean_r
        return ReinforceState(params, opt_state, new_baseline.astype(jnp.float32),
                              update_best(state.best, dna, raw))
