"""Supernets: one Flax NNX model holding every candidate of a space once.

:func:`Supernet` walks a compiled :class:`nas.Space` template and builds the same object
that ``space.materialize`` would, except that

* a ``oneof`` whose candidates are modules or functions (``nas.deferred(Conv)(...)``,
  ``jax.nn.relu``) becomes a :class:`MixedOp` holding every candidate, built once;
* each position of a ``manyof`` over modules or functions becomes a :class:`MixedOp` (a
  "2 of the earlier nodes" input choice is a ``manyof`` over picker functions such as
  ``lambda states: states[1]``, so the mixed op is a weighted or sampled selection);
* a ``oneof``/``intv`` among *constants* that sits in the arguments of a deferred
  constructor (``nas.deferred(Conv)(kernel=oneof([1, 3]))``) is shared by building that
  constructor once per value: ``Conv(kernel=1)`` and ``Conv(kernel=3)`` become the two
  candidates of a mixed op (each with its own weights). If the variants' outputs differ in
  shape (a width that changes the next layer's input) the first call raises a
  ``ValueError`` naming the decision; the widest-candidate slicing scheme is not
  implemented.

Rejected with a ``ValueError`` naming the decision: a constant choice outside any
constructor (a config value), a ``floatv``, a ``manyof`` among constants, and a template
whose root constructor itself would be duplicated (nothing to share).

Every ``nnx.Rngs`` of the template is replaced by a fresh copy, as ``space.materialize``
does (``seed`` re-seeds them), so building a supernet never advances the template's Rngs
and the same space and seed give the same weights. A decision shared by name (one
``name=`` in several places) is one DNA slot read by several mixed ops: one decision, the
weights of each place its own.

The architecture is passed at call time: ``supernet(x, selection=sel)`` (see
:mod:`nas.weight_sharing.selection`); the architecture parameters ``alpha``
(float32[n_int, max_choices], DARTS' ``1e-3 * N(0, 1)`` initialisation) are a
``nas.ArchParam``, so ``nnx.state(supernet, nnx.Param)`` and
``nnx.state(supernet, nas.ArchParam)`` split weights from architecture.
"""

from __future__ import annotations

import functools
import hashlib
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from nas.arch_params import ArchParam
from nas.space import (
    Space,
    _CChoice,
    _CConst,
    _CDeferred,
    _CFloat,
    _CInt,
    _CMany,
)
from nas.weight_sharing import selection as sel_mod
from nas.weight_sharing import step_jit
from nas.weight_sharing.canonical_conv import use_canonical_convs

NONE_NAMES = ("none", "zero", "zeros")
MAX_VARIANTS = 64


class Fn(nnx.Module):
    """A plain function used as a candidate (kept as static graph data)."""

    def __init__(self, fn: Any):
        self.fn = fn

    def __call__(self, *args, **kwargs):
        return self.fn(*args, **kwargs)


def _as_module(value: Any) -> nnx.Module:
    return value if isinstance(value, nnx.Module) else Fn(value)


def _fn_name(value: Any) -> str:
    target = value.fn if isinstance(value, Fn) else value
    name = getattr(target, "__name__", None) or type(target).__name__
    return str(name)


def _shape_str(tree: Any) -> str:
    return str(jax.tree.map(lambda a: tuple(a.shape), tree))


class MixedOp(nnx.Module):
    """Every candidate of one decision (an int DNA slot); runs as the selection says."""

    def __init__(self, name: str, slot: int, candidates: list, canonical_convs: bool = True):
        self.name = name
        self.slot = slot
        self.canonical_convs = canonical_convs
        self.candidates = nnx.List([_as_module(c) for c in candidates])

    def __call__(self, *args, **kwargs):
        sel = sel_mod.current(self.name)
        w = sel.weights[..., self.slot, :]
        if sel.mode == "mix":
            outs = [c(*args, **kwargs) for c in self.candidates]
            self._check_same_shape(outs)
            total = jax.tree.map(lambda o: w[0].astype(o.dtype) * o, outs[0])
            for j, out in enumerate(outs[1:], start=1):
                total = jax.tree.map(lambda t, o, j=j: t + w[j].astype(o.dtype) * o, total, out)
            return total
        idx = sel.index[..., self.slot]
        # functional switch: the branches get the candidates' state explicitly and
        # return what a forward pass may change (e.g. batch statistics; never Params).
        # The branch's private copy of the candidates uses canonical_conv's convolution
        # (same value and gradient; XLA:CPU runs JAX's own gradient convolutions ~30x
        # slower inside a conditional's branch).
        graphdef, state = nnx.split(self.candidates)
        mutable = nnx.Not(nnx.Param)
        canonical = self.canonical_convs

        def branch(j, state, a, k):
            cands = nnx.merge(graphdef, state, copy=True)
            if canonical:
                use_canonical_convs(cands)
            out = cands[j](*a, **k)
            return out, nnx.state(cands, mutable)

        branches = [functools.partial(branch, j) for j in range(len(self.candidates))]
        try:
            out, changed = jax.lax.switch(jnp.clip(idx, 0, len(self.candidates) - 1),
                                          branches, state, args, kwargs)
        except TypeError as err:  # outputs of different shapes: say which decision
            self._check_same_shape(
                [jax.eval_shape(b, state, args, kwargs)[0] for b in branches])
            raise err
        if jax.tree.leaves(changed):
            nnx.update(self.candidates, changed)
        scale = w[idx]
        return jax.tree.map(lambda o: scale.astype(o.dtype) * o, out)

    def _check_same_shape(self, outs: list) -> None:
        ref = jax.tree.structure(outs[0]), [tuple(a.shape) for a in jax.tree.leaves(outs[0])]
        for j, o in enumerate(outs[1:], start=1):
            got = jax.tree.structure(o), [tuple(a.shape) for a in jax.tree.leaves(o)]
            if got != ref:
                raise ValueError(
                    f"decision {self.name!r}: candidates' outputs disagree in shape "
                    f"(candidate 0 -> {_shape_str(outs[0])}, candidate {j} -> {_shape_str(o)}); "
                    "a supernet can only mix candidates with equal output shapes (slicing the "
                    "widest candidate's weights is not supported)")


# ------------------------------------------------------------------ template walking
def _is_callable_const(node: Any) -> bool:
    return isinstance(node, _CConst) and callable(node.value) and not isinstance(node.value, type)


def _module_kind(node: Any) -> bool:
    """True if ``node`` (a compiled candidate) builds a module or a function."""
    if isinstance(node, _CDeferred) or _is_callable_const(node):
        return True
    if isinstance(node, _CChoice):
        return all(_module_kind(c) for c in node.candidates)
    return False


def _first_const_choice(node: Any) -> Any:
    """The first constant choice (``_CChoice`` among constants or ``_CInt``) in ``node``,
    searching lists, dicts and tuples but not nested constructors or module choices."""
    if isinstance(node, _CInt):
        return node
    if isinstance(node, _CChoice):
        if _module_kind(node):
            return None
        return node
    if isinstance(node, dict):
        for v in node.values():
            found = _first_const_choice(v)
            if found is not None:
                return found
    if isinstance(node, (list, tuple)):
        for v in node:
            found = _first_const_choice(v)
            if found is not None:
                return found
    return None


def _replace(node: Any, target: Any, new: Any) -> Any:
    if node is target:
        return new
    if isinstance(node, dict):
        return {k: _replace(v, target, new) for k, v in node.items()}
    if isinstance(node, list):
        return [_replace(v, target, new) for v in node]
    if isinstance(node, tuple) and type(node) is tuple:
        return tuple(_replace(v, target, new) for v in node)
    return node


class _Builder:
    def __init__(self, space: Space, seed: int | None, canonical_convs: bool = True):
        self.space = space
        self.canonical_convs = canonical_convs
        # like space.materialize: fresh copies of the template's nnx.Rngs (never advanced)
        fresh = getattr(space, "_fresh_rngs", None)
        self.rngs = fresh(seed) if fresh is not None else (lambda r: r)

    def name(self, slot: int) -> str:
        return self.space.int_decisions[slot].name

    def mixed_op(self, slot: int, candidates: list) -> MixedOp:
        return MixedOp(self.name(slot), slot, candidates, self.canonical_convs)

    def build(self, node: Any, in_ctor: bool) -> Any:
        if isinstance(node, _CChoice):
            if _module_kind(node):
                return self.mixed_op(node.slot, [self.build(c, in_ctor) for c in node.candidates])
            raise ValueError(
                f"decision {self.name(node.slot)!r} chooses among constants outside any module "
                "constructor, which a supernet cannot share: make its candidates modules or "
                "functions, or put it in the arguments of a nas.deferred(...) constructor")
        if isinstance(node, _CMany):
            if all(_module_kind(c) for pos in node.candidates for c in pos):
                return [self.mixed_op(s, [self.build(c, in_ctor) for c in node.candidates[i]])
                        for i, s in enumerate(node.slots)]
            raise ValueError(
                f"decision {self.name(node.slots[0]).rsplit('/', 1)[0]!r}: a manyof among "
                "constants cannot be shared by a supernet; make its candidates modules or "
                "functions (e.g. input pickers: lambda states: states[i])")
        if isinstance(node, _CInt):
            raise ValueError(
                f"decision {self.name(node.slot)!r} (intv) is outside any module constructor: "
                "a supernet cannot share it")
        if isinstance(node, _CFloat):
            d = self.space.float_decisions[node.slot]
            raise ValueError(
                f"decision {d.name!r} is a floatv, which a supernet cannot share: search it "
                "outside the supernet (e.g. nas.flows.nested_search)")
        if isinstance(node, _CDeferred):
            choice = _first_const_choice([list(node.args), node.kwargs])
            if choice is not None:
                if not in_ctor:
                    raise ValueError(
                        f"nothing to share: decision {self._choice_name(choice)!r} is an argument "
                        f"of the template's root constructor {_fn_name(node.fn)!r}, so every "
                        "architecture would be a separate model; make the choice among "
                        "sub-modules instead")
                return self.expand(node, choice)
            args = tuple(self.build(a, True) for a in node.args)
            kwargs = {k: self.build(v, True) for k, v in node.kwargs.items()}
            return node.fn(*args, **kwargs)
        if isinstance(node, dict):
            return {k: self.build(v, in_ctor) for k, v in node.items()}
        if isinstance(node, list):
            return [self.build(v, in_ctor) for v in node]
        if isinstance(node, tuple):
            return tuple(self.build(v, in_ctor) for v in node)
        return self.rngs(node.value) if isinstance(node.value, nnx.Rngs) else node.value

    def _choice_name(self, choice: Any) -> str:
        return self.name(choice.slot)

    def expand(self, node: _CDeferred, choice: Any) -> MixedOp:
        if isinstance(choice, _CInt):
            values = [_CConst(choice.low + j) for j in range(choice.count)]
        else:
            values = list(choice.candidates)
        if len(values) > MAX_VARIANTS:
            raise ValueError(
                f"decision {self._choice_name(choice)!r} has {len(values)} values; a supernet "
                f"builds one constructor per value and allows at most {MAX_VARIANTS}")
        variants = []
        for v in values:
            args = _replace(list(node.args), choice, v)
            kwargs = _replace(node.kwargs, choice, v)
            variants.append(self.build(_CDeferred(node.fn, tuple(args), kwargs), True))
        return self.mixed_op(choice.slot, variants)


_TRACER_ERRORS = (jax.errors.ConcretizationTypeError, jax.errors.TracerArrayConversionError,
                  jax.errors.TracerBoolConversionError, jax.errors.TracerIntegerConversionError,
                  jax.errors.UnexpectedTracerError)


def _holds_tracer(module: Any) -> bool:
    """True if a module of the graph keeps a traced array outside its ``nnx.Variable``s."""
    def traced(v: Any) -> bool:
        if isinstance(v, jax.core.Tracer):
            return True
        if isinstance(v, (list, tuple)):
            return any(traced(x) for x in v)
        if isinstance(v, dict):
            return any(traced(x) for x in v.values())
        return False

    return any(isinstance(node, nnx.Module) and any(
        traced(v) for v in vars(node).values() if not isinstance(v, nnx.Variable))
        for _, node in nnx.iter_graph(module))


_COMPILED_BUILDS: dict[str, Any] = {}
_MAX_COMPILED_BUILDS = 16


def _build(space: Space, seed: int | None, canonical_convs: bool) -> Any:
    """The template with mixed ops, its weights initialised in one compiled program.

    Built eagerly, every distinct weight shape compiles its own initializer (on the speed
    benchmark's NB-201 supernet, 12 shapes, 17 CPU-s); traced once under ``jax.jit`` at the
    step programs' compiler options, the whole build took 7 CPU-s, with the same weights;
    building the same template again reuses the compiled program. A constructor that
    cannot be traced (Python control flow on array values, arrays kept outside
    ``nnx.Variable``) is built eagerly instead."""
    graph = {}

    def eager():
        return _Builder(space, seed, canonical_convs).build(space._tree, False)

    def weights():
        net = eager()
        if _holds_tracer(net):
            raise jax.errors.UnexpectedTracerError("array kept outside an nnx.Variable")
        graph["def"], state = nnx.split(net)
        return state

    options = step_jit.compiler_options()
    try:
        lowered = jax.jit(weights, compiler_options=options).lower()
    except _TRACER_ERRORS:
        return eager()
    # each build traces a new function, which jax.jit would compile again: reuse the
    # executable of an identical program (same template and seed) instead
    # (the program's text without source locations, which name the caller's line)
    key = hashlib.sha256((lowered.as_text(debug_info=False)
                          + repr(sorted((options or {}).items()))).encode()).hexdigest()
    compiled = _COMPILED_BUILDS.pop(key, None) or lowered.compile()
    _COMPILED_BUILDS[key] = compiled  # most recent last
    while len(_COMPILED_BUILDS) > _MAX_COMPILED_BUILDS:
        del _COMPILED_BUILDS[next(iter(_COMPILED_BUILDS))]
    # the outputs in this trace's structure (an identical program may come from a template
    # whose attributes are named otherwise)
    state = jax.tree.unflatten(lowered.out_tree, jax.tree.leaves(compiled()))
    return nnx.merge(graph["def"], state)


def _count_params(module: nnx.Module) -> int:
    return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(nnx.state(module, nnx.Param)))


class Supernet(nnx.Module):
    """The supernet of ``space``: ``supernet(*inputs, selection=sel)``.

    Attributes: ``net`` (the user's model with mixed ops), ``alpha`` (``nas.ArchParam``,
    float32[n_int, max_choices]), ``space``; static per-slot masks ``param_free``
    (candidate has no ``nnx.Param``), ``is_none`` (candidate named none/zero) and
    ``op_slot`` (the slot mixes parameter-free and parametric candidates).

    ``canonical_convs`` (default True): in hard mode the chosen candidate's ``nnx.Conv``
    layers run :func:`nas.weight_sharing.canonical_conv.conv_general_dilated` (same value
    and gradient, fast inside ``lax.switch`` on XLA:CPU; no forward-mode ``jax.jvp``
    through a hard mixed op then); False runs them as written."""

    def __init__(self, space: Space, *, seed: int | None = None, alpha_scale: float = 1e-3,
                 none_names: tuple[str, ...] = NONE_NAMES, canonical_convs: bool = True):
        if not isinstance(space, Space):
            raise ValueError(f"Supernet needs a nas.Space, got {type(space).__name__}")
        if seed is not None and not (isinstance(seed, int) and seed >= 0):
            raise ValueError(f"Supernet.seed must be None or an int >= 0, got {seed!r}")
        if not isinstance(canonical_convs, bool):
            raise ValueError(
                f"Supernet.canonical_convs must be True or False, got {canonical_convs!r}")
        self.net = _build(space, seed, canonical_convs)
        mixed = [m for _, m in nnx.iter_graph(self.net) if isinstance(m, MixedOp)]
        if not mixed:
            raise ValueError(
                "nothing to share: the space has no decision among modules or functions "
                f"(decisions: {list(space.names)})")
        covered = {op.slot for op in mixed}
        self.space = space
        param_free = np.zeros((space.n_int, space.max_choices), bool)
        is_none = np.zeros((space.n_int, space.max_choices), bool)
        for op in mixed:
            for j, c in enumerate(op.candidates):
                param_free[op.slot, j] = _count_params(c) == 0
                is_none[op.slot, j] = _fn_name(c).lower() in none_names
        valid = sel_mod.valid_mask(space)
        mixes = (param_free & valid).any(1) & (~param_free & valid).any(1)
        self.param_free = tuple(map(tuple, param_free.tolist()))
        self.is_none = tuple(map(tuple, is_none.tolist()))
        self.op_slot = tuple(bool(m) and i in covered for i, m in enumerate(mixes))
        key = jax.random.key(0 if seed is None else seed)
        self.alpha = ArchParam(
            alpha_scale * jax.random.normal(key, (space.n_int, space.max_choices), jnp.float32))

    def __call__(self, *args, selection: sel_mod.Selection, **kwargs):
        with sel_mod.active(selection):
            return self.net(*args, **kwargs)
