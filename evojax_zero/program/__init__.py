"""Layer 2 (above the engine): what a program is. Ops (the reference's 65 ids),
fixed-length instruction tensors (:mod:`.programs`), tasks and their data (:mod:`.tasks`),
and the fitness squash (:mod:`.fitness`). Imports nothing above it."""

from evojax_zero.program.programs import (
    DATA_FIELDS_USED,
    FUNCTION_NAMES,
    Function,
    Program,
    ProgramSpec,
    empty,
    float_dtype,
    from_lists,
    from_text,
    function_from_lists,
    index,
    instruction_to_text,
    parse_instruction,
    stack,
    to_lists,
    to_text,
    unstack,
    validate,
)

__all__ = [
    "DATA_FIELDS_USED", "FUNCTION_NAMES", "Function", "Program", "ProgramSpec", "empty",
    "float_dtype", "from_lists", "from_text", "function_from_lists", "index",
    "instruction_to_text", "parse_instruction", "stack", "to_lists", "to_text", "unstack",
    "validate",
]
