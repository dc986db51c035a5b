"""DARTS (Liu, Simonyan & Yang, ICLR 2019): differentiable architecture search.

Every ``oneof`` is relaxed to ``softmax(alpha)``-weighted sums of its candidates; each step
first updates ``alpha`` on a validation batch, then the shared weights on a training batch
(the order of the original ``train_search.py``).

``order=1``: the architecture gradient is ``grad_alpha L_val(w, alpha)``.
``order=2``: it is the gradient of ``L_val(w', alpha)`` through one virtual weight step
``w' = w - xi * (grad_w L_train(w, alpha) + weight_decay * w)`` with ``xi`` the current
weight learning rate (the paper's eq. 7 plus the coupled weight decay; the virtual step
has no momentum). ``hypergradient="exact"`` differentiates through the unrolled step with
JAX (one Hessian-vector product, exact); ``"finite_difference"`` is the paper's eq. 8:
``grad_alpha L_val(w', alpha) - xi * (grad_alpha L_train(w+, alpha) - grad_alpha
L_train(w-, alpha)) / (2 eps)`` with ``w+- = w +- eps * grad_w' L_val(w', alpha)`` and
``eps = 0.01 / ||grad_w' L_val(w', alpha)||``.

Defaults are the paper's (see :mod:`nas.weight_sharing.training`).
"""

from __future__ import annotations

import dataclasses

import jax
import optax

from nas.weight_sharing.base import WeightSharingAlgorithm
from nas.weight_sharing.functional import all_finite, keep_if
from nas.weight_sharing.selection import mix
from nas.weight_sharing.training import (
    ArchOptim,
    SearchState,
    WeightOptim,
    init_state,
    weight_step,
)

HYPERGRADIENTS = ("exact", "finite_difference")


def _global_norm(tree) -> jax.Array:
    return optax.tree.norm(tree)


@dataclasses.dataclass(frozen=True, eq=False)
class Darts(WeightSharingAlgorithm):
    """DARTS; ``Darts(supernet, num_steps, order=1 | 2, hypergradient=...)``."""

    num_steps: int = 1000
    order: int = 1
    hypergradient: str = "exact"
    weights: WeightOptim = WeightOptim()
    arch: ArchOptim = ArchOptim()

    def __post_init__(self):
        if self.order not in (1, 2):
            raise ValueError(f"Darts.order must be 1 or 2, got {self.order!r}")
        if self.hypergradient not in HYPERGRADIENTS:
            raise ValueError(
                f"Darts.hypergradient must be one of {HYPERGRADIENTS}, got {self.hypergradient!r}")
        if not isinstance(self.num_steps, int) or self.num_steps < 1:
            raise ValueError(f"Darts.num_steps must be an int >= 1, got {self.num_steps!r}")
        object.__setattr__(self, "w_tx", self.weights.make(self.num_steps))
        object.__setattr__(self, "a_tx", self.arch.make())
        object.__setattr__(self, "w_lr", self.weights.schedule(self.num_steps))
        super().__post_init__()

    def init(self) -> SearchState:
        """State from the supernet's current weights and ``alpha``."""
        return init_state(*self._init_parts, self.w_tx, self.a_tx)

    # ------------------------------------------------------------------ gradients
    def arch_gradient(self, state: SearchState, train_batch, valid_batch):
        """``(grad wrt arch, valid_loss)`` for this algorithm's order / hypergradient."""
        fns, sp = self.fns, self.space
        rest = state.rest

        def val_loss(params, arch):
            return fns.loss(params, arch, rest, valid_batch, mix(sp, fns.alpha(arch)))[0]

        def train_loss(params, arch):
            return fns.loss(params, arch, rest, train_batch, mix(sp, fns.alpha(arch)))[0]

        if self.order == 1:
            loss, g = jax.value_and_grad(val_loss, argnums=1)(state.params, state.arch)
            return g, loss
        xi = self.w_lr(state.step)
        wd = self.weights.weight_decay

        def virtual_step(params, arch):
            g = jax.grad(train_loss)(params, arch)
            return jax.tree.map(lambda w, d: w - xi * (d + wd * w), params, g)

        if self.hypergradient == "exact":
            def unrolled(arch):
                return val_loss(virtual_step(state.params, arch), arch)

            loss, g = jax.value_and_grad(unrolled)(state.arch)
            return g, loss
        w2 = virtual_step(state.params, state.arch)
        loss, (dw, da) = jax.value_and_grad(val_loss, argnums=(0, 1))(w2, state.arch)
        eps = 0.01 / _global_norm(dw)
        w_plus = jax.tree.map(lambda w, d: w + eps * d, state.params, dw)
        w_minus = jax.tree.map(lambda w, d: w - eps * d, state.params, dw)
        g_plus = jax.grad(train_loss, argnums=1)(w_plus, state.arch)
        g_minus = jax.grad(train_loss, argnums=1)(w_minus, state.arch)
        g = jax.tree.map(lambda a, p, m: a - xi * (p - m) / (2 * eps), da, g_plus, g_minus)
        return g, loss

    # ----------------------------------------------------------------------- step
    def _step_impl(self, state: SearchState, train_batch, valid_batch, key):
        del key  # deterministic
        fns = self.fns
        a_grad, v_loss = self.arch_gradient(state, train_batch, valid_batch)
        a_upd, a_opt = self.a_tx.update(a_grad, state.a_opt, state.arch)
        arch = optax.apply_updates(state.arch, a_upd)
        moved = state.replace(arch=arch, a_opt=a_opt)
        params, w_opt, rest, t_loss, t_acc, w_ok = weight_step(
            fns, self.w_tx, moved, train_batch, mix(self.space, fns.alpha(arch)))
        new = moved.replace(params=params, w_opt=w_opt, rest=rest, step=state.step + 1)
        ok = w_ok & all_finite(v_loss, a_grad, arch)
        out = keep_if(ok, new, state)
        metrics = {"train_loss": t_loss, "train_metric": t_acc, "valid_loss": v_loss,
                   "finite": ok, **self.arch_metrics(fns.alpha(out.arch))}
        return out, metrics
