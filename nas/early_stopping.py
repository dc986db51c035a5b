"""Early-stopping policies for trials that report intermediate measurements.

A policy sees ``(trial_id, step, value)`` reports (higher is better) and answers whether
the trial should stop now. Policies are plain Python: they gate training loops.
"""

from __future__ import annotations

import bisect
import dataclasses
import math
from collections.abc import Mapping

from nas.checks import check_int, is_int, is_real


@dataclasses.dataclass
class StopByValue:
    """Stop a trial whose value at ``step`` is below ``thresholds[step]``.

    A report at a step without a threshold uses the latest threshold at an earlier step."""

    thresholds: Mapping[int, float]

    def __post_init__(self):
        if not isinstance(self.thresholds, Mapping) or not self.thresholds:
            raise ValueError("StopByValue.thresholds must be a dict mapping at least one step "
                             f"to a value, e.g. {{5: 0.5}}; got {self.thresholds!r}")
        if any(not is_int(s) or s < 0 for s in self.thresholds):
            raise ValueError(
                f"StopByValue.thresholds keys must be ints >= 0, got {self.thresholds}")
        for s, v in self.thresholds.items():
            if not is_real(v) or math.isnan(v):
                raise ValueError(f"StopByValue.thresholds[{s}] must be a number, got {v!r}")
        self._steps = sorted(self.thresholds)

    def should_stop(self, trial_id: int, step: int, value: float) -> bool:
        i = bisect.bisect_right(self._steps, step) - 1
        return i >= 0 and value < self.thresholds[self._steps[i]]


@dataclasses.dataclass
class StopByRank:
    """Stop a trial whose value at ``step`` does not rank in the top ``max_rank``
    among all values reported at that step (this trial included).

    ``max_rank`` is a fraction in (0, 1) (top fraction) or an int >= 1 (top-k). No
    trial is stopped until ``min_reports`` values exist at that step."""

    max_rank: Mapping[int, float | int]
    min_reports: int = 5

    def __post_init__(self):
        if not isinstance(self.max_rank, Mapping) or not self.max_rank:
            raise ValueError("StopByRank.max_rank must be a dict mapping at least one step to "
                             f"a rank, e.g. {{5: 0.5}}; got {self.max_rank!r}")
        for s, r in self.max_rank.items():
            if not is_int(s) or s < 0:
                raise ValueError(f"StopByRank.max_rank keys must be ints >= 0, got {s!r}")
            ok = (is_int(r) and r >= 1) or (isinstance(r, float) and 0 < r < 1)
            if not ok:
                raise ValueError(
                    f"StopByRank.max_rank[{s}] must be an int >= 1 or a float in (0, 1), got {r!r}")
        check_int("StopByRank.min_reports", self.min_reports, 1)
        self._history: dict[int, dict[int, float]] = {}

    def should_stop(self, trial_id: int, step: int, value: float) -> bool:
        seen = self._history.setdefault(step, {})
        seen[trial_id] = value
        if step not in self.max_rank or len(seen) < self.min_reports:
            return False
        rank = 1 + sum(v > value for t, v in seen.items() if t != trial_id)
        r = self.max_rank[step]
        allowed = r if isinstance(r, int) else max(1, int(r * len(seen)))
        return rank > allowed
