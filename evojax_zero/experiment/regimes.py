"""The task types of the paper's adaptation experiments (Real et al. 2020, Sec. 4.3).

A :class:`RegimeTaskSpec` is a digits-kind :class:`~evojax_zero.experiment.config.TaskSpec`
(pairs of classes, held-out or not, seeds) with three more fields: the ``dataset``
(``experiment.datasets``), how many training examples a task keeps (``num_train``; 0 = the
whole train split) and for how many epochs it trains (``num_epochs``). :data:`REGIMES` holds
the paper's settings and ours (scaled to a CPU budget; docs/adaptation.md says how).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from evojax_zero.experiment import datasets
from evojax_zero.experiment.config import TaskSpec
from evojax_zero.program import tasks as tasks_lib


@dataclasses.dataclass(frozen=True)
class Regime:
    """One task type: ours (``num_train`` examples x ``num_epochs``) and the paper's."""

    name: str
    num_train: int  # 0 = the whole train split
    num_epochs: int
    paper: str  # the paper's setting, in words
    expected: str  # the technique the paper reports for it


REGIMES = {
    "adaptation_control": Regime(
        "adaptation_control", 0, 1, "the normal regime: the whole train split, 1 epoch",
        "none (the control the regimes are contrasted with)"),
    "few_examples": Regime(
        "few_examples", 8, 100, "80 training examples, 100 epochs (8000 steps)",
        "noise injection (noisy ReLU, dropout-like)"),
    "fast_training": Regime(
        "fast_training", 80, 10, "800 training examples, 10 epochs (8000 steps)",
        "learning-rate decay"),
    "multiclass": Regime(
        "multiclass", 800, 1, "all ten CIFAR-10 classes (vs. binary pairs)",
        "the weight matrix's (transformed) mean used as the learning rate"),
}


@dataclasses.dataclass(frozen=True)
class RegimeTaskSpec(TaskSpec):
    """Projected binary tasks of a regime: ``kind`` is always ``"digits"`` (pairs of the ten
    classes, ``held_out`` picks the 9 held-out pairs or the other 36) on ``dataset``, keeping
    ``num_train`` training examples (0 = all) for ``num_epochs`` epochs."""

    kind: str = "digits"
    num_train: int = 0
    num_valid: int = 0
    feature_size: int = 16
    dataset: str = "digits"
    num_epochs: int = 1

    def __post_init__(self):
        super().__post_init__()
        if self.kind != "digits":
            raise ValueError(f"RegimeTaskSpec.kind must be 'digits' (pairs of classes), got "
                             f"{self.kind!r}")
        datasets.check_dataset(self.dataset)
        v = self.num_epochs
        if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 1:
            raise ValueError(f"RegimeTaskSpec.num_epochs must be an int >= 1, got {v!r}")
        if self.num_valid != 0:
            raise ValueError("RegimeTaskSpec.num_valid must be 0 (the valid split comes from "
                             "the dataset)")

    def build(self, rng: np.random.Generator | None = None):
        """Tasks; with ``rng`` the seeds are redrawn (``--randomize_task_seeds``)."""
        ds = None
        if rng is not None:
            ds = tuple(int(s) for s in rng.integers(1, 2**31 - 1, self.num_tasks))
        pairs, seeds = self.digit_pairs(ds)
        return datasets.projected_binary(self.dataset, pairs, seeds, self.feature_size,
                                         self.num_train, self.num_epochs)

    def build_with_test(self):
        """``(tasks, [(test_x, test_y), ...])`` with the held-back test split."""
        pairs, seeds = self.digit_pairs()
        return datasets.projected_binary(self.dataset, pairs, seeds, self.feature_size,
                                         self.num_train, self.num_epochs, return_test=True)


@dataclasses.dataclass(frozen=True)
class MulticlassTaskSpec(RegimeTaskSpec):
    """Ten-class tasks (``program.tasks.projected_multiclass``), one per data seed (its split
    and projection), on ``dataset``, keeping a stratified ``num_train`` of each task's train
    split (0 = all) for ``num_epochs`` epochs. ``kind`` is ``"digits"``; ``held_out`` does
    not apply (every task has all classes; tasks differ by split and projection)."""

    def __post_init__(self):
        super().__post_init__()
        if self.dataset not in tasks_lib.MULTICLASS_DATASETS:
            raise ValueError(f"MulticlassTaskSpec.dataset must be one of "
                             f"{tasks_lib.MULTICLASS_DATASETS}, got {self.dataset!r}")

    def seeds(self, data_seeds=None) -> list[int]:
        ds = self.data_seeds if data_seeds is None else data_seeds
        return [s % 2**31 for s in tasks_lib.task_seeds(self.num_tasks, ds, (0,))]

    def build(self, rng: np.random.Generator | None = None):
        ds = None
        if rng is not None:
            ds = tuple(int(s) for s in rng.integers(1, 2**31 - 1, self.num_tasks))
        return self._build(self.seeds(ds), False)

    def build_with_test(self):
        return self._build(self.seeds(), True)

    def _build(self, seeds, return_test):
        t, tests = tasks_lib.projected_multiclass(seeds, self.feature_size, self.dataset,
                                                  return_test=True)
        n = self.num_train or t.num_train
        if n > t.num_train:
            raise ValueError(f"num_train={n} but the train split of {self.dataset} has "
                             f"{t.num_train} examples; fix: num_train <= {t.num_train}")
        xs, ys = [], []
        for i, seed in enumerate(seeds):
            x, y = np.asarray(t.train_x[i], np.float64), np.asarray(t.train_y[i], np.float64)
            if n < len(y):
                from sklearn.model_selection import train_test_split  # 1.6 s import: lazy

                x, _, y, _ = train_test_split(x, y, train_size=n, stratify=y,
                                              random_state=seed)
            xs.append(x)
            ys.append(y)
        orders = np.stack([tasks_lib.epoch_orders(s, n, self.num_epochs) for s in seeds])
        out = tasks_lib.from_arrays(np.stack(xs), np.stack(ys), np.asarray(t.valid_x, np.float64),
                                    np.asarray(t.valid_y, np.float64),
                                    eval_type=tasks_lib.MULTICLASS_ACCURACY,
                                    num_classes=t.num_classes, epoch_order=orders)
        return (out, tests) if return_test else out
