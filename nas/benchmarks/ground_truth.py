"""Stand-alone training of many NB-201 cells in one compiled computation, and the table.

:class:`SwitchNet` is :class:`nb201.NB201Net` with every candidate op built on every edge;
its forward takes the cell DNA (6 ints) and runs only the chosen op per edge with
``lax.switch``. Unchosen ops get zero gradients, so with a fixed DNA it trains exactly the
stand-alone network of that DNA (same layers, same protocol; only the initial weights come
from a different stream of the same seed). One parameter layout for every architecture
lets :func:`train_architectures` run ``lax.map`` over architectures and ``vmap`` over seeds:

* over seeds the DNA is shared, so ``lax.switch`` stays a real branch (only the chosen op
  is computed) while the seeds share every batched conv;
* ``chunk=k`` vmaps ``k`` architectures at a time as well (``lax.map(batch_size=k)``):
  then the switch turns into a select that computes every op (about 5x the arithmetic of
  one cell), which pays off only on an accelerator.

Protocol (NB-201's, shortened): SGD with Nesterov momentum 0.9, learning rate 0.1 with
cosine decay to 0, weight decay 5e-4 on every parameter, cross-entropy, fixed number of
epochs over a shuffled training set; accuracy on the valid and test splits at the end.

:class:`Table` is the stored result (``tables/*.json``, see ``benchmarks/
nb201_ground_truth.py``): per architecture its DNA, accuracies per seed and parameter count.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from scipy import stats

from nas.benchmarks import data as bdata
from nas.benchmarks import nb201
from nas.benchmarks.data import ImageData
from nas.space import DNA

TABLES_DIR = os.path.join(os.path.dirname(__file__), "tables")
DEFAULT_TABLE = "nb201_fashion_mnist.json"
NUM_CELLS = len(nb201.OPS) ** len(nb201.EDGES)


# ---------------------------------------------------------------- the switch model
class SwitchCell(nnx.Module):
    """A cell holding all 5 candidate ops on each edge; ``ops[e]`` picks edge e's op."""

    def __init__(self, channels: int, *, rngs: nnx.Rngs):
        self.edges = nnx.List([nnx.List([cls(channels, rngs=rngs) for cls in nb201.OP_CLASSES])
                               for _ in nb201.EDGES])

    def __call__(self, x: jax.Array, ops: jax.Array) -> jax.Array:
        nodes = [x]
        for t in range(1, nb201.NUM_NODES):
            total = None
            for e, (to, f) in enumerate(nb201.EDGES):
                if to != t:
                    continue
                y = jax.lax.switch(ops[e], [op.__call__ for op in self.edges[e]], nodes[f])
                total = y if total is None else total + y
            nodes.append(total)
        return nodes[-1]


class SwitchNet(nnx.Module):
    """:class:`nb201.NB201Net` whose cells are :class:`SwitchCell`; call ``(x, ops)``."""

    def __init__(self, config: nb201.NetConfig, *, rngs: nnx.Rngs):
        c = config.channels
        self.stem = nnx.Conv(config.in_channels, c, (3, 3), padding="SAME", use_bias=False,
                             rngs=rngs)
        self.stem_norm = nb201.BatchStatNorm(c)
        blocks = []
        for stage in range(config.num_stages):
            if stage > 0:
                blocks.append(nb201.ResidualReduction(c, 2 * c, rngs=rngs))
                c *= 2
            blocks.extend(SwitchCell(c, rngs=rngs) for _ in range(config.cells_per_stage))
        self.blocks = nnx.List(blocks)
        self.head_norm = nb201.BatchStatNorm(c)
        self.classifier = nnx.Linear(c, config.num_classes, rngs=rngs)

    def __call__(self, x: jax.Array, ops: jax.Array) -> jax.Array:
        x = self.stem_norm(self.stem(x))
        for block in self.blocks:
            x = block(x, ops) if isinstance(block, SwitchCell) else block(x)
        x = nnx.relu(self.head_norm(x))
        return self.classifier(jnp.mean(x, axis=(1, 2)))


def copy_into_standalone(switch: SwitchNet, ops: Sequence[int], model: nb201.NB201Net) -> None:
    """Copy the weights ``switch`` uses for ``ops`` into a stand-alone ``model`` of that
    genotype (same config); the two then compute the same function."""
    model.stem, model.stem_norm = switch.stem, switch.stem_norm
    model.head_norm, model.classifier = switch.head_norm, switch.classifier
    for i, block in enumerate(switch.blocks):
        if isinstance(block, SwitchCell):
            for e, op in enumerate(ops):
                model.blocks[i].edges[e] = block.edges[e][int(op)]
        else:
            model.blocks[i] = block


# ----------------------------------------------------------------------- training
@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """NB-201's optimizer (SGD, Nesterov 0.9, lr 0.1 cosine, wd 5e-4), fewer epochs."""

    epochs: int = 4
    batch_size: int = 128
    learning_rate: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    eval_batch_size: int = 1000

    def __post_init__(self):
        for name in ("epochs", "batch_size", "eval_batch_size"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"TrainConfig.{name} must be an int >= 1, got {v!r}")
        if not self.learning_rate > 0:
            raise ValueError(f"TrainConfig.learning_rate must be > 0, got {self.learning_rate}")


def optimizer(train: TrainConfig, total_steps: int) -> optax.GradientTransformation:
    """The protocol's optimizer: SGD with Nesterov momentum, weight decay and cosine decay."""
    schedule = optax.cosine_decay_schedule(train.learning_rate, max(total_steps, 1))
    return optax.chain(optax.add_decayed_weights(train.weight_decay),
                       optax.sgd(schedule, momentum=train.momentum, nesterov=True))


def _accuracy(model: SwitchNet, ops, x, y, batch: int) -> jax.Array:
    """Accuracy in fixed batches (batch statistics: the batch is part of the protocol)."""
    n = x.shape[0]
    full = n // batch
    correct = jnp.zeros((), jnp.int32)
    if full:
        xb = x[: full * batch].reshape(full, batch, *x.shape[1:])
        yb = y[: full * batch].reshape(full, batch)
        hits = jax.lax.map(lambda b: jnp.sum(jnp.argmax(model(b[0], ops), -1) == b[1]),
                           (xb, yb))
        correct += jnp.sum(hits)
    if n % batch:
        correct += jnp.sum(jnp.argmax(model(x[full * batch:], ops), -1) == y[full * batch:])
    return correct / n


def _train_one(net: nb201.NetConfig, train: TrainConfig, ops, seed, x_tr, y_tr, x_va, y_va,
               x_te, y_te) -> dict[str, jax.Array]:
    key = jax.random.key(seed)
    k_init, k_data = jax.random.split(key)
    graphdef, params = nnx.split(SwitchNet(net, rngs=nnx.Rngs(k_init)))
    steps = x_tr.shape[0] // train.batch_size
    opt = optimizer(train, steps * train.epochs)

    def loss_fn(p, xb, yb):
        logits = nnx.merge(graphdef, p)(xb, ops)
        return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()

    def step(carry, idx):
        p, s = carry
        loss, grads = jax.value_and_grad(loss_fn)(p, x_tr[idx], y_tr[idx])
        updates, s = opt.update(grads, s, p)
        return (optax.apply_updates(p, updates), s), loss

    def epoch(carry, k):
        perm = jax.random.permutation(k, x_tr.shape[0])[: steps * train.batch_size]
        carry, losses = jax.lax.scan(step, carry, perm.reshape(steps, train.batch_size))
        return carry, jnp.mean(losses)

    (params, _), losses = jax.lax.scan(epoch, (params, opt.init(params)),
                                       jax.random.split(k_data, train.epochs))
    model = nnx.merge(graphdef, params)
    eb = train.eval_batch_size
    return {"train_loss": losses[-1],
            "valid_acc": _accuracy(model, ops, x_va, y_va, eb),
            "test_acc": _accuracy(model, ops, x_te, y_te, eb)}


@functools.lru_cache(maxsize=8)
def _population_fn(net: nb201.NetConfig, train: TrainConfig, chunk: int | None):
    def per_arch(ops, seeds, *arrays):
        return jax.vmap(lambda s: _train_one(net, train, ops, s, *arrays))(seeds)

    @jax.jit
    def run(dnas, seeds, *arrays):
        return jax.lax.map(lambda ops: per_arch(ops, seeds, *arrays), dnas, batch_size=chunk)

    return run


def population_fn(net: nb201.NetConfig, train: TrainConfig, chunk: int | None = None):
    """The jitted ``(dnas int32[A, 6], seeds int32[S], x_tr, y_tr, x_va, y_va, x_te, y_te)
    -> {"valid_acc", "test_acc", "train_loss": float32[A, S]}`` (cached per config)."""
    return _population_fn(net, train, chunk)


def _check_dnas(dnas) -> np.ndarray:
    arr = np.asarray(dnas.ints if isinstance(dnas, DNA) else dnas)
    if arr.ndim == 1:
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[1] != len(nb201.EDGES):
        raise ValueError(f"dnas must be int[A, {len(nb201.EDGES)}] cell DNA, got shape "
                         f"{arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer) or arr.min() < 0 or arr.max() >= len(nb201.OPS):
        raise ValueError(f"dnas must hold op indices in [0, {len(nb201.OPS)}) ({nb201.OPS})")
    return arr.astype(np.int32)


def _check_data(data: ImageData, net: nb201.NetConfig, train: TrainConfig) -> None:
    if data.image_shape[-1] != net.in_channels:
        raise ValueError(f"NetConfig.in_channels ({net.in_channels}) must match the images' "
                         f"channels {data.image_shape}")
    if data.num_classes != net.num_classes:
        raise ValueError(f"NetConfig.num_classes ({net.num_classes}) must match the data's "
                         f"{data.num_classes}")
    if len(data.y_train) < train.batch_size:
        raise ValueError(f"TrainConfig.batch_size ({train.batch_size}) exceeds the "
                         f"{len(data.y_train)} training images")


def train_architectures(dnas, seeds: Sequence[int], data: ImageData,
                        net: nb201.NetConfig | None = None, train: TrainConfig | None = None,
                        chunk: int | None = None) -> dict[str, np.ndarray]:
    """Train every cell DNA stand-alone with every seed in one jitted call.

    Returns ``valid_acc``, ``test_acc``, ``train_loss`` (last epoch mean) as float[A, S]."""
    net, train = net or nb201.NetConfig(), train or TrainConfig()
    ops = _check_dnas(dnas)
    if chunk is not None and (not isinstance(chunk, int) or chunk < 1):
        raise ValueError(f"chunk must be None or an int >= 1, got {chunk!r}")
    _check_data(data, net, train)
    seeds = jnp.asarray(np.asarray(seeds, np.int32).reshape(-1))
    arrays = [jnp.asarray(a) for a in (data.x_train, data.y_train, data.x_valid, data.y_valid,
                                       data.x_test, data.y_test)]
    out = population_fn(net, train, chunk)(jnp.asarray(ops), seeds, *arrays)
    return {k: np.asarray(v, np.float64) for k, v in out.items()}


def train_standalone(dna, data: ImageData, seeds: Sequence[int] = (0,),
                     net: nb201.NetConfig | None = None,
                     train: TrainConfig | None = None) -> dict[str, np.ndarray]:
    """One DNA trained with the table's protocol: accuracies per seed, float[S]."""
    out = train_architectures(_check_dnas(dna)[:1], seeds, data, net, train)
    return {k: v[0] for k, v in out.items()}


def param_count(ops: Sequence[int], net: nb201.NetConfig | None = None) -> int:
    """Parameters of the stand-alone network (built abstractly, nothing allocated)."""
    net = net or nb201.NetConfig()
    model = nnx.eval_shape(lambda: nb201.NB201Net(nb201.genotype_of(ops), rngs=nnx.Rngs(0),
                                                  **net.kwargs()))
    return int(sum(math.prod(x.shape) for x in jax.tree.leaves(nnx.state(model, nnx.Param))))


# -------------------------------------------------------------------------- table
def cell_index(ints) -> np.ndarray | jax.Array:
    """Base-5 index of cell DNA (``ints[..., 0]`` most significant) in [0, 15625)."""
    weights = np.array([len(nb201.OPS) ** (len(nb201.EDGES) - 1 - e)
                        for e in range(len(nb201.EDGES))], np.int32)
    if isinstance(ints, jax.Array):
        return jnp.sum(ints * weights, axis=-1)
    return np.sum(np.asarray(ints) * weights, axis=-1)


@dataclasses.dataclass(frozen=True, eq=False)
class Table:
    """Stand-alone results: ``dnas`` int[A, 6]; ``valid_acc``/``test_acc`` float[A, S];
    ``params`` int[A]; ``meta`` (configs, date, command, cost)."""

    dnas: np.ndarray
    valid_acc: np.ndarray
    test_acc: np.ndarray
    params: np.ndarray
    meta: dict

    @property
    def num_architectures(self) -> int:
        return len(self.dnas)

    def mean(self, metric: str = "test_acc") -> np.ndarray:
        if metric not in ("valid_acc", "test_acc"):
            raise ValueError(f"metric must be 'valid_acc' or 'test_acc', got {metric!r}")
        return getattr(self, metric).mean(axis=1)

    def row(self, dna) -> int:
        """Row of a cell DNA; ``ValueError`` if the table did not train it."""
        ops = _check_dnas(dna)[0]
        hits = np.flatnonzero((self.dnas == ops).all(axis=1))
        if not len(hits):
            raise ValueError(f"cell {nb201.arch_string(ops)} is not in the table "
                             f"({self.num_architectures} architectures); train it with "
                             "ground_truth.train_standalone")
        return int(hits[0])

    def accuracy(self, dna, metric: str = "test_acc") -> float:
        """Stand-alone accuracy of a DNA, mean over seeds."""
        return float(self.mean(metric)[self.row(dna)])

    def rank(self, accuracy: float, metric: str = "test_acc") -> int:
        """1 + the number of table architectures strictly better than ``accuracy``."""
        return 1 + int(np.sum(self.mean(metric) > accuracy))

    def objective(self, metric: str = "valid_acc"):
        """JAX ``DNA -> accuracy`` (NaN for cells outside the table)."""
        dense = np.full(NUM_CELLS, np.nan, np.float32)
        dense[cell_index(self.dnas)] = self.mean(metric)
        dense = jnp.asarray(dense)
        return lambda dna: dense[cell_index(dna.ints)]

    def to_json(self) -> dict:
        return {"meta": self.meta, "ops": list(nb201.OPS),
                "edges": [list(e) for e in nb201.EDGES],
                "architectures": [
                    {"dna": [int(v) for v in d], "arch": nb201.arch_string(d),
                     "params": int(p), "valid_acc": [round(float(a), 5) for a in va],
                     "test_acc": [round(float(a), 5) for a in te]}
                    for d, p, va, te in zip(self.dnas, self.params, self.valid_acc,
                                            self.test_acc, strict=True)]}

    def save(self, path: str) -> None:
        with open(path, "w") as f:
            json.dump(self.to_json(), f, indent=1)

    @classmethod
    def from_json(cls, obj: dict) -> Table:
        if list(obj.get("ops", [])) != list(nb201.OPS):
            raise ValueError(f"table ops {obj.get('ops')} differ from nb201.OPS {nb201.OPS}")
        rows = obj["architectures"]
        return cls(np.array([r["dna"] for r in rows], np.int32),
                   np.array([r["valid_acc"] for r in rows], np.float64),
                   np.array([r["test_acc"] for r in rows], np.float64),
                   np.array([r["params"] for r in rows], np.int64), obj["meta"])


@functools.lru_cache(maxsize=4)
def load_table(path: str | None = None) -> Table:
    """The stored ground-truth table (default: the committed Fashion-MNIST one)."""
    path = path or os.path.join(TABLES_DIR, DEFAULT_TABLE)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no ground-truth table at {path}; regenerate it with "
                                "python benchmarks/nb201_ground_truth.py")
    with open(path) as f:
        return Table.from_json(json.load(f))


def protocol(table: Table) -> tuple[ImageData, nb201.NetConfig, TrainConfig]:
    """The data, network and training configs that ``table`` was made with (from its meta)."""
    meta = table.meta
    kw = {k: meta["data"][k] for k in ("resolution", "train_size", "valid_size", "test_size")
          if k in meta["data"]}
    data = bdata.load(meta["dataset"], **kw)
    return data, nb201.NetConfig(**meta["net"]), TrainConfig(**meta["train"])


def train_like(table: Table, dna, seeds: Sequence[int] | None = None) -> dict[str, np.ndarray]:
    """Train one DNA stand-alone exactly as ``table``'s cells were (same data, sizes, optimizer,
    seeds unless given): for derived cells that the table does not hold."""
    data, net, train = protocol(table)
    return train_standalone(dna, data, table.meta["seeds"] if seeds is None else seeds, net,
                            train)


def make_table(dnas, results: dict[str, np.ndarray], net: nb201.NetConfig, meta: dict) -> Table:
    ops = _check_dnas(dnas)
    params = np.array([param_count(o, net) for o in ops], np.int64)
    return Table(ops, results["valid_acc"], results["test_acc"], params, meta)


# ------------------------------------------------------------------ rank statistics
def kendall_tau(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall's tau-b between two score lists (e.g. one-shot vs stand-alone accuracy)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if x.shape != y.shape or x.ndim != 1 or len(x) < 2:
        raise ValueError(f"kendall_tau needs two 1-D lists of equal length >= 2, got "
                         f"{x.shape} and {y.shape}")
    return float(stats.kendalltau(x, y).statistic)


def spearman_rho(x: Sequence[float], y: Sequence[float]) -> float:
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if x.shape != y.shape or x.ndim != 1 or len(x) < 2:
        raise ValueError(f"spearman_rho needs two 1-D lists of equal length >= 2, got "
                         f"{x.shape} and {y.shape}")
    return float(stats.spearmanr(x, y).statistic)


def sample_cells(n: int, seed: int = 0, include: Sequence[Sequence[int]] = ()) -> np.ndarray:
    """``n`` distinct cell DNAs: ``include`` first, then uniform draws without repeats."""
    rng = np.random.default_rng(seed)
    chosen = [tuple(int(v) for v in d) for d in include]
    seen = set(chosen)
    for i in rng.permutation(NUM_CELLS):
        if len(chosen) >= n:
            break
        d = tuple(int(v) for v in np.unravel_index(i, (len(nb201.OPS),) * len(nb201.EDGES)))
        if d not in seen:
            seen.add(d)
            chosen.append(d)
    return _check_dnas(np.array(chosen[:n], np.int32))
