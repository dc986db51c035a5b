"""AutoML-Zero in JAX: evolve whole ML algorithms from basic math on accelerators.

The package is layered; each layer imports only the ones below it (docs/architecture.md):

1. :mod:`evojax_zero.engine`: the evolution engine shared with ``nas`` (key tree,
   batched regularized evolution over any genome pytree).
2. :mod:`evojax_zero.program`: ops, fixed-length instruction tensors, tasks, fitness.
3. :mod:`evojax_zero.native` and :mod:`evojax_zero.evaluate`: scoring programs on tasks
   (native C++/CUDA kernels, the pure-XLA interpreter, the ``Evaluator``, analysis).
4. :mod:`evojax_zero.search`: mutation, initial programs, FEC, the generation loop.
5. :mod:`evojax_zero.experiment`: configs, presets, the experiment protocol, checkpoints, CLI.

Importing ``evojax_zero`` loads nothing heavy: the names below resolve on first use, so
``import evojax_zero.engine`` (as ``nas`` does) never loads the evaluator.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

# Public names -> the module that defines them (resolved lazily by __getattr__).
_LAZY = {
    "OP_SPECS": "evojax_zero.program.ops", "Kind": "evojax_zero.program.ops",
    "Op": "evojax_zero.program.ops",
    "Function": "evojax_zero.program.programs", "Program": "evojax_zero.program.programs",
    "ProgramSpec": "evojax_zero.program.programs", "empty": "evojax_zero.program.programs",
    "from_lists": "evojax_zero.program.programs", "from_text": "evojax_zero.program.programs",
    "stack": "evojax_zero.program.programs", "to_lists": "evojax_zero.program.programs",
    "to_text": "evojax_zero.program.programs",
    "EvalConfig": "evojax_zero.evaluate.evaluator", "Evaluator": "evojax_zero.evaluate.evaluator",
    "Trace": "evojax_zero.evaluate.evaluator",
    "EvolutionEngine": "evojax_zero.engine.regularized",
    "MutationConfig": "evojax_zero.search.mutation",
}
# Modules that moved in the layered layout: old import path -> new module. ``import
# evojax_zero.evaluator`` and ``from evojax_zero import tasks`` keep working.
_MOVED = {
    "ops": "evojax_zero.program.ops",
    "tasks": "evojax_zero.program.tasks",
    "interpreter": "evojax_zero.evaluate.interpreter",
    "evaluator": "evojax_zero.evaluate.evaluator",
    "analysis": "evojax_zero.evaluate.analysis",
    "keytree": "evojax_zero.engine.keytree",
    "mutation": "evojax_zero.search.mutation",
    "algorithms": "evojax_zero.search.initial",
    "fec": "evojax_zero.search.fec",
    "fec_device": "evojax_zero.search.fec.native",
    "distributed": "evojax_zero.search.distributed",
    "checkpoint": "evojax_zero.experiment.checkpoint",
    "cli": "evojax_zero.experiment.cli",
}
# Subpackages reachable as attributes (``evojax_zero.program.from_lists``).
_SUBPACKAGES = ("engine", "program", "native", "evaluate", "search", "experiment")

__all__ = sorted(_LAZY) + ["tasks", *_SUBPACKAGES]


class _MovedModuleFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Resolves the pre-layout module paths (``evojax_zero.evaluator``...) to their new
    modules, so code written against the flat layout keeps importing."""

    def find_spec(self, fullname, path, target=None):
        old = fullname.removeprefix(__name__ + ".")
        if fullname.startswith(__name__ + ".") and old in _MOVED:
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec):
        new = _MOVED[spec.name.removeprefix(__name__ + ".")]
        warnings.warn(f"{spec.name} moved to {new}; the old path is an alias",
                      DeprecationWarning, stacklevel=2)
        return importlib.import_module(new)

    def exec_module(self, module):
        pass


if not any(isinstance(f, _MovedModuleFinder) for f in sys.meta_path):
    sys.meta_path.append(_MovedModuleFinder())


def __getattr__(name: str):
    if name == "RegularizedEvolution":  # the engine's name before the layered layout
        return importlib.import_module("evojax_zero.engine.regularized").EvolutionEngine
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if name in _SUBPACKAGES:
        return importlib.import_module(f"{__name__}.{name}")
    if name in _MOVED:
        return importlib.import_module(_MOVED[name])
    raise AttributeError(f"module 'evojax_zero' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__) | set(_MOVED))
