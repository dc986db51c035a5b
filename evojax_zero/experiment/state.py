"""The typed state of a run of experiments (:class:`RunState`): everything a checkpoint
holds and a resumed run needs, and nothing else."""

from __future__ import annotations

import dataclasses

import numpy as np

from evojax_zero.search.loop import SearchCounters, SearchState


@dataclasses.dataclass
class RunState:
    """Where a run of experiments stands.

    ``experiment`` is the index of the running experiment (``in_experiment``: ``search``,
    ``cache`` and ``counters`` are its live state) or of the next one. ``counters`` are the
    running (or last finished) experiment's, as one :class:`SearchCounters`; ``total_*``
    sum the finished experiments. ``done``: no experiment is left to run (solved or
    ``max_experiments`` reached); ``result`` then holds the final outputs once computed.
    """

    experiment: int = 0
    in_experiment: bool = False
    done: bool = False
    counters: SearchCounters = dataclasses.field(default_factory=SearchCounters)
    best_lists: dict | None = None
    best_select: float = -1.0
    best_search: float = 0.0
    history: list = dataclasses.field(default_factory=list)  # [individuals, s, mean, best]
    total_individuals: int = 0
    total_train_steps: int = 0
    seconds: float = 0.0
    solved_seconds: float | None = None
    last_population_fitness: list | None = None
    result: dict | None = None
    cpu_seconds: float | None = None  # CPU-s of the processes that ran it (all threads)
    solved_cpu_seconds: float | None = None
    hurdle_counters: dict | None = None  # the running (or last) experiment's HurdleCounters
    hurdle_totals: dict | None = None  # HurdleCounters summed over finished experiments
    island_stats: list | None = None  # last finished experiment: best/mean of each island
    search: SearchState | None = None  # device arrays (checkpoint: orbax PyTree)
    cache: dict[str, np.ndarray] | None = None  # FEC cache arrays (checkpoint: orbax PyTree)

    _ARRAYS = ("search", "cache")
    _OPTIONAL = ("cpu_seconds", "solved_cpu_seconds", "hurdle_counters", "hurdle_totals",
                 "island_stats")

    def meta(self) -> dict:
        """The JSON part (everything but the arrays)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
               if f.name not in self._ARRAYS}
        out["counters"] = self.counters.to_dict()
        return out

    @classmethod
    def from_meta(cls, meta: dict, search: SearchState | None = None,
                  cache: dict | None = None) -> RunState:
        names = {f.name for f in dataclasses.fields(cls)} - set(cls._ARRAYS)
        meta = {**{k: None for k in cls._OPTIONAL}, **meta}  # steps written before them
        if set(meta) != names:
            raise ValueError(f"run state fields differ: missing {sorted(names - set(meta))}, "
                             f"unknown {sorted(set(meta) - names)}")
        fields = dict(meta, counters=SearchCounters.from_dict(meta["counters"]))
        return cls(**fields, search=search, cache=cache)
