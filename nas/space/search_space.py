"""Compile a symbolic template into a DNA spec; materialize, encode, sample, enumerate.

A DNA is a fixed-length pair of arrays (``ints`` int32[n_int], ``floats`` float32[n_float]):
one int slot per ``oneof`` (chosen index), per ``manyof`` position and per ``intv``
(offset from ``low``), one float slot per ``floatv`` (the value itself). Conditional
choices (a choice inside a candidate) keep their slot in every DNA; a slot is *active*
only when its parent slot holds the candidate that contains it. Inactive slots are
canonicalized to 0 (ints) and ``low`` (floats), so equal architectures have equal DNA.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import weakref
import zlib
from collections.abc import Iterator, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx, struct

from nas.checks import check_int, check_key, check_real, is_int
from nas.primitives import Deferred, Float, Int, ManyOf, OneOf


@struct.dataclass
class DNA:
    """An architecture: ``ints`` int32[..., n_int] and ``floats`` float32[..., n_float].
    A leading batch axis makes it a population (a plain JAX pytree)."""

    ints: jax.Array
    floats: jax.Array


@dataclasses.dataclass(frozen=True)
class Decision:
    """One slot of the DNA."""

    name: str
    kind: str  # "oneof" | "manyof" | "int" | "float"
    slot: int  # index into DNA.ints (oneof/manyof/int) or DNA.floats (float)
    num_choices: int  # int slots: number of values; float slots: 0
    low: float  # int: value of index 0; float: lower bound
    high: float
    log: bool
    parent: int  # int slot of the parent choice, -1 at the root
    parent_value: int  # the parent's index that activates this slot
    group: int  # manyof group id, -1 otherwise
    labels: tuple  # readable candidate labels for int slots
    # every (parent slot, parent value) under which the slot is active (OR); a decision
    # shared by name= can sit under several conditions; ((-1, -1),) at the root.
    # ``parent``/``parent_value`` hold the first of them (the root when any is the root).
    conditions: tuple = ()

    @property
    def is_float(self) -> bool:
        return self.kind == "float"


# ---------------------------------------------------------------- compiled tree nodes
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


# provenance of objects built from deferred calls, so encode() can read them back
_PROVENANCE: dict[int, tuple[weakref.ref, Any, tuple, dict]] = {}


def _remember(obj: Any, fn: Any, args: tuple, kwargs: dict) -> None:
    try:
        key = id(obj)
        ref = weakref.ref(obj, lambda _r, k=key: _PROVENANCE.pop(k, None))
    except TypeError:
        return
    _PROVENANCE[key] = (ref, fn, args, kwargs)


def provenance(obj: Any) -> tuple[Any, tuple, dict] | None:
    """``(fn, args, kwargs)`` if ``obj`` was built by materializing a deferred call."""
    rec = _PROVENANCE.get(id(obj))
    if rec is None or rec[0]() is not obj:
        return None
    return rec[1], rec[2], rec[3]


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


def _is_rngs(v: Any) -> bool:
    return isinstance(v, nnx.Rngs)


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


class Space:
    """A search space compiled from a template (config, layer list or deferred model).

    >>> space = Space({"width": oneof([16, 32]), "lr": floatv(1e-4, 1e-1, "log")})
    >>> cfg = space.materialize(space.sample(jax.random.key(0)))
    """

    def __init__(self, template: Any):
        c = _Compiler()
        self.template = template
        self._tree = c.compile(template, (), (-1, -1))
        self.decisions: tuple[Decision, ...] = tuple(c.finish())
        self._shared = frozenset(c.shared)
        self.int_decisions = tuple(d for d in self.decisions if not d.is_float)
        self.float_decisions = tuple(d for d in self.decisions if d.is_float)
        self.n_int, self.n_float = c.n_int, c.n_float
        self.groups = tuple(c.groups)
        if not self.decisions:
            raise ValueError(
                "template holds no choice (oneof/manyof/floatv/intv): nothing to search")
        ints, floats = self.int_decisions, self.float_decisions
        self.num_choices = np.array([d.num_choices for d in ints], np.int32)
        self.int_parent = np.array([d.parent for d in ints], np.int32)
        self.int_parent_value = np.array([d.parent_value for d in ints], np.int32)
        self.float_low = np.array([d.low for d in floats], np.float32)
        self.float_high = np.array([d.high for d in floats], np.float32)
        self.float_log = np.array([d.log for d in floats], bool)
        self.float_parent = np.array([d.parent for d in floats], np.int32)
        self.float_parent_value = np.array([d.parent_value for d in floats], np.int32)
        # all conditions, padded with parent -2 (never true): shared decisions are active
        # when any of their places is
        width = max(len(d.conditions) for d in self.decisions)
        self.int_cond_parent, self.int_cond_value = _cond_arrays(ints, width)
        self.float_cond_parent, self.float_cond_value = _cond_arrays(floats, width)
        depth: dict[int, int] = {}

        def depth_of(i: int) -> int:
            if i not in depth:
                depth[i] = 0  # guards against cycles
                depth[i] = max((0 if p < 0 else depth_of(p) + 1)
                               for p, _ in ints[i].conditions)
            return depth[i]

        self.max_depth = max((depth_of(i) for i in range(self.n_int)), default=0) + 1
        self.max_choices = int(self.num_choices.max()) if self.n_int else 1
        same = np.zeros((self.n_int, self.n_int), bool)
        for slots, distinct, _ in self.groups:
            if distinct:
                for a in slots:
                    for b in slots:
                        same[a, b] = a != b
        self.distinct_peers = same
        # nnx.Rngs in the template, as they were now: every materialize starts from a copy
        self._rngs = {id(r): (r, nnx.clone(r)) for r in _find_rngs(self._tree)}

    @property
    def shared_names(self) -> tuple[str, ...]:
        """Names of the decisions (manyof: their common prefix) used in several places."""
        out: list[str] = []
        for node in _walk(self._tree):
            if id(node) not in self._shared:
                continue
            if isinstance(node, _CMany):
                name = self.int_decisions[node.slots[0]].name.rsplit("/", 1)[0]
            elif isinstance(node, _CFloat):
                name = self.float_decisions[node.slot].name
            else:
                name = self.int_decisions[node.slot].name
            if name not in out:
                out.append(name)
        return tuple(out)

    # ----------------------------------------------------------------- description
    @property
    def names(self) -> tuple[str, ...]:
        return tuple(d.name for d in self.decisions)

    def __repr__(self) -> str:
        return f"Space({self.n_int} int + {self.n_float} float slots, size={self.size():.6g})"

    def describe(self) -> str:
        """A table of every decision: name, kind, domain and condition."""
        lines = []
        shared = set(self.shared_names)
        for d in self.decisions:
            if d.is_float:
                dom = f"[{d.low:g}, {d.high:g}]" + (" log" if d.log else "")
            elif d.kind == "int":
                dom = f"[{int(d.low)}, {int(d.high)}]"
            else:
                dom = "{" + ", ".join(d.labels) + "}"
            cond = "" if d.parent < 0 else "  if " + " or ".join(
                f"{self.int_decisions[p].name} == {v}" for p, v in d.conditions)
            if len(d.conditions) > 1 or d.name in shared or d.name.rsplit("/", 1)[0] in shared:
                cond += "  (shared)"
            lines.append(f"{d.name:<32} {d.kind:<6} {dom}{cond}")
        return "\n".join(lines)

    # ----------------------------------------------------------------------- sizes
    def size(self) -> float:
        """Number of distinct architectures (``inf`` if the space has a float)."""
        if self._shared:
            return float(sum(_count(self._tree, frozenset(), self._shared).values()))
        return _size(self._tree)

    # ------------------------------------------------------------- activity (jittable)
    def active(self, dna: DNA) -> tuple[jax.Array, jax.Array]:
        """Boolean masks of active int and float slots (works on one DNA, jittable).

        A slot is active when any of its conditions holds (a shared decision has one per
        place it is used in)."""
        ints = dna.ints
        parent = jnp.asarray(self.int_cond_parent)  # [n_int, width]
        pv = jnp.asarray(self.int_cond_value)
        safe = jnp.maximum(parent, 0)
        act = jnp.ones((self.n_int,), bool)
        if self.n_int:
            for _ in range(self.max_depth):
                on = jnp.where(parent == -1, True, act[safe] & (ints[safe] == pv))
                act = jnp.any(on & (parent != -2), axis=1)
        fparent = jnp.asarray(self.float_cond_parent)
        if self.n_int:
            fsafe = jnp.maximum(fparent, 0)
            on = jnp.where(fparent == -1, True,
                           act[fsafe] & (ints[fsafe] == jnp.asarray(self.float_cond_value)))
            fact = jnp.any(on & (fparent != -2), axis=1)
        else:
            fact = jnp.ones((self.n_float,), bool)
        return act, fact

    def canonicalize(self, dna: DNA) -> DNA:
        """Sort sorted manyof groups and reset inactive slots (jittable, one DNA)."""
        ints = dna.ints.astype(jnp.int32)
        for slots, _, is_sorted in self.groups:
            if is_sorted:
                idx = np.array(slots)
                ints = ints.at[idx].set(jnp.sort(ints[idx]))
        act, fact = self.active(DNA(ints, dna.floats))
        return DNA(
            jnp.where(act, ints, 0).astype(jnp.int32),
            jnp.where(fact, dna.floats, self.float_low).astype(jnp.float32),
        )

    # ------------------------------------------------------------- sampling (jittable)
    def sample(self, key: jax.Array) -> DNA:
        """A uniformly random DNA (each decision drawn independently; jittable)."""
        check_key("sample.key", key)
        k_int, k_float, k_grp = jax.random.split(key, 3)
        ints = jax.random.randint(k_int, (self.n_int,), 0, jnp.asarray(self.num_choices))
        gkeys = jax.random.split(k_grp, max(len(self.groups), 1))
        for g, (slots, distinct, _) in enumerate(self.groups):
            if distinct:
                n = int(self.num_choices[slots[0]])
                perm = jnp.argsort(jax.random.uniform(gkeys[g], (n,)))[: len(slots)]
                ints = ints.at[np.array(slots)].set(perm.astype(jnp.int32))
        u = jax.random.uniform(k_float, (self.n_float,))
        return self.canonicalize(DNA(ints.astype(jnp.int32), self._from_unit(u)))

    def sample_batch(self, key: jax.Array, n: int) -> DNA:
        """``n`` random DNA with a leading axis."""
        check_key("sample_batch.key", key)
        check_int("sample_batch.n", n, 1)
        return jax.vmap(self.sample)(jax.random.split(key, n))

    def _to_unit(self, floats: jax.Array) -> jax.Array:
        lo, hi = jnp.asarray(self.float_low), jnp.asarray(self.float_high)
        lin = (floats - lo) / (hi - lo)
        llo = jnp.log(jnp.where(self.float_log, lo, 1.0))
        lhi = jnp.log(jnp.where(self.float_log, hi, 2.0))
        logu = (jnp.log(jnp.where(self.float_log, jnp.maximum(floats, 1e-30), 1.0)) - llo) / (
            lhi - llo)
        return jnp.where(self.float_log, logu, lin)

    def _from_unit(self, u: jax.Array) -> jax.Array:
        lo, hi = jnp.asarray(self.float_low), jnp.asarray(self.float_high)
        lin = lo + u * (hi - lo)
        llo = jnp.log(jnp.where(self.float_log, lo, 1.0))
        lhi = jnp.log(jnp.where(self.float_log, hi, 2.0))
        logv = jnp.exp(llo + u * (lhi - llo))
        return jnp.clip(jnp.where(self.float_log, logv, lin), lo, hi).astype(jnp.float32)

    def mutate(self, key: jax.Array, dna: DNA, float_sigma: float = 0.2) -> DNA:
        """Change one active decision (jittable; one DNA in, one out).

        Int slots move to a different allowed index (respecting ``distinct``); float slots
        take a Gaussian step of ``float_sigma`` in the unit (linear or log) scale. Slots that
        the change activates are drawn at random."""
        check_key("mutate.key", key)
        self._check_shapes("mutate.dna", dna)
        if not isinstance(float_sigma, jax.Array):
            check_real("mutate.float_sigma", float_sigma)
            if float_sigma < 0:
                raise ValueError(f"mutate.float_sigma must be >= 0, got {float_sigma!r}")
        k_pick, k_int, k_float, k_fresh = jax.random.split(key, 4)
        act, fact = self.active(dna)
        n_int = self.n_int
        ints, floats = dna.ints, dna.floats
        mutable_int = act & (jnp.asarray(self.num_choices) > 1)
        weights = jnp.concatenate([mutable_int, fact]).astype(jnp.float32)
        pick = jax.random.categorical(k_pick, jnp.log(weights))
        if n_int:
            i = jnp.minimum(pick, n_int - 1)
            values = jnp.arange(self.max_choices)
            peers = jnp.asarray(self.distinct_peers)[i]
            taken = jnp.any((ints[:, None] == values[None, :]) & peers[:, None], axis=0)
            allowed = (values < jnp.asarray(self.num_choices)[i]) & ~taken & (values != ints[i])
            new = jax.random.categorical(k_int, jnp.where(allowed, 0.0, -jnp.inf))
            new = jnp.where(jnp.any(allowed), new, ints[i]).astype(jnp.int32)
            ints = jnp.where((pick < n_int) & (jnp.arange(n_int) == i), new, ints)
        if self.n_float:
            j = jnp.clip(pick - n_int, 0, self.n_float - 1)
            u = self._to_unit(floats)
            step = jnp.clip(u[j] + float_sigma * jax.random.normal(k_float), 0.0, 1.0)
            u = jnp.where((pick >= n_int) & (jnp.arange(self.n_float) == j), step, u)
            floats = jnp.where(pick >= n_int, self._from_unit(u), floats)
        moved = self.canonicalize(DNA(ints.astype(jnp.int32), floats.astype(jnp.float32)))
        # slots that just became active are drawn fresh rather than left at their reset value
        new_act, new_fact = self.active(moved)
        fresh = self.sample(k_fresh)
        return self.canonicalize(DNA(
            jnp.where(new_act & ~act, fresh.ints, moved.ints),
            jnp.where(new_fact & ~fact, fresh.floats, moved.floats),
        ))

    # ------------------------------------------------------------ validation (eager)
    def validate(self, dna: DNA) -> DNA:
        """Check one DNA eagerly; raise ``ValueError`` naming the bad slot."""
        self._check_shapes("dna", dna)
        ints, floats = np.asarray(dna.ints), np.asarray(dna.floats)
        if not np.issubdtype(ints.dtype, np.integer):
            raise ValueError(f"DNA.ints must be integers, got dtype {ints.dtype}")
        masks = self.active(DNA(jnp.asarray(ints), jnp.asarray(floats)))
        act, fact = (np.asarray(m) for m in masks)
        for d in self.int_decisions:
            v = int(ints[d.slot])
            if act[d.slot] and not 0 <= v < d.num_choices:
                raise ValueError(
                    f"DNA value {v} for {d.name!r} is out of range [0, {d.num_choices})")
        for d in self.float_decisions:
            v = floats[d.slot]
            if fact[d.slot] and not (np.float32(d.low) <= v <= np.float32(d.high)):
                raise ValueError(f"DNA value {v} for {d.name!r} is outside [{d.low}, {d.high}]")
        for slots, distinct, is_sorted in self.groups:
            vals = [int(ints[s]) for s in slots if act[s]]
            name = self.int_decisions[slots[0]].name.rsplit("/", 1)[0]
            if distinct and len(set(vals)) != len(vals):
                raise ValueError(f"manyof {name!r} is distinct but DNA repeats a choice: {vals}")
            if is_sorted and vals != sorted(vals):
                raise ValueError(f"manyof {name!r} is sorted but DNA is not: {vals}")
        return DNA(jnp.asarray(ints, jnp.int32), jnp.asarray(floats, jnp.float32))

    def _check_shapes(self, field: str, dna: Any) -> None:
        """Type and shapes of one DNA (static, so it also works under jit)."""
        if not isinstance(dna, DNA):
            raise ValueError(f"{field}: expected a nas.DNA, got {type(dna).__name__}")
        ints, floats = np.shape(dna.ints), np.shape(dna.floats)
        if ints != (self.n_int,) or floats != (self.n_float,):
            batched = ints[1:] == (self.n_int,) and floats[1:] == (self.n_float,)
            hint = (" (a population: take one with jax.tree.map(lambda x: x[i], dna))"
                    if batched else " (is it a DNA of another space?)")
            raise ValueError(
                f"{field}: DNA shapes must be ints ({self.n_int},) and floats "
                f"({self.n_float},) for this space; got {ints} and {floats}{hint}")

    # -------------------------------------------------------- materialize / encode
    def materialize(self, dna: DNA, seed: int | None = None) -> Any:
        """The concrete value (config, layer list or built model) that ``dna`` names.

        Deterministic per call: each ``nnx.Rngs`` in the template is replaced by a fresh
        copy of its state when the Space was created, so the same DNA gives the same
        weights whatever ran before (the template's own Rngs is never advanced). ``seed``
        re-seeds those copies instead: stream ``default`` gets ``jax.random.key(seed)``,
        any other stream ``jax.random.fold_in(jax.random.key(seed), crc32(stream name))``."""
        if seed is not None and not (is_int(seed) and seed >= 0):
            raise ValueError(f"materialize.seed must be None or an int >= 0, got {seed!r}")
        dna = self.validate(dna)
        ints = [int(v) for v in np.asarray(dna.ints)]
        floats = [float(v) for v in np.asarray(dna.floats)]
        return _build(self._tree, ints, floats, self._fresh_rngs(seed))

    def _fresh_rngs(self, seed: int | None) -> Any:
        """``template Rngs -> its copy for one build`` (one copy per object and build)."""
        memo: dict[int, Any] = {}

        def get(r: Any) -> Any:
            if id(r) not in memo:
                snap = self._rngs[id(r)][1] if id(r) in self._rngs else r
                memo[id(r)] = nnx.clone(snap) if seed is None else _reseeded(snap, int(seed))
            return memo[id(r)]

        return get

    def decode(self, dna: DNA) -> dict[str, Any]:
        """``{decision name: chosen label or value}`` for the active decisions (readable)."""
        dna = self.validate(dna)
        act, fact = (np.asarray(m) for m in self.active(dna))
        out: dict[str, Any] = {}
        for d in self.decisions:
            if d.is_float:
                if fact[d.slot]:
                    out[d.name] = float(dna.floats[d.slot])
            elif act[d.slot]:
                v = int(dna.ints[d.slot])
                out[d.name] = int(d.low) + v if d.kind == "int" else d.labels[v]
        return out

    def encode(self, value: Any) -> DNA:
        """The DNA of a concrete value that this space can produce (inverse of materialize).

        Objects built by :meth:`materialize` are read back from their recorded constructor
        arguments; a ``nas.deferred(cls)(...)`` value from its arguments; an NNX module
        built by hand by its structure (module types, static attributes such as an
        activation, weight shapes), trying every setting of that constructor's own
        decisions (at most ``STRUCTURE_MATCH_LIMIT``, no floatv); a structure that several
        architectures share raises ``ValueError`` naming the decisions it cannot tell."""
        assign = _match(self._tree, value, self)
        if assign is None:
            raise ValueError(
                f"value cannot be produced by this space: {value!r:.200} (compare it with "
                "space.describe(); hand-built NNX modules are matched by structure)")
        ints = np.zeros(self.n_int, np.int32)
        floats = self.float_low.copy()
        for (kind, slot), v in assign.items():
            if kind == "f":
                floats[slot] = v
            else:
                ints[slot] = v
        return self.validate(self.canonicalize(DNA(jnp.asarray(ints), jnp.asarray(floats))))

    def enumerate(self, limit: int | None = None) -> DNA:
        """All architectures of a finite space as one batched DNA (deterministic order)."""
        if limit is not None:
            check_int("enumerate.limit", limit, 1)
        if self.n_float:
            raise ValueError("enumerate needs a finite space; this one has floatv decisions")
        size = self.size()
        if limit is None and size > 10_000_000:
            raise ValueError(f"space has {size:.3g} architectures; pass limit= to enumerate")
        rows = []
        for assign in _enum(self._tree):
            row = np.zeros(self.n_int, np.int32)
            for (_, slot), v in assign.items():
                row[slot] = v
            rows.append(row)
            if limit is not None and len(rows) >= limit:
                break
        if self._shared:  # a shared decision met twice in a branch yields the same row
            rows = list({r.tobytes(): r for r in rows}.values())
        ints = np.stack(rows) if rows else np.zeros((0, self.n_int), np.int32)
        return DNA(jnp.asarray(ints), jnp.zeros((len(rows), 0), jnp.float32))

    def spec(self) -> dict[str, np.ndarray]:
        """The arrays an algorithm needs (static across a search)."""
        return {
            "num_choices": self.num_choices, "int_parent": self.int_parent,
            "int_parent_value": self.int_parent_value, "float_low": self.float_low,
            "float_high": self.float_high, "float_log": self.float_log,
        }


# ---------------------------------------------------------------- tree helpers
def _cond_arrays(decisions: tuple, width: int) -> tuple[np.ndarray, np.ndarray]:
    parent = np.full((len(decisions), width), -2, np.int32)
    value = np.zeros((len(decisions), width), np.int32)
    for i, d in enumerate(decisions):
        for j, (p, v) in enumerate(d.conditions):
            parent[i, j], value[i, j] = p, v
    return parent, value


def _reseeded(rngs: Any, seed: int) -> Any:
    """A new ``nnx.Rngs`` with the streams of ``rngs``, all keyed from ``seed``."""
    base = jax.random.key(seed)
    streams = [k for k, v in vars(rngs).items() if isinstance(v, nnx.RngStream)]
    return nnx.Rngs(**{
        k: base if k == "default" else jax.random.fold_in(base, zlib.crc32(k.encode()))
        for k in streams})


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


def _merge(a: dict, b: dict) -> dict | None:
    """Union of two assignments, or None when they disagree on a (shared) slot."""
    for k, v in b.items():
        if k in a and a[k] != v:
            return None
    return {**a, **b}


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


def _const_equal(a: Any, b: Any) -> bool:
    if a is b:
        return True
    try:
        eq = a == b
        return bool(eq) if isinstance(eq, (bool, np.bool_)) else False
    except Exception:  # noqa: BLE001 - arrays and odd objects are compared by identity
        return False


# hand-built models are matched by structure over at most this many argument settings
STRUCTURE_MATCH_LIMIT = 1024


def _structure(obj: Any) -> tuple:
    """An NNX object's graph (module types, static attributes) and its leaves' shapes."""
    graphdef, state = nnx.split(obj)
    leaves = jax.tree_util.tree_leaves_with_path(state)
    return graphdef, tuple((path, tuple(np.shape(x)), str(x.dtype)) for path, x in leaves)


def _match_structure(node: _CDeferred, value: Any, space: Space) -> dict | None:
    """Assignments of ``node``'s own decisions whose model has ``value``'s structure."""
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


def _match(node: Any, value: Any, space: Space | None = None) -> dict | None:
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


def _match_seq(nodes: list, values: list, space: Space | None) -> dict | None:
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
