"""Architecture parameters as Flax NNX variables.

:class:`ArchParam` marks the parameters of a distribution over a space's DNA, so that
``nnx.state(module, ArchParam)`` finds them (the REINFORCE controller here; ENAS and
DARTS supernets later). :class:`ArchDistribution` holds one categorical per int slot
and one Gaussian (on the unit scale) per float slot.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from nas.checks import check_key, check_real
from nas.space import DNA, Space


class ArchParam(nnx.Variable):
    """A learnable architecture parameter (kept apart from model weights ``nnx.Param``)."""


class ArchDistribution(nnx.Module):
    """Independent per-decision distribution over a space's DNA.

    ``distinct`` manyof groups are sampled without replacement (masking the choices
    already taken in the group); sorted groups are scored in their sorted order."""

    def __init__(self, space: Space, init_std: float = 0.25):
        if not isinstance(space, Space):
            raise ValueError(f"ArchDistribution.space must be a nas.Space, got "
                             f"{type(space).__name__}")
        if check_real("ArchDistribution.init_std", init_std) <= 0:
            raise ValueError(f"ArchDistribution.init_std must be > 0, got {init_std!r}")
        self.space = space
        self.logits = ArchParam(jnp.zeros((space.n_int, space.max_choices), jnp.float32))
        self.mean = ArchParam(jnp.zeros((space.n_float,), jnp.float32))  # sigmoid -> unit
        self.log_std = ArchParam(jnp.full((space.n_float,), np.log(init_std), jnp.float32))

    def _masked_logits(self, ints: jax.Array) -> jax.Array:
        """Logits of each int slot given the earlier slots of its distinct group."""
        sp = self.space
        values = jnp.arange(sp.max_choices)
        valid = values[None, :] < jnp.asarray(sp.num_choices)[:, None]
        earlier = np.tril(sp.distinct_peers, k=-1)  # peers that come before each slot
        taken = jnp.any(
            (ints[None, :, None] == values[None, None, :]) & earlier[:, :, None], axis=1)
        return jnp.where(valid & ~taken, self.logits[...], -jnp.inf)

    def log_prob(self, dna: DNA) -> jax.Array:
        """Log-probability of one DNA (active slots only)."""
        sp = self.space
        sp._check_shapes("log_prob.dna", dna)
        act, fact = sp.active(dna)
        logp_int = jax.nn.log_softmax(self._masked_logits(dna.ints), axis=-1)
        lp = jnp.take_along_axis(logp_int, dna.ints[:, None], axis=1)[:, 0]
        total = jnp.sum(jnp.where(act, lp, 0.0))
        if sp.n_float:
            u = sp._to_unit(dna.floats)
            mu = jax.nn.sigmoid(self.mean[...])
            std = jnp.exp(self.log_std[...])
            lpf = -0.5 * ((u - mu) / std) ** 2 - jnp.log(std) - 0.5 * jnp.log(2 * jnp.pi)
            total = total + jnp.sum(jnp.where(fact, lpf, 0.0))
        return total

    def entropy(self) -> jax.Array:
        """Sum of the per-slot categorical entropies (ignoring masks and conditions)."""
        sp = self.space
        valid = jnp.arange(sp.max_choices)[None, :] < jnp.asarray(sp.num_choices)[:, None]
        logp = jax.nn.log_softmax(jnp.where(valid, self.logits[...], -jnp.inf), axis=-1)
        # zero the padded entries *before* the product: exp(-inf) * -inf is NaN, and a
        # where() after it would still send NaN gradients to every slot with fewer
        # choices than max_choices (even when the entropy term is weighted by 0)
        logp = jnp.where(valid, logp, 0.0)
        return -jnp.sum(jnp.where(valid, jnp.exp(logp) * logp, 0.0))

    def sample(self, key: jax.Array) -> DNA:
        """One DNA drawn from the distribution (jittable)."""
        check_key("ArchDistribution.sample.key", key)
        sp = self.space
        k_int, k_float = jax.random.split(key)
        keys = jax.random.split(k_int, max(sp.n_int, 1))
        ints = jnp.zeros((sp.n_int,), jnp.int32)
        for i in range(sp.n_int):  # static unroll over slots: later slots see earlier ones
            logits = self._masked_logits(ints)[i]
            ints = ints.at[i].set(jax.random.categorical(keys[i], logits).astype(jnp.int32))
        floats = jnp.zeros((sp.n_float,), jnp.float32)
        if sp.n_float:
            u = jax.nn.sigmoid(self.mean[...]) + jnp.exp(self.log_std[...]) * jax.random.normal(
                k_float, (sp.n_float,))
            floats = sp._from_unit(jnp.clip(u, 0.0, 1.0))
        return sp.canonicalize(DNA(ints, floats))

    def mode(self) -> DNA:
        """The most likely DNA (argmax per slot, respecting distinct groups)."""
        sp = self.space
        ints = jnp.zeros((sp.n_int,), jnp.int32)
        for i in range(sp.n_int):
            ints = ints.at[i].set(jnp.argmax(self._masked_logits(ints)[i]).astype(jnp.int32))
        floats = sp._from_unit(jax.nn.sigmoid(self.mean[...])) if sp.n_float else jnp.zeros(
            (0,), jnp.float32)
        return sp.canonicalize(DNA(ints, floats))
