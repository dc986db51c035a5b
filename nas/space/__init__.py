"""Search spaces: compile a symbolic template into a DNA spec; materialize, encode, sample.

A DNA is a fixed-length pair of arrays (``ints`` int32[n_int], ``floats`` float32[n_float]):
one int slot per ``oneof`` (chosen index), per ``manyof`` position and per ``intv``
(offset from ``low``), one float slot per ``floatv`` (the value itself). Conditional
choices (a choice inside a candidate) keep their slot in every DNA; a slot is *active*
only when its parent slot holds the candidate that contains it. Inactive slots are
canonicalized to 0 (ints) and ``low`` (floats), so equal architectures have equal DNA.

Modules: ``types`` (DNA, Decision), ``nodes`` (compiled tree), ``compiler`` (template ->
decisions + tree), ``provenance``, ``counting`` (space size), ``codec`` (build, match,
enumerate) and ``search_space`` (the ``Space`` that composes them).
"""

from nas.space.codec import STRUCTURE_MATCH_LIMIT
from nas.space.nodes import _CChoice, _CConst, _CDeferred, _CFloat, _CInt, _CMany
from nas.space.provenance import provenance
from nas.space.search_space import Space
from nas.space.types import DNA, Decision

__all__ = [
    "DNA", "STRUCTURE_MATCH_LIMIT", "Decision", "Space", "provenance",
    "_CChoice", "_CConst", "_CDeferred", "_CFloat", "_CInt", "_CMany",
]
