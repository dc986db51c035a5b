"""The ``analog-nasbench`` CIFAR-10 table (all 15,625 NB-201 cells) as a tabular objective.

AnalogNAS-Bench (Benmeziane et al., 2025, arXiv:2506.18495) trained every NB-201 cell on
CIFAR-10 (200 epochs, SGD as NB-201) and ships, in the ``analog-nasbench`` wheel, a pickled
dict ``{6-tuple of op codes: record}`` with a ``baseline_accuracy`` (digital, in percent)
and accuracies under quantization and analog hardware noise. Its license is not stated, so
the table is read from the installed wheel at run time and never copied here:
``pip install analog-nasbench`` (the ``bench`` extra).

The key encoding is undocumented in the wheel; we inferred it from the table itself and
``tests/nas/test_benchmarks_analog.py`` checks the inference:

* op codes: 0 skip, 1 none, 2 conv3x3, 3 conv1x1, 4 avgpool3x3 (:data:`ANALOG_OPS`);
  code 1 is ``none`` because exactly the cells whose input cannot reach their output
  through non-1 edges sit at chance (10.0%); 0 is ``skip`` because cells that compute the
  identity through one or two 0-edges score the same; convs beat pooling;
* edge order: ``(0->1), (0->2), (0->3), (1->2), (1->3), (2->3)``, the upper triangle of the
  adjacency matrix row by row (:data:`ANALOG_EDGES`). The chance-accuracy pattern admits
  exactly two of the 720 orders, this one and its mirror image (the DAG reversed); the
  row-major one is NASLib's ``op_indices`` convention, which the authors' training
  script uses (``NasBench201SearchSpace.set_spec``).

:func:`to_analog` / :func:`from_analog` convert between that key and our
:mod:`nas.benchmarks.nb201` DNA (ops in NB-201's order, edges in NB-201's arch-string order).
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import os
import pickle

import jax
import jax.numpy as jnp
import numpy as np

from nas.benchmarks import nb201
from nas.benchmarks.ground_truth import NUM_CELLS, cell_index
from nas.space import DNA

ANALOG_OPS: tuple[str, ...] = ("skip", "none", "conv3x3", "conv1x1", "avgpool3x3")
"""Op name of each code in the table's keys."""
ANALOG_EDGES: tuple[tuple[int, int], ...] = ((1, 0), (2, 0), (3, 0), (2, 1), (3, 1), (3, 2))
"""``(to, from)`` of each key position."""
METRICS = ("baseline_accuracy", "ptq_accuracy", "qat_accuracy", "noisy_accuracy",
           "analog_accuracy")

# our op index -> analog code, and our edge e -> analog key position
_OP_TO_ANALOG = np.array([ANALOG_OPS.index(name) for name in nb201.OPS], np.int32)
_EDGE_TO_POS = np.array([ANALOG_EDGES.index(e) for e in nb201.EDGES], np.int32)


def data_path() -> str:
    """Path of the wheel's ``data.anb``, found without importing the package (its
    ``__init__`` needs ``pkg_resources``, which recent setuptools no longer ship)."""
    spec = importlib.util.find_spec("analognasbench")
    if spec is None or spec.origin is None:
        raise ImportError("the analog NB-201 table needs 'analog-nasbench': "
                          "pip install analog-nasbench (or the 'bench' extra)")
    path = os.path.join(os.path.dirname(spec.origin), "data.anb")
    if not os.path.exists(path):
        raise ImportError(f"analog-nasbench is installed but {path} is missing; reinstall it")
    return path


def available() -> bool:
    """Whether ``analog-nasbench`` is installed."""
    try:
        data_path()
    except ImportError:
        return False
    return True


class _Record:
    """Stand-in for the wheel's record classes: unpickling fills ``__dict__``."""


class _Unpickler(pickle.Unpickler):
    """Maps the wheel's own classes to :class:`_Record`, so the table loads without
    importing (or executing) the package; anything else is refused."""

    def find_class(self, module: str, name: str):
        if module == "analognasbench.data" and name in ("Architecture", "DriftMeasurement"):
            return _Record
        raise pickle.UnpicklingError(f"unexpected class {module}.{name} in data.anb")


def to_analog(ints) -> tuple[int, ...]:
    """The table key of one nb201 cell DNA."""
    nb201.genotype_of(ints)  # validates: 6 ints in [0, 5)
    ops = np.asarray(ints, np.int32)
    key = np.empty(len(ANALOG_EDGES), np.int32)
    key[_EDGE_TO_POS] = _OP_TO_ANALOG[ops]
    return tuple(int(v) for v in key)


def from_analog(key) -> tuple[int, ...]:
    """The nb201 cell DNA of one table key."""
    key = np.asarray(key, np.int32)
    if key.shape != (len(ANALOG_EDGES),) or key.min() < 0 or key.max() >= len(ANALOG_OPS):
        raise ValueError(f"an analog-nasbench key is 6 codes in [0, 5), got {key.tolist()}")
    inverse = np.argsort(_OP_TO_ANALOG)
    return tuple(int(v) for v in inverse[key[_EDGE_TO_POS]])


@functools.lru_cache(maxsize=1)
def raw_table() -> dict:
    """The wheel's pickled ``{key: record}`` dict; records expose the wheel's attributes."""
    with open(data_path(), "rb") as f:
        return _Unpickler(f).load()


@dataclasses.dataclass(frozen=True, eq=False)
class Table:
    """Each metric as float32[15625] in percent, indexed by :func:`cell_index` of our DNA."""

    metrics: dict

    def lookup(self, dna_ints, metric: str = "baseline_accuracy"):
        if metric not in self.metrics:
            raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
        return self.metrics[metric][cell_index(np.asarray(dna_ints))]

    def objective(self, metric: str = "baseline_accuracy"):
        """JAX ``DNA -> accuracy in [0, 1]`` over :func:`nb201.space` DNA (jittable)."""
        if metric not in self.metrics:
            raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
        values = jnp.asarray(self.metrics[metric] / 100.0)

        def reward(dna: DNA) -> jax.Array:
            return values[cell_index(dna.ints)]

        return reward

    def best(self, metric: str = "baseline_accuracy") -> tuple[tuple[int, ...], float]:
        """(DNA, value) of the best cell."""
        i = int(np.argmax(self.metrics[metric]))
        dna = np.unravel_index(i, (len(nb201.OPS),) * len(nb201.EDGES))
        return tuple(int(v) for v in dna), float(self.metrics[metric][i])


@functools.lru_cache(maxsize=1)
def load() -> Table:
    """Every cell's metrics, laid out in our DNA order (cached)."""
    raw = raw_table()
    if len(raw) != NUM_CELLS:
        raise ValueError(f"analog-nasbench table has {len(raw)} cells, expected {NUM_CELLS}")
    metrics = {m: np.full(NUM_CELLS, np.nan, np.float32) for m in METRICS}
    for key, rec in raw.items():
        i = int(cell_index(np.array(from_analog(key))))
        for m in METRICS:
            metrics[m][i] = float(getattr(rec, m))
    for m, col in metrics.items():
        if np.isnan(col).any():
            raise ValueError(f"analog-nasbench metric {m} misses {int(np.isnan(col).sum())} cells")
    return Table(metrics)
