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

from nas.weight_sharing import step_jit
from nas.weight_sharing.base import WeightSharingAlgorithm
from nas.weight_sharing.functional import all_finite, keep_if
from nas.weight_sharing.selection import mix
from nas.weight_sharing.training import (
    ArchOptim,
    SearchState,
    WeightOptim,
    init_state,
)

HYPERGRADIENTS = ("exact", "finite_difference")


def _global_norm(tree) -> jax.Array:
    return optax.tree.norm(tree)


class PiecewiseStep:
    """A step made of separately jitted pieces; ``_cache_size()`` sums their compiles."""

    def __init__(self, fn, jitted: dict):
        self.fn = fn
        self.jitted = jitted

    def __call__(self, *args):
        return self.fn(*args)

    def _cache_size(self) -> int:
        return sum(f._cache_size() for f in self.jitted.values())


@dataclasses.dataclass(frozen=True, eq=False)
class Darts(WeightSharingAlgorithm):
    """DARTS; ``Darts(supernet, num_steps, order=1 | 2, hypergradient=...)``.

    ``split_step`` (second order only, default True): run the step as separately jitted
    pieces, whose first compile takes well under half the one-program step's (29-32 vs
    71 CPU-s on the speed benchmark, 2026-12-01) and whose steps ran no slower there (2.7-2.8
    vs 2.1 steps per CPU-second with ``host_memory.keep_freed_memory``); ``False`` jits the
    step as one program."""

    num_steps: int = 1000
    order: int = 1
    hypergradient: str = "exact"
    weights: WeightOptim = WeightOptim()
    split_step: bool = True
    arch: ArchOptim = ArchOptim()

    def __post_init__(self):
        if self.order not in (1, 2):
            raise ValueError(f"Darts.order must be 1 or 2, got {self.order!r}")
        if self.hypergradient not in HYPERGRADIENTS:
            raise ValueError(
                f"Darts.hypergradient must be one of {HYPERGRADIENTS}, got {self.hypergradient!r}")
        if not isinstance(self.num_steps, int) or self.num_steps < 1:
            raise ValueError(f"Darts.num_steps must be an int >= 1, got {self.num_steps!r}")
        if not isinstance(self.split_step, bool):
            raise ValueError(f"Darts.split_step must be True or False, got {self.split_step!r}")
        object.__setattr__(self, "w_tx", self.weights.make(self.num_steps))
        object.__setattr__(self, "a_tx", self.arch.make())
        object.__setattr__(self, "w_lr", self.weights.schedule(self.num_steps))
        super().__post_init__()
        if self.order == 2 and self.split_step:
            jitted = {k: step_jit.jit(v) for k, v in self._pieces().items()}
            jitted["combine_and_update"] = step_jit.jit(self._combine_and_update)
            jitted["finish"] = step_jit.jit(self._finish)
            object.__setattr__(self, "_jitted", jitted)
            object.__setattr__(self, "_step", PiecewiseStep(self._piecewise_step, jitted))

    def init(self) -> SearchState:
        """State from the supernet's current weights and ``alpha``."""
        return init_state(*self._init_parts, self.w_tx, self.a_tx)

    # ------------------------------------------------------------------ gradients
    # Second order runs as a few separately jitted pieces (one compile each, reused at
    # equal shapes: the train and valid batches share one compile of the loss gradient)
    # instead of one program holding five backward passes: the first step compiles in
    # about a third of the time, and later steps run the same computation.
    def _mixed_loss(self, params, arch, rest, batch):
        """``(loss, (metric, new_rest))`` with every candidate mixed by ``softmax(alpha)``."""
        return self.fns.loss(params, arch, rest, batch, mix(self.space, self.fns.alpha(arch)))

    def _loss_grads(self, params, arch, rest, batch, base, step):
        """The loss under ``mix(alpha)`` and its gradients, plus the cheap elementwise
        points the second-order step needs next, from ``dw`` and ``base`` (one compile
        serves every loss gradient of the step): ``(loss, metric, new_rest, dw, da,
        virtual, w_plus, w_minus, eps)`` with ``virtual = base - xi * (dw + wd * base)``
        (the virtual step, ``xi`` the weight lr at ``step``) and ``w+- = base +- eps * dw``,
        ``eps = 0.01 / ||dw||`` (the paper's eq. 8; None for the exact hypergradient)."""
        (loss, (metric, new_rest)), (dw, da) = jax.value_and_grad(
            self._mixed_loss, argnums=(0, 1), has_aux=True)(params, arch, rest, batch)
        xi, wd = self.w_lr(step), self.weights.weight_decay
        virtual = jax.tree.map(lambda w, d: w - xi * (d + wd * w), base, dw)
        if self.hypergradient == "exact":  # no finite difference: fewer outputs to make
            return loss, metric, new_rest, dw, da, virtual, None, None, None
        eps = 0.01 / _global_norm(dw)
        w_plus = jax.tree.map(lambda w, d: w + eps * d, base, dw)
        w_minus = jax.tree.map(lambda w, d: w - eps * d, base, dw)
        return loss, metric, new_rest, dw, da, virtual, w_plus, w_minus, eps

    def _arch_grad(self, params, arch, rest, batch):
        """``d loss / d arch`` under ``mix(alpha)`` (the finite difference's w+ and w-)."""
        return jax.grad(lambda a: self._mixed_loss(params, a, rest, batch)[0])(arch)

    def _mixed_hvp(self, params, arch, rest, batch, v):
        """``d/d arch <grad_w loss(w, arch), v>`` at ``w = params``: the exact second-order
        term, as the gradient in ``arch`` of the loss' directional derivative along ``v``
        (reverse over forward; the forward-over-reverse form ran 1.45x slower on the speed
        benchmark, 2026-12-01)."""
        def directional(a):
            return jax.jvp(lambda w: self._mixed_loss(w, a, rest, batch)[0], (params,), (v,))[1]

        return jax.grad(directional)(arch)

    def _combine(self, step, da, second):
        """The hypergradient: ``da - xi * hvp`` (exact) or ``da - xi * (g+ - g-) / 2 eps``
        (finite difference, ``second = (g+, g-, eps)``)."""
        xi = self.w_lr(step)
        if self.hypergradient == "exact":
            return jax.tree.map(lambda a, h: a - xi * h, da, second)
        g_plus, g_minus, eps = second
        return jax.tree.map(lambda a, p, m: a - xi * (p - m) / (2 * eps), da, g_plus, g_minus)

    def _hypergradient(self, state: SearchState, train_batch, valid_batch, f):
        """Second-order ``(da, valid_loss, second)`` from the pieces in ``f`` (a dict of the
        methods above, plain or jitted); :meth:`_combine` makes the hypergradient."""
        rest, params, arch, step = state.rest, state.params, state.arch, state.step
        w2 = f["loss_grads"](params, arch, rest, train_batch, params, step)[5]
        loss, _, _, dw2, da, _, w_plus, w_minus, eps = f["loss_grads"](
            w2, arch, rest, valid_batch, params, step)
        if self.hypergradient == "exact":
            return da, loss, f["mixed_hvp"](params, arch, rest, train_batch, dw2)
        g_plus = f["arch_grad"](w_plus, arch, rest, train_batch)
        g_minus = f["arch_grad"](w_minus, arch, rest, train_batch)
        return da, loss, (g_plus, g_minus, eps)

    def _pieces(self) -> dict:
        return {"loss_grads": self._loss_grads, "arch_grad": self._arch_grad,
                "mixed_hvp": self._mixed_hvp}

    def arch_gradient(self, state: SearchState, train_batch, valid_batch):
        """``(grad wrt arch, valid_loss)`` for this algorithm's order / hypergradient
        (pure, jittable as one program)."""
        if self.order == 1:
            loss, da = jax.value_and_grad(lambda a: self._mixed_loss(
                state.params, a, state.rest, valid_batch)[0])(state.arch)
            return da, loss
        da, loss, second = self._hypergradient(state, train_batch, valid_batch, self._pieces())
        return self._combine(state.step, da, second), loss

    # ----------------------------------------------------------------------- step
    def _arch_update(self, state: SearchState, a_grad):
        a_upd, a_opt = self.a_tx.update(a_grad, state.a_opt, state.arch)
        return state.replace(arch=optax.apply_updates(state.arch, a_upd), a_opt=a_opt)

    def _combine_and_update(self, state: SearchState, da, second):
        a_grad = self._combine(state.step, da, second)
        return self._arch_update(state, a_grad), a_grad

    def _finish(self, state: SearchState, moved: SearchState, a_grad, v_loss, t_loss, t_acc,
                rest, dw):
        """The weight update, the NaN guard and the metrics."""
        updates, w_opt = self.w_tx.update(dw, moved.w_opt, moved.params)
        params = optax.apply_updates(moved.params, updates)
        new = moved.replace(params=params, w_opt=w_opt, rest=rest, step=state.step + 1)
        ok = all_finite(t_loss, dw) & all_finite(v_loss, a_grad, moved.arch)
        out = keep_if(ok, new, state)
        metrics = {"train_loss": t_loss, "train_metric": t_acc, "valid_loss": v_loss,
                   "finite": ok, **self.arch_metrics(self.fns.alpha(out.arch))}
        return out, metrics

    def _step_impl(self, state: SearchState, train_batch, valid_batch, key):
        del key  # deterministic
        a_grad, v_loss = self.arch_gradient(state, train_batch, valid_batch)
        moved = self._arch_update(state, a_grad)
        (t_loss, (t_acc, rest)), dw = jax.value_and_grad(self._mixed_loss, has_aux=True)(
            moved.params, moved.arch, state.rest, train_batch)
        return self._finish(state, moved, a_grad, v_loss, t_loss, t_acc, rest, dw)

    def _piecewise_step(self, state: SearchState, train_batch, valid_batch, key):
        """Second order: :meth:`_step_impl`'s computation from separately jitted pieces."""
        del key
        f = self._jitted
        da, v_loss, second = self._hypergradient(state, train_batch, valid_batch, f)
        moved, a_grad = f["combine_and_update"](state, da, second)
        t_loss, t_acc, rest, dw = f["loss_grads"](moved.params, moved.arch, state.rest,
                                                  train_batch, state.params, state.step)[:4]
        return f["finish"](state, moved, a_grad, v_loss, t_loss, t_acc, rest, dw)
