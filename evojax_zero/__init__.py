"""AutoML-Zero in JAX: evolve whole ML algorithms from basic math on accelerators."""

from evojax_zero.ops import OP_SPECS, Kind, Op
from evojax_zero.program import (
    Function,
    Program,
    ProgramSpec,
    from_lists,
    from_text,
    to_lists,
    to_text,
)

__all__ = [
    "OP_SPECS", "Kind", "Op", "Function", "Program", "ProgramSpec",
    "from_lists", "from_text", "to_lists", "to_text",
]
