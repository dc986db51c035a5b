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
from collections.abc import Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

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


class _Compiler:
    def __init__(self):
        self.decisions: list[Decision] = []
        self.n_int = 0
        self.n_float = 0
        self.groups: list[tuple[tuple[int, ...], bool, bool]] = []

    def add(self, name, kind, num_choices, low, high, log, cond, group, labels) -> int:
        if any(d.name == name for d in self.decisions):
            raise ValueError(
                f"duplicate decision name {name!r}: give the choices distinct name= arguments"
            )
        if kind == "float":
            slot, self.n_float = self.n_float, self.n_float + 1
        else:
            slot, self.n_int = self.n_int, self.n_int + 1
        parent, pv = cond
        self.decisions.append(
            Decision(name, kind, slot, num_choices, low, high, log, parent, pv, group, labels)
        )
        return slot

    def compile(self, node: Any, path: tuple, cond: tuple[int, int]) -> Any:
        def name_of(explicit):
            if explicit:
                p = path[:-1] + (explicit,) if path else (explicit,)
            else:
                p = path
            return "/".join(p) if p else "choice", p

        if isinstance(node, OneOf):
            name, p = name_of(node.name)
            slot = self.add(name, "oneof", len(node.candidates), 0, len(node.candidates) - 1,
                            False, cond, -1, tuple(_label(c) for c in node.candidates))
            cands = tuple(
                self.compile(c, p[:-1] + (f"{p[-1] if p else name}[{j}]",), (slot, j))
                for j, c in enumerate(node.candidates)
            )
            return _CChoice(slot, cands)
        if isinstance(node, ManyOf):
            name, p = name_of(node.name)
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
            per_pos = tuple(
                tuple(
                    self.compile(c, p + (f"{i}[{j}]",), (slots[i], j))
                    for j, c in enumerate(node.candidates)
                )
                for i in range(node.k)
            )
            return _CMany(slots, per_pos, node.distinct, node.sorted)
        if isinstance(node, Int):
            name, _ = name_of(node.name)
            n = node.high - node.low + 1
            slot = self.add(name, "int", n, node.low, node.high, False, cond, -1, ())
            return _CInt(slot, node.low, n)
        if isinstance(node, Float):
            name, _ = name_of(node.name)
            slot = self.add(name, "float", 0, node.low, node.high, node.scale == "log", cond,
                            -1, ())
            return _CFloat(slot)
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
        return _CConst(node)


class Space:
    """A search space compiled from a template (config, layer list or deferred model).

    >>> space = Space({"width": oneof([16, 32]), "lr": floatv(1e-4, 1e-1, "log")})
    >>> cfg = space.materialize(space.sample(jax.random.key(0)))
    """

    def __init__(self, template: Any):
        c = _Compiler()
        self.template = template
        self._tree = c.compile(template, (), (-1, -1))
        self.decisions: tuple[Decision, ...] = tuple(c.decisions)
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
        depth = [0] * self.n_int
        for i, d in enumerate(ints):
            depth[i] = 0 if d.parent < 0 else depth[d.parent] + 1
        self.max_depth = max(depth, default=0) + 1
        self.max_choices = int(self.num_choices.max()) if self.n_int else 1
        same = np.zeros((self.n_int, self.n_int), bool)
        for slots, distinct, _ in self.groups:
            if distinct:
                for a in slots:
                    for b in slots:
                        same[a, b] = a != b
        self.distinct_peers = same

    # ----------------------------------------------------------------- description
    @property
    def names(self) -> tuple[str, ...]:
        return tuple(d.name for d in self.decisions)

    def __repr__(self) -> str:
        return f"Space({self.n_int} int + {self.n_float} float slots, size={self.size():.6g})"

    def describe(self) -> str:
        """A table of every decision: name, kind, domain and condition."""
        lines = []
        for d in self.decisions:
            if d.is_float:
                dom = f"[{d.low:g}, {d.high:g}]" + (" log" if d.log else "")
            elif d.kind == "int":
                dom = f"[{int(d.low)}, {int(d.high)}]"
            else:
                dom = "{" + ", ".join(d.labels) + "}"
            cond = "" if d.parent < 0 else (
                f"  if {self.int_decisions[d.parent].name} == {d.parent_value}")
            lines.append(f"{d.name:<32} {d.kind:<6} {dom}{cond}")
        return "\n".join(lines)

    # ----------------------------------------------------------------------- sizes
    def size(self) -> float:
        """Number of distinct architectures (``inf`` if the space has a float)."""
        return _size(self._tree)

    # ------------------------------------------------------------- activity (jittable)
    def active(self, dna: DNA) -> tuple[jax.Array, jax.Array]:
        """Boolean masks of active int and float slots (works on one DNA, jittable)."""
        ints = dna.ints
        parent = jnp.asarray(self.int_parent)
        pv = jnp.asarray(self.int_parent_value)
        safe = jnp.maximum(parent, 0)
        act = jnp.ones((self.n_int,), bool)
        for _ in range(self.max_depth):
            act = jnp.where(parent < 0, True, act[safe] & (ints[safe] == pv))
        fparent = jnp.asarray(self.float_parent)
        fsafe = jnp.maximum(fparent, 0)
        if self.n_int:
            on = act[fsafe] & (ints[fsafe] == self.float_parent_value)
            fact = jnp.where(fparent < 0, True, on)
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
        if not isinstance(dna, DNA):
            raise ValueError(f"expected a nas.DNA, got {type(dna).__name__}")
        ints, floats = np.asarray(dna.ints), np.asarray(dna.floats)
        if ints.shape != (self.n_int,) or floats.shape != (self.n_float,):
            raise ValueError(
                f"DNA shapes must be ints ({self.n_int},) and floats ({self.n_float},); got "
                f"{ints.shape} and {floats.shape}"
            )
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

    # -------------------------------------------------------- materialize / encode
    def materialize(self, dna: DNA) -> Any:
        """The concrete value (config, layer list or built model) that ``dna`` names."""
        dna = self.validate(dna)
        ints = [int(v) for v in np.asarray(dna.ints)]
        floats = [float(v) for v in np.asarray(dna.floats)]
        return _build(self._tree, ints, floats)

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
        """The DNA of a concrete value that this space can produce (inverse of materialize)."""
        assign = _match(self._tree, value, ())
        if assign is None:
            raise ValueError(f"value cannot be produced by this space: {value!r:.200}")
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


def _build(node: Any, ints: list[int], floats: list[float]) -> Any:
    if isinstance(node, _CChoice):
        return _build(node.candidates[ints[node.slot]], ints, floats)
    if isinstance(node, _CMany):
        return [_build(node.candidates[i][ints[s]], ints, floats)
                for i, s in enumerate(node.slots)]
    if isinstance(node, _CInt):
        return node.low + ints[node.slot]
    if isinstance(node, _CFloat):
        return floats[node.slot]
    if isinstance(node, _CDeferred):
        args = tuple(_build(a, ints, floats) for a in node.args)
        kwargs = {k: _build(v, ints, floats) for k, v in node.kwargs.items()}
        obj = node.fn(*args, **kwargs)
        _remember(obj, node.fn, args, kwargs)
        return obj
    if isinstance(node, dict):
        return {k: _build(v, ints, floats) for k, v in node.items()}
    if isinstance(node, list):
        return [_build(v, ints, floats) for v in node]
    if isinstance(node, tuple):
        return tuple(_build(v, ints, floats) for v in node)
    return node.value


def _const_equal(a: Any, b: Any) -> bool:
    if a is b:
        return True
    try:
        eq = a == b
        return bool(eq) if isinstance(eq, (bool, np.bool_)) else False
    except Exception:  # noqa: BLE001 - arrays and odd objects are compared by identity
        return False


def _match(node: Any, value: Any, _path: tuple) -> dict | None:
    """Assignments ``{('i'|'f', slot): value}`` that make ``node`` produce ``value``."""
    if isinstance(node, _CChoice):
        for j, c in enumerate(node.candidates):
            sub = _match(c, value, _path)
            if sub is not None:
                return {("i", node.slot): j, **sub}
        return None
    if isinstance(node, _CMany):
        if not isinstance(value, (list, tuple)) or len(value) != len(node.slots):
            return None
        out: dict = {}
        used: list[int] = []
        for i, (s, v) in enumerate(zip(node.slots, value, strict=True)):
            for j, c in enumerate(node.candidates[i]):
                if node.distinct and j in used:
                    continue
                sub = _match(c, v, _path)
                if sub is not None:
                    out.update({("i", s): j, **sub})
                    used.append(j)
                    break
            else:
                return None
        return out
    if isinstance(node, _CInt):
        if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
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
                return None
            fn, args, kwargs = prov
        if fn is not node.fn or len(args) != len(node.args) or set(kwargs) != set(node.kwargs):
            return None
        out = {}
        for n, v in list(zip(node.args, args, strict=True)) + [
            (node.kwargs[k], kwargs[k]) for k in node.kwargs
        ]:
            sub = _match(n, v, _path)
            if sub is None:
                return None
            out.update(sub)
        return out
    if isinstance(node, dict):
        if not isinstance(value, dict) or set(value) != set(node):
            return None
        out = {}
        for k, n in node.items():
            sub = _match(n, value[k], _path)
            if sub is None:
                return None
            out.update(sub)
        return out
    if isinstance(node, (list, tuple)):
        if not isinstance(value, (list, tuple)) or len(value) != len(node):
            return None
        out = {}
        for n, v in zip(node, value, strict=True):
            sub = _match(n, v, _path)
            if sub is None:
                return None
            out.update(sub)
        return out
    return {} if _const_equal(node.value, value) else None


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
                out = {("i", s): j for s, j in zip(node.slots, idx, strict=True)}
                for c in combo:
                    out.update(c)
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
            yield {**h, **r}
