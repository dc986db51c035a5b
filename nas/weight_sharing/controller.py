"""ENAS' controller: an LSTM that samples a space's decisions one after another.

Pham et al. (2018): a one-layer LSTM with 100 hidden units; at each decision its hidden
state goes through a per-decision softmax head; logits are squashed as
``tanh_constant * tanh(logits / temperature)`` (2.5 and 5.0 in the paper) and the chosen
candidate's embedding is the next input. Parameters start uniform in [-0.1, 0.1]. Here
one LSTM step per int slot of the DNA (``oneof``, each ``manyof`` position, ``intv``), a
head and an embedding table per slot; ``distinct`` manyof positions mask the candidates
that earlier positions took. All parameters are ``nas.ArchParam``.

Same interface as :class:`nas.ArchDistribution`: ``sample(key) -> DNA`` (jittable),
``log_prob(dna)``; plus ``log_prob_and_entropy(dna)`` (teacher-forced, the sum over active
slots of the per-step log-probabilities and entropies).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from nas.arch_params import ArchParam
from nas.space import DNA, Space


def _uniform(key, shape, scale=0.1):
    return jax.random.uniform(key, shape, jnp.float32, -scale, scale)


class LSTMController(nnx.Module):
    """ENAS' LSTM controller over the int decisions of ``space``."""

    def __init__(self, space: Space, hidden: int = 100, tanh_constant: float | None = 2.5,
                 temperature: float | None = 5.0, *, rngs: nnx.Rngs):
        if space.n_float:
            raise ValueError(
                f"LSTMController handles int decisions only; the space has floatv decisions "
                f"{[d.name for d in space.float_decisions]}")
        if hidden < 1:
            raise ValueError(f"LSTMController.hidden must be >= 1, got {hidden}")
        self.space = space
        self.hidden = hidden
        self.tanh_constant = tanh_constant
        self.temperature = temperature
        n, c, h = space.n_int, space.max_choices, hidden
        k = rngs.params
        self.w_x = ArchParam(_uniform(k(), (h, 4 * h)))
        self.w_h = ArchParam(_uniform(k(), (h, 4 * h)))
        self.b = ArchParam(jnp.zeros((4 * h,), jnp.float32))
        self.g_emb = ArchParam(_uniform(k(), (h,)))
        self.w_emb = ArchParam(_uniform(k(), (n, c, h)))
        self.w_soft = ArchParam(_uniform(k(), (n, h, c)))
        self.b_soft = ArchParam(jnp.zeros((n, c), jnp.float32))

    def _cell(self, x, hc):
        h, c = hc
        z = x @ self.w_x[...] + h @ self.w_h[...] + self.b[...]
        i, f, g, o = jnp.split(z, 4)
        c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
        h = jax.nn.sigmoid(o) * jnp.tanh(c)
        return h, c

    def _logits(self, slot: int, h: jax.Array, ints: jax.Array) -> jax.Array:
        sp = self.space
        logits = h @ self.w_soft[slot] + self.b_soft[slot]
        if self.temperature is not None:
            logits = logits / self.temperature
        if self.tanh_constant is not None:
            logits = self.tanh_constant * jnp.tanh(logits)
        values = np.arange(sp.max_choices)
        valid = values < sp.num_choices[slot]
        peers = np.flatnonzero(sp.distinct_peers[slot][:slot])  # earlier slots in the group
        taken = jnp.zeros((sp.max_choices,), bool)
        for p in peers:
            taken = taken | (values == ints[p])
        return jnp.where(jnp.asarray(valid) & ~taken, logits, -jnp.inf)

    def _run(self, key: jax.Array | None, given: jax.Array | None):
        """Sample (``given`` None) or teacher-force ``given``; returns ints, per-slot
        log-probabilities and entropies."""
        sp = self.space
        h = jnp.zeros((self.hidden,), jnp.float32)
        hc = (h, h)
        x = self.g_emb[...]
        ints = jnp.zeros((sp.n_int,), jnp.int32) if given is None else given
        keys = jax.random.split(key, max(sp.n_int, 1)) if key is not None else None
        logps, ents = [], []
        for s in range(sp.n_int):
            hc = self._cell(x, hc)
            logits = self._logits(s, hc[0], ints)
            if given is None:
                ints = ints.at[s].set(jax.random.categorical(keys[s], logits).astype(jnp.int32))
            logp = jax.nn.log_softmax(logits)
            safe = jnp.where(jnp.isfinite(logp), logp, 0.0)
            logps.append(safe[ints[s]])
            ents.append(-jnp.sum(jnp.exp(safe) * safe * jnp.isfinite(logp)))
            x = self.w_emb[s][ints[s]]
        return ints, jnp.stack(logps), jnp.stack(ents)

    def sample(self, key: jax.Array) -> DNA:
        """One DNA (jittable)."""
        ints, _, _ = self._run(key, None)
        return self.space.canonicalize(DNA(ints, jnp.zeros((0,), jnp.float32)))

    def log_prob_and_entropy(self, dna: DNA) -> tuple[jax.Array, jax.Array]:
        """Sum over active slots of log p(choice | earlier choices) and of the step
        entropies, teacher-forced on ``dna``."""
        _, logps, ents = self._run(None, dna.ints.astype(jnp.int32))
        act, _ = self.space.active(dna)
        return jnp.sum(jnp.where(act, logps, 0.0)), jnp.sum(jnp.where(act, ents, 0.0))

    def log_prob(self, dna: DNA) -> jax.Array:
        return self.log_prob_and_entropy(dna)[0]

    def mode(self) -> DNA:
        """Greedy decoding (argmax at every step)."""
        sp = self.space
        h = jnp.zeros((self.hidden,), jnp.float32)
        hc, x = (h, h), self.g_emb[...]
        ints = jnp.zeros((sp.n_int,), jnp.int32)
        for s in range(sp.n_int):
            hc = self._cell(x, hc)
            ints = ints.at[s].set(jnp.argmax(self._logits(s, hc[0], ints)).astype(jnp.int32))
            x = self.w_emb[s][ints[s]]
        return sp.canonicalize(DNA(ints, jnp.zeros((0,), jnp.float32)))
