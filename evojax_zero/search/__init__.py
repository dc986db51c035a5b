"""Layer 4: regularized-evolution search over programs. Mutation (:mod:`.mutation`),
initial programs (:mod:`.initial`), the functional equivalence cache (:mod:`.fec`: one
interface, host and native implementations), device placement (:mod:`.distributed`) and
the generation loop (:mod:`.loop`)."""

from evojax_zero.search.loop import (
    FEC_SEED,
    Search,
    SearchConfig,
    SearchCounters,
    SearchState,
    progress_line,
)

__all__ = ["FEC_SEED", "Search", "SearchConfig", "SearchCounters", "SearchState",
           "progress_line"]
