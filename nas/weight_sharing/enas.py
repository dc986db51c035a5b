"""ENAS (Pham et al., ICML 2018): a controller trained by REINFORCE on shared weights.

Each step (the paper alternates phases of many steps; here one of each per step):

1. shared weights: the controller samples a child, which takes one SGD step on a
   training batch (only its ops compute);
2. controller: ``num_samples`` children are sampled and scored on a validation batch with
   the shared weights (their accuracy); REINFORCE with an exponential-moving-
   average baseline: ``loss = -mean(log p(child) * (reward - baseline))``, reward plus
   ``entropy_weight`` times the sample's entropy, Adam. The children are scored one after
   the other (``lax.map``), so each computes only its own ops.

Defaults (paper, CIFAR-10): controller Adam lr 3.5e-4, entropy weight 1e-4, baseline
decay 0.99 (authors' code), LSTM 100 hidden units, tanh constant 2.5, temperature 5.0
(:class:`LSTMController`); shared weights SGD with Nesterov momentum 0.9, lr cosine from
0.05 to 0.0005 (one period here; the code restarts it), weight decay 1e-4, gradient norm
clipped to 5 (the authors' micro-search script). ``controller=nas.ArchDistribution(space)``
(independent per-decision categoricals) is the simple alternative.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import nnx, struct

from nas.arch_params import ArchDistribution, ArchParam
from nas.space import DNA
from nas.weight_sharing import oneshot
from nas.weight_sharing.base import WeightSharingAlgorithm
from nas.weight_sharing.controller import LSTMController
from nas.weight_sharing.diagnostics import param_free_share
from nas.weight_sharing.functional import all_finite, keep_if
from nas.weight_sharing.selection import from_dna
from nas.weight_sharing.training import WeightOptim, weight_step

ENAS_WEIGHTS = WeightOptim(learning_rate=0.05, learning_rate_min=0.0005, momentum=0.9,
                           nesterov=True, weight_decay=1e-4, grad_clip=5.0)


@struct.dataclass
class EnasState:
    """Shared weights, their optimizer, the controller's parameters and baseline."""

    params: Any
    arch: Any
    rest: Any
    w_opt: Any
    controller: Any
    c_opt: Any
    baseline: jax.Array
    step: jax.Array


def _logp_entropy(controller, dna: DNA):
    if hasattr(controller, "log_prob_and_entropy"):
        return controller.log_prob_and_entropy(dna)
    return controller.log_prob(dna), controller.entropy()


@dataclasses.dataclass(frozen=True, eq=False)
class Enas(WeightSharingAlgorithm):
    """ENAS; ``Enas(supernet, num_steps, controller=None)`` (None: the paper's LSTM)."""

    num_steps: int = 1000
    controller: Any = None
    num_samples: int = 1
    controller_lr: float = 3.5e-4
    entropy_weight: float = 1e-4
    baseline_decay: float = 0.99
    weights: WeightOptim = ENAS_WEIGHTS
    seed: int = 0

    def __post_init__(self):
        if not isinstance(self.num_steps, int) or self.num_steps < 1:
            raise ValueError(f"Enas.num_steps must be an int >= 1, got {self.num_steps!r}")
        if not isinstance(self.num_samples, int) or self.num_samples < 1:
            raise ValueError(f"Enas.num_samples must be an int >= 1, got {self.num_samples!r}")
        space = self.supernet_module.space
        ctrl = self.controller
        if ctrl is None:
            ctrl = LSTMController(space, rngs=nnx.Rngs(self.seed))
        if not isinstance(ctrl, (LSTMController, ArchDistribution)):
            raise ValueError(
                "Enas.controller must be a LSTMController or nas.ArchDistribution, got "
                f"{type(ctrl).__name__}")
        if ctrl.space is not space and ctrl.space.names != space.names:
            raise ValueError("Enas.controller was built for another space than the supernet's")
        c_graphdef, c_params, c_rest = nnx.split(ctrl, ArchParam, ...)
        c_params = nnx.to_pure_dict(c_params)  # plain arrays: cheap at the jit boundary
        object.__setattr__(self, "_ctrl", (c_graphdef, c_params, c_rest))
        object.__setattr__(self, "w_tx", self.weights.make(self.num_steps))
        object.__setattr__(self, "c_tx", optax.adam(self.controller_lr))
        super().__post_init__()

    def init(self) -> EnasState:
        params, arch, rest = self._init_parts
        c_params = self._ctrl[1]
        return EnasState(params, arch, rest, self.w_tx.init(params), c_params,
                         self.c_tx.init(c_params), jnp.zeros((), jnp.float32),
                         jnp.zeros((), jnp.int32))

    def controller_module(self, state: EnasState):
        """The controller with the state's parameters."""
        gd, _, rest = self._ctrl
        return nnx.merge(gd, state.controller, rest)

    def _step_impl(self, state: EnasState, train_batch, valid_batch, key):
        fns, sp = self.fns, self.space
        k_child, k_ctrl = jax.random.split(key)
        ctrl = self.controller_module(state)
        child = ctrl.sample(k_child)
        params, w_opt, rest, t_loss, t_acc, w_ok = weight_step(
            fns, self.w_tx, state, train_batch, from_dna(sp, child))
        dnas = jax.vmap(ctrl.sample)(jax.random.split(k_ctrl, self.num_samples))

        def reward_of(ints):
            dna = DNA(ints, jnp.asarray(sp.float_low))
            return fns.loss(params, state.arch, rest, valid_batch, from_dna(sp, dna))[1][0]

        # one child after the other: under vmap each mixed op's switch would become a
        # select that runs every candidate
        if self.num_samples == 1:
            acc = reward_of(dnas.ints[0])[None]
        else:
            acc = jax.lax.map(reward_of, dnas.ints)
        acc = jax.lax.stop_gradient(acc)
        gd, _, c_rest = self._ctrl

        def pg_loss(c_params):
            c = nnx.merge(gd, c_params, c_rest)
            lp, ent = jax.vmap(lambda d: _logp_entropy(c, d))(dnas)
            reward = acc + self.entropy_weight * jax.lax.stop_gradient(ent)
            baseline = state.baseline - (1 - self.baseline_decay) * (
                state.baseline - jnp.mean(reward))
            adv = jax.lax.stop_gradient(reward - baseline)
            return -jnp.mean(lp * adv), (baseline, jnp.mean(ent))

        (c_loss, (baseline, ent)), c_grad = jax.value_and_grad(pg_loss, has_aux=True)(
            state.controller)
        c_upd, c_opt = self.c_tx.update(c_grad, state.c_opt, state.controller)
        c_params = optax.apply_updates(state.controller, c_upd)
        new = state.replace(params=params, w_opt=w_opt, rest=rest, controller=c_params,
                            c_opt=c_opt, baseline=baseline.astype(jnp.float32),
                            step=state.step + 1)
        ok = w_ok & all_finite(c_loss, c_grad, acc)
        out = keep_if(ok, new, state)
        metrics = {"train_loss": t_loss, "train_metric": t_acc,
                   "valid_metric": jnp.mean(acc), "baseline": baseline, "finite": ok,
                   "entropy": ent / max(sp.n_int, 1),
                   "param_free_share": param_free_share(sp, child.ints, fns.param_free,
                                                        fns.op_slot)}
        return out, metrics

    def derive(self, state: EnasState) -> DNA:
        """The controller's most likely architecture (greedy decoding)."""
        ctrl = self.controller_module(state)
        return self.space.validate(ctrl.mode())

    def select(self, state: EnasState, batch, key: jax.Array, num_candidates: int = 100,
               chunk: int = 16) -> tuple[DNA, jax.Array]:
        """ENAS' final choice: ``num_candidates`` children sampled from the controller,
        ranked by one-shot metric on ``batch`` (best first)."""
        ctrl = self.controller_module(state)
        dnas = jax.jit(jax.vmap(ctrl.sample))(jax.random.split(key, num_candidates))
        metric, _ = oneshot.evaluate_state(self, state, dnas, batch, chunk)
        order = jnp.argsort(-metric)
        return jax.tree.map(lambda a: a[order], dnas), metric[order]
