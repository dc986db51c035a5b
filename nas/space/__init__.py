"""Search spaces (moved from nas/space.py; split into modules in the next commit)."""

from nas.space.search_space import (
    DNA,
    STRUCTURE_MATCH_LIMIT,
    Decision,
    Space,
    _CChoice,
    _CConst,
    _CDeferred,
    _CFloat,
    _CInt,
    _CMany,
    provenance,
)

__all__ = [
    "DNA", "STRUCTURE_MATCH_LIMIT", "Decision", "Space", "provenance",
    "_CChoice", "_CConst", "_CDeferred", "_CFloat", "_CInt", "_CMany",
]
