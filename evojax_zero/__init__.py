"""AutoML-Zero in JAX: evolve whole ML algorithms from basic math on accelerators.

Main entry points:

* programs: :class:`ProgramSpec`, :func:`from_lists`, :func:`to_text`, :func:`from_text`
* tasks: :mod:`evojax_zero.tasks` (linear, teacher net, digits pairs, user arrays)
* scoring: :class:`Evaluator` with :class:`EvalConfig`
* search: :mod:`evojax_zero.experiment` (``preset``, ``run``), :class:`MutationConfig`,
  :class:`RegularizedEvolution`
"""

from evojax_zero import tasks
from evojax_zero.engine import RegularizedEvolution
from evojax_zero.evaluator import EvalConfig, Evaluator, Trace
from evojax_zero.ops import OP_SPECS, Kind, Op
from evojax_zero.program import (
    Function,
    Program,
    ProgramSpec,
    empty,
    from_lists,
    from_text,
    stack,
    to_lists,
    to_text,
)

__all__ = [
    "OP_SPECS", "Kind", "Op", "Function", "Program", "ProgramSpec", "empty", "from_lists",
    "from_text", "stack", "to_lists", "to_text", "tasks", "EvalConfig", "Evaluator", "Trace",
    "RegularizedEvolution",
]


def __getattr__(name):  # heavier modules load on first use
    if name == "MutationConfig":
        from evojax_zero.mutation import MutationConfig

        return MutationConfig
    if name in ("experiment", "analysis", "mutation", "algorithms", "search", "fec"):
        import importlib

        return importlib.import_module(f"evojax_zero.{name}")
    raise AttributeError(f"module 'evojax_zero' has no attribute {name!r}")
