"""The discrete architecture that trained architecture parameters stand for.

Per ``oneof`` slot: the argmax of ``alpha`` over its candidates, excluding ``none`` ops
(candidates named none/zero) as DARTS does (unless the slot has nothing else). Per
``distinct`` ``manyof`` group of k positions: the k candidates with the highest
probability at any position (for a manyof over input pickers: the top-k inputs, as DARTS
keeps the two strongest incoming edges), sorted if the group is ``sorted``, otherwise
handed to the positions in order, each taking its best remaining one; a non-distinct
group takes the argmax per position. Inactive slots
are canonicalized, so the result is a valid DNA of the space: ``space.materialize`` turns
it into a stand-alone model and the no-sharing algorithms accept it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from nas.space import DNA
from nas.weight_sharing.selection import masked_logits, valid_mask
from nas.weight_sharing.supernet import Supernet


def derive_ints(space, alpha: jax.Array, is_none: np.ndarray | None = None) -> DNA:
    """Jittable core of :func:`derive` (``is_none`` bool[n_int, max_choices] or None)."""
    logits = masked_logits(space, alpha)
    if is_none is not None:
        has_other = (valid_mask(space) & ~is_none).any(axis=1, keepdims=True)
        logits = jnp.where(jnp.asarray(is_none & has_other), -jnp.inf, logits)
    ints = jnp.argmax(logits, axis=-1).astype(jnp.int32)
    for slots, distinct, is_sorted in space.groups:
        rows = logits[np.array(slots)]
        if not distinct:
            picks = jnp.argmax(rows, axis=-1).astype(jnp.int32)
        else:
            # a candidate's strength is its best probability at any position; keep the
            # top-k candidates, then give each position (in order) its best remaining one
            score = jnp.max(jax.nn.softmax(rows, axis=-1), axis=0)
            chosen = jnp.zeros((space.max_choices,), bool).at[
                jax.lax.top_k(score, len(slots))[1]].set(True)
            if is_sorted:
                picks = jnp.sort(jnp.flatnonzero(chosen, size=len(slots))).astype(jnp.int32)
            else:
                picks, free = [], chosen
                for row in rows:
                    pick = jnp.argmax(jnp.where(free, row, -jnp.inf)).astype(jnp.int32)
                    free = free & (jnp.arange(space.max_choices) != pick)
                    picks.append(pick)
                picks = jnp.stack(picks)
        ints = ints.at[np.array(slots)].set(picks)
    return space.canonicalize(DNA(ints, jnp.asarray(space.float_low)))


def derive(supernet: Supernet, alpha: jax.Array | None = None, *,
           exclude_none: bool = True) -> DNA:
    """The DNA that ``alpha`` (default: the supernet's own) stands for."""
    if not isinstance(supernet, Supernet):
        raise ValueError(f"derive needs a nas.weight_sharing.Supernet, got {type(supernet)}")
    space = supernet.space
    alpha = supernet.alpha[...] if alpha is None else jnp.asarray(alpha)
    if alpha.shape != (space.n_int, space.max_choices):
        raise ValueError(
            f"alpha must have shape {(space.n_int, space.max_choices)} (n_int, max_choices) for "
            f"this space, got {alpha.shape}")
    is_none = np.array(supernet.is_none) if exclude_none else None
    return space.validate(derive_ints(space, alpha, is_none))
