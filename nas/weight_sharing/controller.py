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

    def _logits(self, slot: jax.Array, h: jax.Array, ints: jax.Array) -> jax.Array:
        """Squashed, masked logits of ``slot`` (may be traced) given earlier choices."""
        sp = self.space
        logits = h @ self.w_soft[...][slot] + self.b_soft[...][slot]
        if self.temperature is not None:
            logits = logits / self.temperature
        if self.tanh_constant is not None:
            logits = self.tanh_constant * jnp.tanh(logits)
        values = jnp.arange(sp.max_choices)
        valid = values < jnp.asarray(sp.num_choices)[slot]
        earlier = jnp.asarray(np.tril(sp.distinct_peers, k=-1))[slot]  # earlier group peers
        taken = jnp.any((ints[:, None] == values[None, :]) & earlier[:, None], axis=0)
        return jnp.where(valid & ~taken, logits, -jnp.inf)

    def _run(self, key: jax.Array | None, given: jax.Array | None, greedy: bool = False):
        """Sample (``given`` None), decode greedily, or teacher-force ``given``; returns
        ints, per-slot log-probabilities and entropies (one ``lax.scan`` over slots)."""
        sp = self.space
        n = sp.n_int
        h0 = jnp.zeros((self.hidden,), jnp.float32)
        ints0 = jnp.zeros((n,), jnp.int32) if given is None else given.astype(jnp.int32)
        keys = jax.random.split(key if key is not None else jax.random.key(0), max(n, 1))

        def body(carry, inp):
            hc, x, ints = carry
            s, k = inp
            hc = self._cell(x, hc)
            logits = self._logits(s, hc[0], ints)
            if given is None:
                choice = jnp.argmax(logits) if greedy else jax.random.categorical(k, logits)
                ints = ints.at[s].set(choice.astype(jnp.int32))
            logp = jax.nn.log_softmax(logits)
            finite = jnp.isfinite(logp)
            safe = jnp.where(finite, logp, 0.0)
            ent = -jnp.sum(jnp.where(finite, jnp.exp(safe) * safe, 0.0))
            x = self.w_emb[...][s, ints[s]]
            return (hc, x, ints), (safe[ints[s]], ent)

        (_, _, ints), (logps, ents) = jax.lax.scan(
            body, ((h0, h0), self.g_emb[...], ints0), (jnp.arange(n), keys[:n]))
        return ints, logps, ents

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
        ints, _, _ = self._run(None, None, greedy=True)
        return self.space.canonicalize(DNA(ints, jnp.zeros((0,), jnp.float32)))
