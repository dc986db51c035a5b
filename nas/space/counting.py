"""Counting the architectures of a compiled tree (exact, also with shared decisions)."""

from __future__ import annotations

import itertools
import math
from typing import Any

from nas.space.nodes import _CChoice, _CDeferred, _CFloat, _children, _CInt, _CMany


def _count(node: Any, bound: frozenset, shared: frozenset) -> dict[frozenset, float]:
    """Exact architecture count with shared nodes: ``{shared nodes chosen so far: count}``;
    a shared node met again in a branch where it is already chosen adds no freedom."""
    if id(node) in shared:
        if id(node) in bound:
            return {bound: 1.0}
        bound = bound | {id(node)}
    if isinstance(node, _CChoice):
        out: dict[frozenset, float] = {}
        for c in node.candidates:
            for b, n in _count(c, bound, shared).items():
                out[b] = out.get(b, 0.0) + n
        return out
    if isinstance(node, _CMany):
        out = {}
        for idx in _many_indices(node, len(node.candidates[0])):
            picked = [node.candidates[i][j] for i, j in enumerate(idx)]
            for b, n in _count_seq(picked, bound, shared).items():
                out[b] = out.get(b, 0.0) + n
        return out
    if isinstance(node, _CInt):
        return {bound: float(node.count)}
    if isinstance(node, _CFloat):
        return {bound: math.inf}
    if isinstance(node, (_CDeferred, dict, list, tuple)):
        return _count_seq(_children(node), bound, shared)
    return {bound: 1.0}


def _count_seq(nodes: list, bound: frozenset, shared: frozenset) -> dict[frozenset, float]:
    states = {bound: 1.0}
    for node in nodes:
        nxt: dict[frozenset, float] = {}
        for b, n in states.items():
            for b2, n2 in _count(node, b, shared).items():
                nxt[b2] = nxt.get(b2, 0.0) + n * n2
        states = nxt
    return states


def _size(node: Any) -> float:
    if isinstance(node, _CChoice):
        return float(sum(_size(c) for c in node.candidates))
    if isinstance(node, _CMany):
        return _many_size(node)
    if isinstance(node, _CInt):
        return float(node.count)
    if isinstance(node, _CFloat):
        return math.inf
    if isinstance(node, _CDeferred):
        return _size(list(node.args)) * _size(node.kwargs)
    if isinstance(node, dict):
        return math.prod(_size(v) for v in node.values())
    if isinstance(node, (list, tuple)):
        return math.prod(_size(v) for v in node)
    return 1.0


def _many_size(node: _CMany) -> float:
    # every position has the same candidates; s_j = size of candidate j
    s = [_size(c) for c in node.candidates[0]]
    return float(sum(math.prod(s[j] for j in idx) for idx in _many_indices(node, len(s))))


def _many_indices(node: _CMany, n: int):
    k = len(node.slots)
    distinct, is_sorted = node.distinct, node.sorted
    if distinct and is_sorted:
        return itertools.combinations(range(n), k)
    if distinct:
        return itertools.permutations(range(n), k)
    if is_sorted:
        return itertools.combinations_with_replacement(range(n), k)
    return itertools.product(range(n), repeat=k)
