"""The evolution engine both halves share: batched regularized evolution over any genome
pytree (:mod:`.regularized`) and the counter-based key tree behind reproducible draws
(:mod:`.keytree`). Imports nothing of the evaluator or of ``nas``."""

from evojax_zero.engine.regularized import EvolutionEngine, EvolutionState, Genome, MutateFn

__all__ = ["EvolutionState", "Genome", "MutateFn", "EvolutionEngine"]
