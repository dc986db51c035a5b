"""Pure functions over a supernet's state, for the jitted hot loop.

:class:`SupernetFns` splits a :class:`Supernet` once into a static graph definition and
three state pytrees: ``params`` (``nnx.Param``: the shared weights), ``arch``
(``nas.ArchParam``: ``alpha``) and ``rest`` (anything else, e.g. batch statistics).
``loss(params, arch, rest, batch, selection)`` merges them, runs the supernet and returns
``(loss, (accuracy, new_rest))``.

The three are plain nested dicts of arrays (``nnx.to_pure_dict``), not ``nnx.State`` of
``nnx.Variable`` objects: the jitted step's arguments and results are flattened and
rebuilt at every call, and rebuilding a few hundred ``Variable`` objects in Python cost
about 4 ms per step on the speed benchmark (a tenth of a GDAS step); ``nnx.merge``
accepts the plain dicts unchanged.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from nas.arch_params import ArchParam
from nas.weight_sharing.selection import Selection
from nas.weight_sharing.supernet import Supernet

Batch = tuple[jax.Array, jax.Array]
_REST = nnx.Not(nnx.Any(nnx.Param, ArchParam))


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Mean softmax cross-entropy with integer labels."""
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


def accuracy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Share of correct argmax predictions."""
    return jnp.mean(jnp.argmax(logits, -1) == labels)


@dataclasses.dataclass(frozen=True, eq=False)
class SupernetFns:
    """Static graph and pure apply/loss functions of one supernet."""

    graphdef: Any
    space: Any
    param_free: Any  # np bool[n_int, max_choices]
    is_none: Any
    op_slot: Any
    loss_fn: Callable[[jax.Array, jax.Array], jax.Array] = cross_entropy
    metric_fn: Callable[[jax.Array, jax.Array], jax.Array] = accuracy

    @classmethod
    def create(cls, supernet: Supernet, loss_fn=cross_entropy, metric_fn=accuracy):
        """The functions and ``(params, arch, rest)`` of ``supernet``."""
        if not isinstance(supernet, Supernet):
            raise ValueError(f"expected a nas.weight_sharing.Supernet, got {type(supernet)}")
        graphdef, *states = nnx.split(supernet, nnx.Param, ArchParam, ...)
        params, arch, rest = (nnx.to_pure_dict(s) for s in states)
        fns = cls(graphdef, supernet.space, np.array(supernet.param_free),
                  np.array(supernet.is_none), np.array(supernet.op_slot), loss_fn, metric_fn)
        return fns, (params, arch, rest)

    def alpha(self, arch: Any) -> jax.Array:
        """The architecture parameters array of an ``arch`` state."""
        return arch["alpha"][...]

    def apply(self, params, arch, rest, x, selection: Selection):
        """Supernet output and updated ``rest`` state (a plain dict, like ``rest``)."""
        model = nnx.merge(self.graphdef, params, arch, rest, copy=True)
        out = model(x, selection=selection)
        return out, nnx.to_pure_dict(nnx.state(model, _REST))

    def loss(self, params, arch, rest, batch: Batch, selection: Selection):
        """``(loss, (metric, new_rest))`` on one batch ``(x, y)``."""
        x, y = batch
        out, new_rest = self.apply(params, arch, rest, x, selection)
        return self.loss_fn(out, y), (self.metric_fn(out, y), new_rest)


def all_finite(*trees: Any) -> jax.Array:
    """True if every leaf of every tree is finite."""
    leaves = [jnp.all(jnp.isfinite(x)) for t in trees for x in jax.tree.leaves(t)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.array(True)


def keep_if(ok: jax.Array, new: Any, old: Any) -> Any:
    """``new`` where ``ok`` else ``old`` (leafwise): a non-finite step changes nothing."""
    return jax.tree.map(lambda a, b: jnp.where(ok, a, b), new, old)
