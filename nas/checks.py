"""Argument checks shared by the public ``nas`` API: each raises a ``ValueError`` that
names the field, the allowed values and, where there is one, the fix."""

from __future__ import annotations

import math
from typing import Any

import jax
import numpy as np


def is_int(v: Any) -> bool:
    """A Python or NumPy integer, not a bool."""
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def is_real(v: Any) -> bool:
    """A Python or NumPy real number (or a 0-d real array), not a bool."""
    if isinstance(v, (bool, np.bool_)):
        return False
    if isinstance(v, (int, float, np.integer, np.floating)):
        return True
    return (isinstance(v, (np.ndarray, jax.Array)) and np.ndim(v) == 0
            and np.issubdtype(np.asarray(v).dtype, np.number)
            and not np.issubdtype(np.asarray(v).dtype, np.complexfloating))


def check_int(field: str, v: Any, low: int = 0) -> int:
    if not is_int(v) or v < low:
        raise ValueError(f"{field} must be an int >= {low}, got {v!r}")
    return int(v)


def check_bool(field: str, v: Any) -> bool:
    if not isinstance(v, (bool, np.bool_)):
        raise ValueError(f"{field} must be True or False, got {v!r}")
    return bool(v)


def check_real(field: str, v: Any, *, finite: bool = True) -> float:
    if not is_real(v) or (finite and not math.isfinite(float(v))):
        kind = "a finite number" if finite else "a number"
        raise ValueError(f"{field} must be {kind}, got {v!r}")
    return float(v)


def check_callable(field: str, v: Any) -> None:
    if not callable(v):
        raise ValueError(f"{field} must be callable, got {type(v).__name__} {v!r:.60}")


def check_key(field: str, key: Any) -> None:
    """A typed PRNG key (``jax.random.key(seed)``) or a raw ``uint32[2]`` key; works on
    tracers, so jitted methods can call it."""
    ok = False
    if isinstance(key, jax.Array):
        if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
            ok = key.ndim == 0
        else:
            ok = key.dtype == np.uint32 and key.shape == (2,)
    if not ok:
        shape = getattr(key, "shape", None)
        raise ValueError(
            f"{field} must be one PRNG key such as jax.random.key(0), got "
            f"{type(key).__name__}{'' if shape is None else f' of shape {shape}'}: "
            "pass jax.random.key(seed), not the seed itself")
