"""Common interface of the weight-sharing algorithms.

Every algorithm is a frozen dataclass built from a :class:`Supernet`; its methods are pure:

* ``init() -> state`` (a pytree; the supernet's current weights and ``alpha``);
* ``step(state, train_batch, valid_batch, key) -> (state, metrics)`` (jitted; batches are
  ``(x, y)`` pairs of fixed shape so step 2 never recompiles). ``metrics["finite"]`` is
  False when the step produced a non-finite loss or gradient; the returned state is then
  the input state, unchanged;
* ``derive(state) -> DNA``: the architecture the state stands for;
* ``supernet(state)``: the supernet with the state's weights (an NNX module).
"""

from __future__ import annotations

import dataclasses

import jax
from flax import nnx

from nas.space import DNA
from nas.weight_sharing import diagnostics, step_jit
from nas.weight_sharing.derive import derive_ints
from nas.weight_sharing.functional import Batch, SupernetFns
from nas.weight_sharing.selection import mix
from nas.weight_sharing.supernet import Supernet
from nas.weight_sharing.training import check_batch


@dataclasses.dataclass(frozen=True, eq=False)
class WeightSharingAlgorithm:
    """Base: holds the supernet's static functions and initial state."""

    supernet_module: Supernet

    def __post_init__(self):
        fns, init = SupernetFns.create(self.supernet_module)
        object.__setattr__(self, "fns", fns)
        object.__setattr__(self, "_init_parts", init)
        object.__setattr__(self, "_step", step_jit.jit(self._step_impl))
        object.__setattr__(self, "_hess", step_jit.jit(self._hessian_impl, static_argnums=3))

    @property
    def space(self):
        return self.fns.space

    # -- to be provided by subclasses
    def init(self):
        raise NotImplementedError

    def _step_impl(self, state, train_batch, valid_batch, key):
        raise NotImplementedError

    def arch_logits(self, state) -> jax.Array:
        """The logits whose argmax is the derived architecture (``alpha`` by default)."""
        return self.fns.alpha(state.arch)

    # -- shared
    def step(self, state, train_batch: Batch, valid_batch: Batch, key: jax.Array):
        """One search step (jitted). Returns ``(state, metrics)``."""
        check_batch(train_batch, "train_batch")
        check_batch(valid_batch, "valid_batch")
        return self._step(state, tuple(train_batch), tuple(valid_batch), key)

    def derive(self, state) -> DNA:
        """The DNA the state stands for (see :func:`nas.weight_sharing.derive`)."""
        return self.space.validate(derive_ints(self.space, self.arch_logits(state),
                                               self.fns.is_none))

    def supernet(self, state) -> Supernet:
        """The supernet module with the state's weights and architecture parameters."""
        return nnx.merge(self.fns.graphdef, state.params, state.arch, state.rest)

    def arch_metrics(self, logits: jax.Array) -> dict:
        """Entropy and parameter-free share of the derived architecture (jittable)."""
        sp = self.space
        ints = derive_ints(sp, logits, self.fns.is_none).ints
        return {"entropy": diagnostics.entropy(sp, logits),
                "param_free_share": diagnostics.param_free_share(
                    sp, ints, self.fns.param_free, self.fns.op_slot)}

    def hessian_eigenvalue(self, state, valid_batch: Batch, key: jax.Array,
                           num_iters: int = 20) -> jax.Array:
        """Dominant eigenvalue of the validation loss' Hessian w.r.t. ``alpha`` (DARTS
        relaxation, current weights)."""
        check_batch(valid_batch, "valid_batch")
        return self._hess(state, tuple(valid_batch), key, num_iters)

    def _hessian_impl(self, state, valid_batch, key, num_iters):
        fns = self.fns
        arch = state.arch

        def loss_of_alpha(alpha):  # the forward pass reads alpha only via the selection
            return fns.loss(state.params, arch, state.rest, valid_batch,
                            mix(fns.space, alpha))[0]

        return diagnostics.dominant_eigenvalue(loss_of_alpha, fns.alpha(arch), key, num_iters)
