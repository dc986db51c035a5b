"""The codec of a compiled tree: build a value from a DNA, match a value back to DNA
assignments (by provenance, arguments or structure), and enumerate all assignments."""

from __future__ import annotations

import itertools
import zlib
from collections.abc import Iterator
from typing import Any

import jax
import numpy as np
from flax import nnx

from nas.primitives import Deferred
from nas.space.counting import _many_indices, _size
from nas.space.nodes import (
    _CChoice,
    _CDeferred,
    _CFloat,
    _CInt,
    _CMany,
    _const_equal,
    _is_rngs,
)
from nas.space.provenance import _remember, provenance


def _merge(a: dict, b: dict) -> dict | None:
    """Union of two assignments, or None when they disagree on a (shared) slot."""
    for k, v in b.items():
        if k in a and a[k] != v:
            return None
    return {**a, **b}


def _reseeded(rngs: Any, seed: int) -> Any:
    """A new ``nnx.Rngs`` with the streams of ``rngs``, all keyed from ``seed``."""
    base = jax.random.key(seed)
    streams = [k for k, v in vars(rngs).items() if isinstance(v, nnx.RngStream)]
    return nnx.Rngs(**{
        k: base if k == "default" else jax.random.fold_in(base, zlib.crc32(k.encode()))
        for k in streams})


def _build(node: Any, ints: list[int], floats: list[float], rngs: Any = None) -> Any:
    """The value of ``node`` under a DNA; ``rngs(template_rngs)`` gives the ``nnx.Rngs``
    to use in place of each one in the template (None: the template's own objects)."""
    if isinstance(node, _CChoice):
        return _build(node.candidates[ints[node.slot]], ints, floats, rngs)
    if isinstance(node, _CMany):
        return [_build(node.candidates[i][ints[s]], ints, floats, rngs)
                for i, s in enumerate(node.slots)]
    if isinstance(node, _CInt):
        return node.low + ints[node.slot]
    if isinstance(node, _CFloat):
        return floats[node.slot]
    if isinstance(node, _CDeferred):
        args = tuple(_build(a, ints, floats, rngs) for a in node.args)
        kwargs = {k: _build(v, ints, floats, rngs) for k, v in node.kwargs.items()}
        obj = node.fn(*args, **kwargs)
        _remember(obj, node.fn, args, kwargs)
        return obj
    if isinstance(node, dict):
        return {k: _build(v, ints, floats, rngs) for k, v in node.items()}
    if isinstance(node, list):
        return [_build(v, ints, floats, rngs) for v in node]
    if isinstance(node, tuple):
        return tuple(_build(v, ints, floats, rngs) for v in node)
    if rngs is not None and _is_rngs(node.value):
        return rngs(node.value)
    return node.value


# hand-built models are matched by structure over at most this many argument settings
STRUCTURE_MATCH_LIMIT = 1024


def _structure(obj: Any) -> tuple:
    """An NNX object's graph (module types, static attributes) and its leaves' shapes."""
    graphdef, state = nnx.split(obj)
    leaves = jax.tree_util.tree_leaves_with_path(state)
    return graphdef, tuple((path, tuple(np.shape(x)), str(x.dtype)) for path, x in leaves)


def _match_structure(node: _CDeferred, value: Any, space: Any) -> dict | None:
    """Assignments of ``node``'s own decisions whose model has ``value``'s structure
    (``space``: the Space that owns the tree)."""
    fn_name = getattr(node.fn, "__name__", repr(node.fn))
    if _size(node) > STRUCTURE_MATCH_LIMIT:
        raise ValueError(
            f"cannot encode a hand-built {fn_name}: it was not made by space.materialize, "
            f"so its constructor arguments are unknown, and its {_size(node):.3g} argument "
            f"settings (more than nas.space.STRUCTURE_MATCH_LIMIT={STRUCTURE_MATCH_LIMIT}; "
            "any floatv makes them infinite) are too many to match by structure. Encode "
            f"nas.deferred({fn_name})(...) with its arguments instead, or build the model with "
            "space.materialize")
    target = _structure(value)
    found = []
    for assign in _enum(node):
        ints = [0] * space.n_int
        floats = [float(x) for x in space.float_low]
        for (_, slot), v in assign.items():
            ints[slot] = v
        try:
            shape = nnx.eval_shape(lambda ints=ints, floats=floats: _build(
                node, ints, floats, space._fresh_rngs(None)))
        except Exception:  # noqa: BLE001 - a setting the constructor rejects is no match
            continue
        if _structure(shape) == target:
            found.append(assign)
    if len(found) > 1:
        differ = sorted({space.int_decisions[k[1]].name for a in found for k in a
                         if any(b.get(k) != a[k] for b in found)})
        raise ValueError(
            f"a hand-built {fn_name} matches {len(found)} architectures of this space that "
            f"differ only in {differ}, which its structure (module types, static attributes, "
            f"weight shapes) does not show: encode nas.deferred({fn_name})(...) with its "
            "arguments instead, or build the model with space.materialize")
    return found[0] if found else None


def _match(node: Any, value: Any, space: Any = None) -> dict | None:
    """Assignments ``{('i'|'f', slot): value}`` that make ``node`` produce ``value``.

    A shared decision must take one value in all its places. An NNX object that was not
    built by materialize is matched by structure when ``space`` is given."""
    if isinstance(node, _CChoice):
        for j, c in enumerate(node.candidates):
            sub = _match(c, value, space)
            if sub is not None:
                both = _merge({("i", node.slot): j}, sub)
                if both is not None:
                    return both
        return None
    if isinstance(node, _CMany):
        if not isinstance(value, (list, tuple)) or len(value) != len(node.slots):
            return None
        out: dict | None = {}
        used: list[int] = []
        for i, (s, v) in enumerate(zip(node.slots, value, strict=True)):
            for j, c in enumerate(node.candidates[i]):
                if node.distinct and j in used:
                    continue
                sub = _match(c, v, space)
                if sub is not None:
                    out = _merge(out, {("i", s): j, **sub})
                    used.append(j)
                    break
            else:
                return None
            if out is None:
                return None
        return out
    if isinstance(node, _CInt):
        if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
            if not node.low <= int(value) < node.low + node.count:
                return None
            return {("i", node.slot): int(value) - node.low}
        return None
    if isinstance(node, _CFloat):
        if isinstance(value, (int, float, np.floating, np.integer)) and not isinstance(value, bool):
            return {("f", node.slot): float(value)}
        return None
    if isinstance(node, _CDeferred):
        if isinstance(value, Deferred):
            fn, args, kwargs = value.fn, value.args, value.kwargs
        else:
            prov = provenance(value)
            if prov is None:
                is_instance = isinstance(node.fn, type) and type(value) is node.fn
                if space is not None and is_instance and isinstance(value, nnx.Module):
                    return _match_structure(node, value, space)
                return None
            fn, args, kwargs = prov
        if fn is not node.fn or len(args) != len(node.args) or set(kwargs) != set(node.kwargs):
            return None
        return _match_seq(list(node.args) + [node.kwargs[k] for k in node.kwargs],
                          list(args) + [kwargs[k] for k in node.kwargs], space)
    if isinstance(node, dict):
        if not isinstance(value, dict) or set(value) != set(node):
            return None
        return _match_seq(list(node.values()), [value[k] for k in node], space)
    if isinstance(node, (list, tuple)):
        if not isinstance(value, (list, tuple)) or len(value) != len(node):
            return None
        return _match_seq(list(node), list(value), space)
    if _is_rngs(node.value) and _is_rngs(value):
        return {}  # random state is not part of the architecture
    return {} if _const_equal(node.value, value) else None


def _match_seq(nodes: list, values: list, space: Any) -> dict | None:
    out: dict | None = {}
    for n, v in zip(nodes, values, strict=True):
        sub = _match(n, v, space)
        if sub is None:
            return None
        out = _merge(out, sub)
        if out is None:
            return None
    return out


def _enum(node: Any) -> Iterator[dict]:
    if isinstance(node, _CChoice):
        for j, c in enumerate(node.candidates):
            for sub in _enum(c):
                yield {("i", node.slot): j, **sub}
        return
    if isinstance(node, _CMany):
        n = len(node.candidates[0])
        for idx in _many_indices(node, n):
            subs = [_enum(node.candidates[i][j]) for i, j in enumerate(idx)]
            for combo in itertools.product(*[list(s) for s in subs]):
                out: dict | None = {("i", s): j for s, j in zip(node.slots, idx, strict=True)}
                for c in combo:
                    out = _merge(out, c) if out is not None else None
                if out is not None:
                    yield out
        return
    if isinstance(node, _CInt):
        for v in range(node.count):
            yield {("i", node.slot): v}
        return
    if isinstance(node, _CDeferred):
        yield from _enum_seq(list(node.args) + list(node.kwargs.values()))
        return
    if isinstance(node, dict):
        yield from _enum_seq(list(node.values()))
        return
    if isinstance(node, (list, tuple)):
        yield from _enum_seq(list(node))
        return
    yield {}


def _enum_seq(nodes: list) -> Iterator[dict]:
    if not nodes:
        yield {}
        return
    head, rest = nodes[0], nodes[1:]
    rest_list = list(_enum_seq(rest))
    for h in _enum(head):
        for r in rest_list:
            both = _merge(h, r)
            if both is not None:  # shared decisions take one value everywhere
                yield both
