"""What an experiment is: which tasks to build (:class:`TaskSpec`) and the search plus
the reference's experiment protocol (:class:`ExperimentConfig`)."""

from __future__ import annotations

import dataclasses

import numpy as np

from evojax_zero.program import tasks
from evojax_zero.search.loop import SearchConfig

DIGITS_HELD_OUT = ((0, 5), (0, 9), (1, 8), (2, 9), (3, 5), (3, 6), (3, 8), (4, 6), (8, 9))
TASK_KINDS = ("linear", "teacher", "digits")


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """How to build a batch of tasks (seeds None = the reference's defaults)."""

    kind: str = "linear"
    num_tasks: int = 10
    num_train: int = 100
    num_valid: int = 100
    feature_size: int = 4
    param_seeds: tuple | None = None
    data_seeds: tuple | None = None
    held_out: bool = False  # digits: use the held-out pairs (else the others)

    def __post_init__(self):
        if self.kind not in TASK_KINDS:
            raise ValueError(f"TaskSpec.kind must be one of {TASK_KINDS}, got {self.kind!r}")

    def build(self, rng: np.random.Generator | None = None) -> tasks.Tasks:
        """Tasks; with ``rng`` the seeds are redrawn (``--randomize_task_seeds``)."""
        ps, ds = self.param_seeds, self.data_seeds
        if rng is not None:
            ps = tuple(int(s) for s in rng.integers(1, 2**31 - 1, self.num_tasks))
            ds = tuple(int(s) for s in rng.integers(1, 2**31 - 1, self.num_tasks))
        if self.kind == "linear":
            return tasks.linear_regression(self.num_tasks, self.feature_size, self.num_train,
                                           self.num_valid, 1, ps, ds)
        if self.kind == "teacher":
            return tasks.teacher_regression(self.num_tasks, self.feature_size, self.num_train,
                                            self.num_valid, 1, ps, ds)
        pairs, seeds = self.digit_pairs(ds)
        return tasks.projected_binary(pairs, seeds, self.feature_size)

    def digit_pairs(self, data_seeds=None) -> tuple[list, list]:
        """digits: the (pos, neg) pair and split/projection seed of every task."""
        ds = self.data_seeds if data_seeds is None else data_seeds
        pairs_pool = [p for p in tasks.all_digit_pairs()
                      if (tuple(sorted(p)) in DIGITS_HELD_OUT) == self.held_out]
        seeds = tasks.task_seeds(self.num_tasks, ds, (0,))
        pick = np.random.default_rng(seeds[0] + 856572777)
        pairs = [pairs_pool[i] for i in pick.integers(0, len(pairs_pool), self.num_tasks)]
        return pairs, [s % 100 for s in seeds]

    def build_with_test(self):
        """digits: ``(tasks, [(test_x, test_y), ...])`` with the held-back test split."""
        if self.kind != "digits":
            raise ValueError("build_with_test is for digits tasks")
        pairs, seeds = self.digit_pairs()
        return tasks.projected_binary(pairs, seeds, self.feature_size, return_test=True)


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    """A search plus the reference's experiment protocol."""

    name: str
    search: SearchConfig
    search_tasks: TaskSpec
    select_tasks: TaskSpec
    final_tasks: TaskSpec
    max_train_steps: int = 200_000_000
    sufficient_fitness: float = 0.9999
    max_experiments: int = 1
    randomize_task_seeds: bool = False
    progress_every: int = 10000

    def __post_init__(self):
        for n in ("max_train_steps", "max_experiments", "progress_every"):
            v = getattr(self, n)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"ExperimentConfig.{n} must be an int >= 0, got {v!r}")
