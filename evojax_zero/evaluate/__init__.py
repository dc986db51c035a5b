"""Layer 3: scoring programs on tasks. The pure-XLA interpreter (:mod:`.interpreter`), the
:class:`~evojax_zero.evaluate.evaluator.Evaluator` that picks a backend (XLA or the native
kernels in :mod:`evojax_zero.native`), and program analysis (:mod:`.analysis`)."""

from evojax_zero.evaluate.evaluator import EvalConfig, Evaluator, Trace

__all__ = ["EvalConfig", "Evaluator", "Trace"]
