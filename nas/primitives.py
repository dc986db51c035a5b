"""Symbolic primitives: the fixed choices of a model or config made searchable.

``oneof``, ``manyof``, ``floatv`` and ``intv`` build immutable placeholders that can sit
anywhere in a nested config (dicts, lists, tuples), inside the candidates of another
choice (conditional choices) or in the arguments of :func:`deferred` module constructors.
A :class:`nas.Space` compiles such a template into a fixed-length DNA spec.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any

from nas.checks import check_bool, check_callable, is_int, is_real

_SCALES = ("linear", "log")


def _check_name(name: str | None) -> None:
    """A decision name is global to the template ("width", "cell/edge_0"): '/'-separated
    non-empty parts."""
    if name is None:
        return
    if not isinstance(name, str) or not name or any(not p.strip() for p in name.split("/")):
        raise ValueError(
            f"name must be a non-empty string of '/'-separated non-empty parts (e.g. 'width' "
            f"or 'cell/edge_0'), got {name!r}")


@dataclasses.dataclass(frozen=True, eq=False)
class OneOf:
    """Pick exactly one of ``candidates`` (which may themselves hold choices)."""

    candidates: tuple
    name: str | None = None

    def __post_init__(self):
        _check_name(self.name)
        if len(self.candidates) < 1:
            raise ValueError("oneof.candidates must hold at least one candidate, got none")


@dataclasses.dataclass(frozen=True, eq=False)
class ManyOf:
    """Pick ``k`` of ``candidates``; ``distinct`` forbids repeats, ``sorted`` keeps the
    chosen indices in increasing order (a subset rather than a sequence)."""

    k: int
    candidates: tuple
    distinct: bool = True
    sorted: bool = False
    name: str | None = None

    def __post_init__(self):
        _check_name(self.name)
        if not is_int(self.k) or self.k < 1:
            raise ValueError(f"manyof.k must be an int >= 1, got {self.k!r}")
        check_bool("manyof.distinct", self.distinct)
        check_bool("manyof.sorted", self.sorted)
        if len(self.candidates) < 1:
            raise ValueError("manyof.candidates must hold at least one candidate, got none")
        if self.distinct and self.k > len(self.candidates):
            raise ValueError(
                f"manyof.k ({self.k}) must be <= len(candidates) ({len(self.candidates)}) "
                "when distinct=True"
            )


@dataclasses.dataclass(frozen=True, eq=False)
class Float:
    """A float in ``[low, high]`` on a ``linear`` or ``log`` scale."""

    low: float
    high: float
    scale: str = "linear"
    name: str | None = None

    def __post_init__(self):
        _check_name(self.name)
        if not isinstance(self.scale, str) or self.scale not in _SCALES:
            raise ValueError(f"floatv.scale must be one of {_SCALES}, got {self.scale!r}")
        if not (math.isfinite(self.low) and math.isfinite(self.high) and self.low < self.high):
            raise ValueError(
                f"floatv needs finite low < high, got low={self.low}, high={self.high}")
        if self.scale == "log" and self.low <= 0:
            raise ValueError(f"floatv.low must be > 0 for scale='log', got {self.low}")


@dataclasses.dataclass(frozen=True, eq=False)
class Int:
    """An integer in ``[low, high]`` (both inclusive)."""

    low: int
    high: int
    name: str | None = None

    def __post_init__(self):
        _check_name(self.name)
        if not (is_int(self.low) and is_int(self.high)) or self.low > self.high:
            raise ValueError(
                f"intv needs ints low <= high, got low={self.low!r}, high={self.high!r}")


@dataclasses.dataclass(frozen=True, eq=False)
class Deferred:
    """A call ``fn(*args, **kwargs)`` postponed until materialization, so its arguments
    may hold choices. Used to make Flax NNX modules (or any class) searchable."""

    fn: Callable
    args: tuple
    kwargs: dict
    name: str | None = None

    def __post_init__(self):
        _check_name(self.name)
        if not callable(self.fn):
            raise ValueError(f"deferred.fn must be callable, got {self.fn!r}")

    def __repr__(self) -> str:
        parts = [repr(a) for a in self.args] + [f"{k}={v!r}" for k, v in self.kwargs.items()]
        return f"{getattr(self.fn, '__name__', repr(self.fn))}({', '.join(parts)})"


Choice = OneOf | ManyOf | Float | Int


def oneof(candidates: Sequence[Any], *, name: str | None = None) -> OneOf:
    """One of ``candidates``; candidates may contain nested choices."""
    if isinstance(candidates, (str, bytes)) or not isinstance(candidates, Sequence):
        raise ValueError(f"oneof.candidates must be a list or tuple, got {type(candidates)}")
    return OneOf(tuple(candidates), name)


def manyof(
    k: int,
    candidates: Sequence[Any],
    *,
    distinct: bool = True,
    sorted: bool = False,  # noqa: A002 - mirrors the issue's signature
    name: str | None = None,
) -> ManyOf:
    """``k`` of ``candidates`` (a list of length ``k`` when materialized)."""
    if isinstance(candidates, (str, bytes)) or not isinstance(candidates, Sequence):
        raise ValueError(f"manyof.candidates must be a list or tuple, got {type(candidates)}")
    return ManyOf(int(k) if is_int(k) else k, tuple(candidates), distinct, sorted, name)


def floatv(low: float, high: float, scale: str = "linear", *, name: str | None = None) -> Float:
    """A float in ``[low, high]``; ``scale`` is ``'linear'`` or ``'log'``."""
    for field, v in (("low", low), ("high", high)):
        if not is_real(v):
            raise ValueError(f"floatv.{field} must be a number, got {v!r}")
    return Float(float(low), float(high), scale, name)


def intv(low: int, high: int, *, name: str | None = None) -> Int:
    """An integer in ``[low, high]`` inclusive."""
    for field, v in (("low", low), ("high", high)):
        if not is_int(v):
            raise ValueError(f"intv.{field} must be an int, got {v!r}")
    return Int(int(low), int(high), name)


def deferred(fn: Callable, *, name: str | None = None) -> Callable[..., Deferred]:
    """``deferred(nnx.Linear)(in_features=..., out_features=oneof([32, 64]), rngs=rngs)``
    records the call; it runs, with concrete arguments, when a DNA is materialized."""
    check_callable("deferred.fn", fn)
    _check_name(name)

    def make(*args, **kwargs) -> Deferred:
        return Deferred(fn, tuple(args), dict(kwargs), name)

    return make
