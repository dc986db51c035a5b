"""One-shot evaluation: score many DNAs with the supernet's inherited weights.

``evaluate(fns, params, arch, rest, dnas, batch)`` runs each DNA as a hard selection
(only its chosen candidates compute) and returns the metric (accuracy by default) and
loss per DNA, vmapped over DNAs, ``chunk`` DNAs at a time (``lax.map`` over chunks bounds
memory). Jitted once per (number of DNAs, batch shape).
"""

from __future__ import annotations

import functools

import jax
import numpy as np

from nas.space import DNA
from nas.weight_sharing.functional import Batch, SupernetFns
from nas.weight_sharing.selection import from_dna


def _check_dnas(space, dnas: DNA) -> None:
    if not isinstance(dnas, DNA):
        raise ValueError(f"dnas must be a nas.DNA with a leading batch axis, got {type(dnas)}")
    ints = np.asarray(dnas.ints)
    if ints.ndim != 2 or ints.shape[1] != space.n_int:
        raise ValueError(
            f"dnas.ints must have shape (num_dnas, {space.n_int}) for this space (a DNA from "
            f"another space?), got {ints.shape}")
    bad = (ints < 0) | (ints >= space.num_choices[None, :])
    if bad.any():
        i, s = map(int, np.argwhere(bad)[0])
        raise ValueError(
            f"DNA {i}: value {int(ints[i, s])} for decision {space.int_decisions[s].name!r} is "
            f"out of range [0, {int(space.num_choices[s])}) (a DNA from another space?)")


@functools.partial(jax.jit, static_argnames=("fns", "chunk"))
def _evaluate(fns: SupernetFns, params, arch, rest, ints, batch, chunk: int):
    sp = fns.space

    def one(dna_ints):
        dna = DNA(dna_ints, jax.numpy.asarray(sp.float_low))
        loss, (metric, _) = fns.loss(params, arch, rest, batch, from_dna(sp, dna))
        return metric, loss

    return jax.lax.map(one, ints, batch_size=chunk)


def evaluate(fns: SupernetFns, params, arch, rest, dnas: DNA, batch: Batch,
             chunk: int = 16) -> tuple[jax.Array, jax.Array]:
    """``(metric[num_dnas], loss[num_dnas])`` of ``dnas`` with inherited weights."""
    _check_dnas(fns.space, dnas)
    if not (isinstance(batch, (tuple, list)) and len(batch) == 2):
        raise ValueError(f"batch must be a pair (x, y) of arrays, got {type(batch).__name__}")
    return _evaluate(fns, params, arch, rest, dnas.ints, tuple(batch), int(chunk))


def evaluate_state(algorithm, state, dnas: DNA, batch: Batch, chunk: int = 16):
    """:func:`evaluate` with the weights of an algorithm's state."""
    return evaluate(algorithm.fns, state.params, state.arch, state.rest, dnas, batch, chunk)
