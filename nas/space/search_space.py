"""Compile a symbolic template into a DNA spec; materialize, encode, sample, enumerate.

A DNA is a fixed-length pair of arrays (``ints`` int32[n_int], ``floats`` float32[n_float]):
one int slot per ``oneof`` (chosen index), per ``manyof`` position and per ``intv``
(offset from ``low``), one float slot per ``floatv`` (the value itself). Conditional
choices (a choice inside a candidate) keep their slot in every DNA; a slot is *active*
only when its parent slot holds the candidate that contains it. Inactive slots are
canonicalized to 0 (ints) and ``low`` (floats), so equal architectures have equal DNA.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from nas.checks import check_int, check_key, check_real, is_int
from nas.space.codec import _build, _enum, _match, _reseeded
from nas.space.compiler import _Compiler
from nas.space.counting import _count, _size
from nas.space.nodes import _CFloat, _CMany, _find_rngs, _walk
from nas.space.types import DNA, Decision


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


def _cond_arrays(decisions: tuple, width: int) -> tuple[np.ndarray, np.ndarray]:
    parent = np.full((len(decisions), width), -2, np.int32)
    value = np.zeros((len(decisions), width), np.int32)
    for i, d in enumerate(decisions):
        for j, (p, v) in enumerate(d.conditions):
            parent[i, j], value[i, j] = p, v
    return parent, value
