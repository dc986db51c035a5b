"""Provenance: the deferred call (fn, args, kwargs) each materialized object was built by."""

from __future__ import annotations

import weakref
from typing import Any

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
