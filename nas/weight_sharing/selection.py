"""The architecture a supernet runs, passed at call time.

A :class:`Selection` holds, for every int slot of a space's DNA, mixing weights over
its candidates (``weights`` float32[n_int, max_choices]) and a chosen index
(``index`` int32[n_int]). ``mode`` (static) says how a mixed op uses them:

* ``"mix"``: every candidate runs; the output is ``sum_j weights[j] * candidate_j(x)``
  (DARTS).
* ``"hard"``: only ``candidate[index]`` runs (``lax.switch``); its output is scaled by
  ``weights[index]``, which is exactly 1 in value and, for GDAS, carries the
  straight-through gradient to the architecture parameters (ENAS, GDAS, random search
  with weight sharing, one-shot evaluation).

Mixed ops read the active selection from a context set by :meth:`Supernet.__call__`, so
the user's model code calls its sub-modules exactly as before.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from nas.space import DNA, Space

MODES = ("mix", "hard")


@struct.dataclass
class Selection:
    """Per-slot mixing weights and chosen indices; ``mode`` is static."""

    weights: jax.Array
    index: jax.Array
    mode: str = struct.field(pytree_node=False, default="mix")


_ACTIVE: contextvars.ContextVar[Selection | None] = contextvars.ContextVar(
    "nas_weight_sharing_selection", default=None)


@contextlib.contextmanager
def active(selection: Selection) -> Iterator[None]:
    """Make ``selection`` the architecture that mixed ops read while the block runs."""
    if selection.mode not in MODES:
        raise ValueError(f"Selection.mode must be one of {MODES}, got {selection.mode!r}")
    token = _ACTIVE.set(selection)
    try:
        yield
    finally:
        _ACTIVE.reset(token)


def current(name: str) -> Selection:
    """The active selection; ``name`` (a decision) is used in the error message."""
    sel = _ACTIVE.get()
    if sel is None:
        raise ValueError(
            f"mixed op for decision {name!r} was called without an architecture: call the "
            "supernet as supernet(x, selection=...) (see nas.weight_sharing.mix / from_dna)")
    return sel


def valid_mask(space: Space) -> np.ndarray:
    """bool[n_int, max_choices]: which candidate indices exist for each slot."""
    return np.arange(space.max_choices)[None, :] < space.num_choices[:, None]


def masked_logits(space: Space, alpha: jax.Array) -> jax.Array:
    """``alpha`` with padded (non-existent) candidates set to -inf."""
    return jnp.where(valid_mask(space), alpha, -jnp.inf)


def mix(space: Space, alpha: jax.Array) -> Selection:
    """DARTS: softmax of the architecture parameters, every candidate runs."""
    w = jax.nn.softmax(masked_logits(space, alpha), axis=-1)
    return Selection(w, jnp.argmax(w, axis=-1).astype(jnp.int32), "mix")


def from_dna(space: Space, dna: DNA) -> Selection:
    """One architecture: only the chosen candidates run (one-hot weights)."""
    idx = dna.ints.astype(jnp.int32)
    return Selection(jax.nn.one_hot(idx, space.max_choices, dtype=jnp.float32), idx, "hard")


def gumbel(space: Space, alpha: jax.Array, key: jax.Array, tau: jax.Array) -> Selection:
    """GDAS: a hard Gumbel-softmax sample with a straight-through gradient.

    ``index = argmax((alpha + g) / tau)``; ``weights = one_hot - stop_grad(soft) + soft``
    equals the one-hot vector in value and has the soft sample's gradient."""
    g = jax.random.gumbel(key, alpha.shape, jnp.float32)
    soft = jax.nn.softmax(masked_logits(space, (alpha + g) / tau), axis=-1)
    idx = jnp.argmax(soft, axis=-1).astype(jnp.int32)
    hard = jax.nn.one_hot(idx, space.max_choices, dtype=soft.dtype)
    return Selection(hard - jax.lax.stop_gradient(soft) + soft, idx, "hard")
