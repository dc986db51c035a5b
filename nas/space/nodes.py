"""The compiled template tree: one node type per choice kind, constants, and tree walking."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import numpy as np
from flax import nnx


@dataclasses.dataclass(frozen=True)
class _CChoice:
    slot: int
    candidates: tuple  # compiled candidates


@dataclasses.dataclass(frozen=True)
class _CMany:
    slots: tuple
    candidates: tuple  # per position: tuple of compiled candidates
    distinct: bool
    sorted: bool


@dataclasses.dataclass(frozen=True)
class _CInt:
    slot: int
    low: int
    count: int


@dataclasses.dataclass(frozen=True)
class _CFloat:
    slot: int


@dataclasses.dataclass(frozen=True)
class _CDeferred:
    fn: Any
    args: tuple
    kwargs: dict


@dataclasses.dataclass(frozen=True)
class _CConst:
    value: Any


def _is_rngs(v: Any) -> bool:
    return isinstance(v, nnx.Rngs)


def _const_equal(a: Any, b: Any) -> bool:
    if a is b:
        return True
    try:
        eq = a == b
        return bool(eq) if isinstance(eq, (bool, np.bool_)) else False
    except Exception:  # noqa: BLE001 - arrays and odd objects are compared by identity
        return False


def _children(node: Any) -> list:
    if isinstance(node, _CChoice):
        return list(node.candidates)
    if isinstance(node, _CMany):
        return [c for pos in node.candidates for c in pos]
    if isinstance(node, _CDeferred):
        return list(node.args) + list(node.kwargs.values())
    if isinstance(node, dict):
        return list(node.values())
    if isinstance(node, (list, tuple)):
        return list(node)
    return []


def _walk(node: Any) -> Iterator[Any]:
    """Every compiled node, depth first (a shared node once per place)."""
    yield node
    for c in _children(node):
        yield from _walk(c)


def _find_rngs(tree: Any) -> list:
    out, seen = [], set()
    for node in _walk(tree):
        if isinstance(node, _CConst) and _is_rngs(node.value) and id(node.value) not in seen:
            seen.add(id(node.value))
            out.append(node.value)
    return out
