"""How the weight-sharing algorithms jit their steps: ``jax.jit`` with per-program XLA
options, never process-wide flags.

On CPU the steps compile with ``xla_backend_optimization_level=1`` (LLVM's -O1 instead of
the default -O2/-O3). A step program holds hundreds of small fusions, each compiled by
LLVM on its own, so the optimisation level sets most of the first step's cost; at -O1 the
NB-201 speed benchmark's GDAS step compiled in 18 instead of 25 CPU-s and DARTS first
order in 30 instead of 35, and both ran as fast or faster (51 vs 56 and 144 vs 155 ms per
step, same process, 2026-12-01). -O0 compiles faster still but runs 4x slower.

``CPU_COMPILER_OPTIONS`` is read when an algorithm is built: change it (or set it to
``{}``) before building one to use other options. Other backends get no options.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax

CPU_COMPILER_OPTIONS: dict[str, Any] = {"xla_backend_optimization_level": 1}


def compiler_options() -> dict[str, Any] | None:
    """The XLA options for a step program on the default backend (None: XLA's own)."""
    if jax.default_backend() == "cpu" and CPU_COMPILER_OPTIONS:
        return dict(CPU_COMPILER_OPTIONS)
    return None


def jit(fn: Callable, **kwargs: Any) -> Callable:
    """``jax.jit(fn, **kwargs)`` with :func:`compiler_options`."""
    return jax.jit(fn, compiler_options=compiler_options(), **kwargs)
