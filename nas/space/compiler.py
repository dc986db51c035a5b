"""The template compiler: turns a symbolic template into decisions and a compiled tree."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from nas.primitives import Deferred, Float, Int, ManyOf, OneOf
from nas.space.nodes import (
    _CChoice,
    _CConst,
    _CDeferred,
    _CFloat,
    _CInt,
    _CMany,
    _const_equal,
    _is_rngs,
)
from nas.space.types import Decision


def _label(c: Any) -> str:
    """A short readable label for a candidate."""
    if isinstance(c, (OneOf, ManyOf, Float, Int)):
        return type(c).__name__.lower() + "(...)"
    if isinstance(c, Deferred):
        return getattr(c.fn, "__name__", "call") + "(...)"
    if isinstance(c, dict):
        return "{" + ", ".join(str(k) for k in c) + "}"
    if isinstance(c, (list, tuple)) and _contains_choice(c):
        return f"[{len(c)} items]"
    if isinstance(c, str):
        return c
    if callable(c) and hasattr(c, "__name__"):
        return c.__name__
    r = repr(c)
    return r if len(r) <= 40 else r[:37] + "..."


def _contains_choice(node: Any) -> bool:
    if isinstance(node, (OneOf, ManyOf, Float, Int)):
        return True
    if isinstance(node, dict):
        return any(_contains_choice(v) for v in node.values())
    if isinstance(node, (list, tuple)):
        return any(_contains_choice(v) for v in node)
    if isinstance(node, Deferred):
        return _contains_choice(list(node.args)) or _contains_choice(node.kwargs)
    return False


_CHOICE_TYPES = (OneOf, ManyOf, Float, Int)


def _kind(node: Any) -> str:
    return {OneOf: "oneof", ManyOf: "manyof", Float: "floatv", Int: "intv"}[type(node)]


def _template_equal(a: Any, b: Any) -> bool:
    """Structural equality of two template (sub)trees (``nnx.Rngs`` compare equal)."""
    if a is b:
        return True
    if type(a) is not type(b):
        return False
    if isinstance(a, _CHOICE_TYPES) or isinstance(a, Deferred):
        fa = {f.name: getattr(a, f.name) for f in dataclasses.fields(a)}
        fb = {f.name: getattr(b, f.name) for f in dataclasses.fields(b)}
        if isinstance(a, Deferred) and a.fn is not b.fn:
            return False
        return fa.keys() == fb.keys() and all(
            fa[k] is fb[k] or _template_equal(fa[k], fb[k]) for k in fa if k != "fn")
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_template_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_template_equal(x, y) for x, y in zip(a, b, strict=True))
    if _is_rngs(a):
        return True
    return _const_equal(a, b)


def _template_diff(a: Any, b: Any) -> str | None:
    """What differs between two uses of one decision name (None if nothing)."""
    if type(a) is not type(b):
        return f"kinds ({_kind(a)} vs {_kind(b)})"
    for f in dataclasses.fields(a):
        if f.name == "name":
            continue
        if not _template_equal(getattr(a, f.name), getattr(b, f.name)):
            return f"{f.name} ({getattr(a, f.name)!r:.80} vs {getattr(b, f.name)!r:.80})"
    return None


def _hidden_choice(node: Any) -> bool:
    """A choice inside a container the compiler does not traverse (set, namedtuple...)."""
    if isinstance(node, (set, frozenset)):
        return any(_contains_choice(v) for v in node)
    if isinstance(node, (list, tuple)) and type(node) not in (list, tuple):
        return any(_contains_choice(v) for v in node)
    if isinstance(node, Mapping) and not isinstance(node, dict):
        return any(_contains_choice(v) for v in node.values())
    return False


class _Compiler:
    def __init__(self):
        self.decisions: list[Decision] = []
        self.n_int = 0
        self.n_float = 0
        self.groups: list[tuple[tuple[int, ...], bool, bool]] = []
        # name= -> (template node, compiled node, its root decision indices)
        self.named: dict[str, tuple[Any, Any, tuple[int, ...]]] = {}
        self.unnamed: dict[int, tuple[Any, str]] = {}  # id(choice) -> (choice, its name)
        self.conds: list[list[tuple[int, int]]] = []  # per decision, all its conditions
        self.shared: set[int] = set()  # ids of compiled nodes used more than once

    def add(self, name, kind, num_choices, low, high, log, cond, group, labels) -> int:
        if any(d.name == name for d in self.decisions):
            raise ValueError(
                f"duplicate decision name {name!r}: two different choices resolve to this name; "
                "give them distinct name= arguments (the same name= on choices with identical "
                "candidates makes them one shared decision)"
            )
        if kind == "float":
            slot, self.n_float = self.n_float, self.n_float + 1
        else:
            slot, self.n_int = self.n_int, self.n_int + 1
        parent, pv = cond
        self.decisions.append(
            Decision(name, kind, slot, num_choices, low, high, log, parent, pv, group, labels)
        )
        self.conds.append([cond])
        return slot

    def finish(self) -> list[Decision]:
        """Decisions with every condition recorded (shared decisions may have several)."""
        out = []
        for d, conds in zip(self.decisions, self.conds, strict=True):
            uniq = tuple(dict.fromkeys(conds))
            if (-1, -1) in uniq:
                uniq = ((-1, -1),)
            out.append(dataclasses.replace(d, parent=uniq[0][0], parent_value=uniq[0][1],
                                           conditions=uniq))
        return out

    def _reuse(self, node: Any, name: str, cond: tuple[int, int]) -> Any:
        tmpl, compiled, roots = self.named[name]
        if tmpl is not node:
            diff = _template_diff(tmpl, node)
            if diff is not None:
                raise ValueError(
                    f"decision {name!r} is used in several places with different {diff}: one "
                    "name= is one shared decision and needs identical candidates everywhere; "
                    "give the places distinct names to make them independent decisions")
        for i in roots:
            self.conds[i].append(cond)
        self.shared.add(id(compiled))
        return compiled

    def _check_unnamed_reuse(self, node: Any, name: str) -> None:
        prev = self.unnamed.get(id(node))
        if prev is not None and prev[0] is node:
            raise ValueError(
                f"the same {_kind(node)} object is used at {prev[1]!r} and at {name!r}: give "
                f"it name= to make one decision shared by both places, or create one "
                f"{_kind(node)} per place (e.g. a list comprehension instead of [x] * n) for "
                "independent decisions")
        self.unnamed[id(node)] = (node, name)

    def compile(self, node: Any, path: tuple, cond: tuple[int, int]) -> Any:
        if isinstance(node, _CHOICE_TYPES):
            if node.name is not None:
                name, p = node.name, tuple(node.name.split("/"))
                if name in self.named:
                    return self._reuse(node, name, cond)
            else:
                name, p = ("/".join(path) if path else "choice"), path
                self._check_unnamed_reuse(node, name)
            first = len(self.decisions)
            compiled = self._compile_choice(node, name, p, cond)
            if node.name is not None:
                roots = tuple(i for i in range(first, len(self.decisions))
                              if self.conds[i][0] == cond)
                self.named[name] = (node, compiled, roots)
            return compiled
        if isinstance(node, Deferred):
            base = path[:-1] + (node.name,) if node.name and path else (
                (node.name,) if node.name else path)
            args = tuple(self.compile(a, base + (str(i),), cond) for i, a in enumerate(node.args))
            kwargs = {k: self.compile(v, base + (str(k),), cond) for k, v in node.kwargs.items()}
            return _CDeferred(node.fn, args, kwargs)
        if isinstance(node, dict):
            return {k: self.compile(v, path + (str(k),), cond) for k, v in node.items()}
        if isinstance(node, (list, tuple)) and type(node) in (list, tuple):
            out = [self.compile(v, path + (str(i),), cond) for i, v in enumerate(node)]
            return out if isinstance(node, list) else tuple(out)
        if _hidden_choice(node):
            where = "/".join(path) or "the template root"
            raise ValueError(
                f"a choice sits inside a {type(node).__name__} at {where!r}, which Space does "
                "not look into: use a plain list, tuple or dict there (or nas.deferred to "
                "build the object)")
        return _CConst(node)

    def _compile_choice(self, node: Any, name: str, p: tuple, cond: tuple[int, int]) -> Any:
        if isinstance(node, OneOf):
            slot = self.add(name, "oneof", len(node.candidates), 0, len(node.candidates) - 1,
                            False, cond, -1, tuple(_label(c) for c in node.candidates))
            cands = tuple(
                self.compile(c, p[:-1] + (f"{p[-1] if p else name}[{j}]",), (slot, j))
                for j, c in enumerate(node.candidates)
            )
            return _CChoice(slot, cands)
        if isinstance(node, ManyOf):
            n = len(node.candidates)
            if node.sorted and any(_contains_choice(c) for c in node.candidates):
                raise ValueError(
                    f"manyof {name!r}: sorted=True is not supported when candidates hold nested "
                    "choices (sorting would detach them from their position)"
                )
            group = len(self.groups)
            labels = tuple(_label(c) for c in node.candidates)
            slots = tuple(
                self.add(f"{name}/{i}", "manyof", n, 0, n - 1, False, cond, group, labels)
                for i in range(node.k)
            )
            self.groups.append((slots, node.distinct, node.sorted))
            # each position holds its own copy of unnamed nested choices: the same objects
            # are compiled once per position without counting as reuse
            before, seen = dict(self.unnamed), {}
            per_pos = []
            for i in range(node.k):
                self.unnamed = dict(before)
                per_pos.append(tuple(
                    self.compile(c, p + (f"{i}[{j}]",), (slots[i], j))
                    for j, c in enumerate(node.candidates)))
                seen.update(self.unnamed)
            self.unnamed = seen
            return _CMany(slots, tuple(per_pos), node.distinct, node.sorted)
        if isinstance(node, Int):
            n = node.high - node.low + 1
            slot = self.add(name, "int", n, node.low, node.high, False, cond, -1, ())
            return _CInt(slot, node.low, n)
        slot = self.add(name, "float", 0, node.low, node.high, node.scale == "log", cond,
                        -1, ())
        return _CFloat(slot)
