"""GDAS (Dong & Yang, CVPR 2019): differentiable search with hard Gumbel-softmax samples.

Chosen as the collapse-robust variant because it attacks the cause DARTS' collapse is
usually traced to: in the softmax mixture, parameter-free ops (skip, pooling) get an
unfair share of the gradient early, when the parametric ops are still untrained, and the
continuous mixture lets the network lean on them. GDAS trains each step *one* sampled
op per edge (the hard argmax of a Gumbel-softmax sample of ``alpha``), so every op
must work alone and only the sampled op is computed (``lax.switch``: a step costs one
child, not the whole supernet); ``alpha`` still gets a gradient through the
straight-through soft sample. DrNAS/PC-DARTS/DARTS- would need extra machinery (a
Dirichlet posterior, channel sampling, an auxiliary skip), GDAS only a sampler.

Each step draws two samples: one to update ``alpha`` on the validation batch, one to
update the weights on the training batch. The temperature decays linearly from
``tau_max = 10`` to ``tau_min = 0.1`` over ``num_steps`` (the paper's schedule, per
epoch there); optimizers are DARTS' (as in the authors' code).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import optax

from nas.weight_sharing.base import WeightSharingAlgorithm
from nas.weight_sharing.functional import all_finite, keep_if
from nas.weight_sharing.selection import gumbel
from nas.weight_sharing.training import (
    ArchOptim,
    SearchState,
    WeightOptim,
    init_state,
    weight_step,
)


@dataclasses.dataclass(frozen=True, eq=False)
class Gdas(WeightSharingAlgorithm):
    """GDAS; ``Gdas(supernet, num_steps, tau_max=10.0, tau_min=0.1)``."""

    num_steps: int = 1000
    tau_max: float = 10.0
    tau_min: float = 0.1
    weights: WeightOptim = WeightOptim()
    arch: ArchOptim = ArchOptim()

    def __post_init__(self):
        if not isinstance(self.num_steps, int) or self.num_steps < 1:
            raise ValueError(f"Gdas.num_steps must be an int >= 1, got {self.num_steps!r}")
        if not 0 < self.tau_min <= self.tau_max:
            raise ValueError(
                f"Gdas needs 0 < tau_min <= tau_max, got {self.tau_min}, {self.tau_max}")
        object.__setattr__(self, "w_tx", self.weights.make(self.num_steps))
        object.__setattr__(self, "a_tx", self.arch.make())
        super().__post_init__()

    def init(self) -> SearchState:
        return init_state(*self._init_parts, self.w_tx, self.a_tx)

    def tau(self, step: jax.Array) -> jax.Array:
        """Temperature at ``step``: linear from ``tau_max`` to ``tau_min``."""
        frac = jnp.clip(step / max(self.num_steps - 1, 1), 0.0, 1.0)
        return self.tau_max - (self.tau_max - self.tau_min) * frac

    def _step_impl(self, state: SearchState, train_batch, valid_batch, key):
        fns, sp = self.fns, self.space
        k_arch, k_w = jax.random.split(key)
        tau = self.tau(state.step)

        def val_loss(arch):
            sel = gumbel(sp, fns.alpha(arch), k_arch, tau)
            return fns.loss(state.params, arch, state.rest, valid_batch, sel)[0]

        v_loss, a_grad = jax.value_and_grad(val_loss)(state.arch)
        a_upd, a_opt = self.a_tx.update(a_grad, state.a_opt, state.arch)
        arch = optax.apply_updates(state.arch, a_upd)
        moved = state.replace(arch=arch, a_opt=a_opt)
        sel_w = gumbel(sp, fns.alpha(arch), k_w, tau)
        params, w_opt, rest, t_loss, t_acc, w_ok = weight_step(
            fns, self.w_tx, moved, train_batch, sel_w)
        new = moved.replace(params=params, w_opt=w_opt, rest=rest, step=state.step + 1)
        ok = w_ok & all_finite(v_loss, a_grad, arch)
        out = keep_if(ok, new, state)
        metrics = {"train_loss": t_loss, "train_metric": t_acc, "valid_loss": v_loss,
                   "tau": tau, "finite": ok, **self.arch_metrics(fns.alpha(out.arch))}
        return out, metrics
