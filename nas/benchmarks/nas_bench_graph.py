"""NAS-Bench-Graph (Qin et al., NeurIPS 2022) as a search space and JAX objective.

The benchmark's macro space: 4 GNN layers, each taking its input from one earlier node
(9 non-isomorphic wirings ``link``) and applying one of 9 operations; 26,206 unique
architectures after removing isomorphic duplicates (proteins: 5 operations, 2,021).
Results come from the precomputed "light" tables shipped in the ``nas-bench-graph``
wheel (validation and test accuracy, latency, parameters in millions), read with
``pickle`` + NumPy only: install it with ``pip install --no-deps nas-bench-graph`` (its
declared dependencies, torch/torch_geometric/nni, are only needed for its training code).

Every raw DNA (link x 4 ops, 59,049 of them) is mapped to the benchmark's canonical
architecture with the package's own ``Arch.valid_hash``; the all-``skip`` architecture,
absent from the benchmark, gets accuracy 0.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import itertools

import jax
import jax.numpy as jnp
import numpy as np

from nas.primitives import oneof
from nas.space import DNA, Space

LINKS = ((0, 0, 0, 0), (0, 0, 0, 1), (0, 0, 1, 1), (0, 0, 1, 2), (0, 0, 1, 3),
         (0, 1, 1, 1), (0, 1, 1, 2), (0, 1, 2, 2), (0, 1, 2, 3))
OPS = ("gat", "gcn", "gin", "cheb", "sage", "arma", "graph", "fc", "skip")
PROTEINS_OPS = ("gcn", "sage", "arma", "fc", "skip")
DATASETS = ("cora", "citeseer", "pubmed", "cs", "physics", "photo", "computers", "arxiv",
            "proteins")
METRICS = ("valid_perf", "perf", "latency", "para")


def _package():
    try:
        return importlib.import_module("nas_bench_graph")
    except ImportError as e:  # pragma: no cover - exercised when the extra is missing
        raise ImportError(
            "NAS-Bench-Graph needs the 'nas-bench-graph' package: "
            "pip install --no-deps nas-bench-graph") from e


def available() -> bool:
    """Whether the ``nas-bench-graph`` package (and its shipped tables) can be imported."""
    try:
        _package()
    except ImportError:
        return False
    return True


def ops_for(dataset: str) -> tuple[str, ...]:
    _check_dataset(dataset)
    return PROTEINS_OPS if dataset == "proteins" else OPS


def _check_dataset(dataset: str) -> None:
    if dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {DATASETS}, got {dataset!r}")


def space(dataset: str = "cora") -> Space:
    """The benchmark's space: ``link`` (one of 9 wirings) and ``op/0..3``."""
    ops = ops_for(dataset)
    return Space({"link": oneof(list(LINKS), name="link"),
                  "op": [oneof(list(ops)) for _ in range(4)]})


@functools.lru_cache(maxsize=2)
def _canonical_keys(ops: tuple[str, ...]) -> np.ndarray:
    """Benchmark key of every raw (link, op0..op3) in DNA order; -1 for all-skip."""
    arch_cls = _package().Arch
    keys = np.empty(len(LINKS) * len(ops) ** 4, np.int64)
    for i, (link, *chosen) in enumerate(itertools.product(LINKS, *[ops] * 4)):
        keys[i] = -1 if set(chosen) == {"skip"} else arch_cls(list(link), chosen).valid_hash()
    return keys


@dataclasses.dataclass(frozen=True, eq=False)
class Table:
    """Per raw DNA index: each metric as float32 (NaN where the benchmark has no entry)."""

    dataset: str
    ops: tuple[str, ...]
    metrics: dict  # name -> float32[num_raw]
    num_unique: int

    def index(self, dna: DNA) -> jax.Array:
        """Raw index of a DNA: link * n^4 + op0 * n^3 + ... + op3 (jittable)."""
        n = len(self.ops)
        weights = jnp.array([n ** 4, n ** 3, n ** 2, n, 1], jnp.int32)
        return jnp.sum(dna.ints * weights, axis=-1)

    def lookup(self, metric: str, dna: DNA) -> jax.Array:
        if metric not in self.metrics:
            raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
        return jnp.asarray(self.metrics[metric])[self.index(dna)]

    def objective(self, metric: str = "valid_perf"):
        """A JAX function DNA -> reward (missing architectures score 0)."""
        values = jnp.asarray(np.nan_to_num(self.metrics[metric], nan=0.0))

        def reward(dna: DNA) -> jax.Array:
            return values[self.index(dna)]

        return reward

    def best(self, metric: str = "valid_perf") -> tuple[float, float]:
        """(best value of ``metric``, test accuracy of that architecture)."""
        m = self.metrics[metric]
        i = int(np.nanargmax(m))
        return float(m[i]), float(self.metrics["perf"][i])


@functools.lru_cache(maxsize=9)
def load(dataset: str = "cora") -> Table:
    """Load a dataset's light table as a :class:`Table` (cached)."""
    _check_dataset(dataset)
    ops = ops_for(dataset)
    bench = _package().light_read(dataset)
    keys = _canonical_keys(ops)
    metrics = {}
    for m in METRICS:
        col = np.full(keys.shape, np.nan, np.float32)
        for i, k in enumerate(keys):
            rec = bench.get(int(k)) if k >= 0 else None
            if rec is not None:
                col[i] = float(rec[m])
        metrics[m] = col
    found = {int(k) for k in keys if k >= 0 and int(k) in bench}
    return Table(dataset, ops, metrics, len(found))


def describe(table: Table, dna: DNA) -> str:
    """``link=(0, 1, 2, 3) ops=[gcn, gat, skip, sage]`` for one DNA."""
    ints = np.asarray(dna.ints)
    return f"link={LINKS[ints[0]]} ops=[{', '.join(table.ops[i] for i in ints[1:])}]"
