"""An NB-201-style cell space (Dong & Yang, ICLR 2020) as an ordinary Flax NNX model.

The cell is a DAG of 4 nodes; node ``t`` sums ``op(node f)`` over the 6 edges ``t <- f``
(``f < t``), node 0 is the cell input and node 3 its output. Each edge applies one of
``none / skip / conv1x1 / conv3x3 / avgpool3x3``; the network is NB-201's macro skeleton:
stem conv, ``cells_per_stage`` cells, a residual reduction block (stride 2, channels x2),
``cells_per_stage`` cells, ..., batch norm + ReLU, global average pooling, linear. One cell
genotype (6 ops) is used by every cell, as in NB-201, so the space has 5**6 = 15,625 cells.

:class:`NB201Net` is a plain NNX model that takes the genotype as a list of op names or
*classes* (constructors ``Op(channels, *, rngs)``: each cell, with its own channel count,
builds its own instances). :func:`space` makes it searchable: every edge of every cell is
``nas.deferred(edge_op)(nas.oneof(OP_CLASSES, name="edge_<to>_<from>"), channels)``, one
decision per edge name shared by all cells, assembled by :meth:`NB201Net.from_parts` in
the plain constructor's order of random draws, so ``space.materialize(dna)`` is exactly
``NB201Net(genotype_of(dna.ints), rngs=nnx.Rngs(seed))`` and the same space is searched
without sharing (random search, evolution, the tables) and by
``nas.weight_sharing.Supernet`` (DARTS, GDAS, ENAS, random search with sharing).

For weight-sharing code: ``OPS`` gives the op names in NB-201's order, every op class has
``op_name`` and ``parameter_free`` class attributes, ``PARAMETER_FREE`` is the set of names
of parameter-free ops and ``NONE`` the name of the zero op (excluded by DARTS's derive).

Normalization: NB-201's convs are ReLU-Conv-BN. We use :class:`BatchStatNorm`, a batch
norm with learned scale/bias that always normalizes with the current batch's statistics
and keeps no running averages (like PyTorch's ``track_running_stats=False``, which
NB-201's weight-sharing supernets use). It keeps every model a pure function of its
``nnx.Param`` state, so stand-alone training can be vmapped over seeds and architectures
with no mutable batch-statistics collection; evaluation uses large fixed batches.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import ClassVar

import jax
import jax.numpy as jnp
from flax import nnx

from nas.primitives import deferred, oneof
from nas.space import Space

EDGES: tuple[tuple[int, int], ...] = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
"""``(to, from)`` of the 6 edges in DNA order: NB-201's arch-string order
``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``."""

NUM_NODES = 4


class BatchStatNorm(nnx.Module):
    """Batch norm over (N, H, W) with learned affine parameters and no running statistics.

    The committed ground-truth table was trained with ``(x - mean) * rsqrt(jnp.var(x) +
    eps) * scale + bias``, which differs from this form only by float rounding."""

    def __init__(self, channels: int, *, eps: float = 1e-5, rngs: nnx.Rngs | None = None):
        del rngs
        self.scale = nnx.Param(jnp.ones((channels,), jnp.float32))
        self.bias = nnx.Param(jnp.zeros((channels,), jnp.float32))
        self.eps = eps

    def __call__(self, x: jax.Array) -> jax.Array:
        # one centred tensor serves the variance and the output, and the per-channel factors
        # are multiplied before they meet the batch: fewer and smaller kernels than
        # ``(x - mean) * rsqrt(jnp.var(x) + eps) * scale`` (jnp.var takes its own mean), so
        # a DARTS step compiles in about two thirds of the time (same arithmetic up to
        # float rounding)
        mean = jnp.mean(x, axis=(0, 1, 2))
        centred = x - mean
        var = jnp.mean(centred * centred, axis=(0, 1, 2))
        return centred * (jax.lax.rsqrt(var + self.eps) * self.scale[...]) + self.bias[...]


class ReLUConvBN(nnx.Module):
    """ReLU -> Conv (no bias, SAME padding) -> BatchStatNorm, NB-201's conv op."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, *, rngs: nnx.Rngs):
        self.conv = nnx.Conv(c_in, c_out, (kernel, kernel), strides=(stride, stride),
                             padding="SAME", use_bias=False, rngs=rngs)
        self.norm = BatchStatNorm(c_out)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.norm(self.conv(nnx.relu(x)))


# ------------------------------------------------------------------------- cell ops
class Zero(nnx.Module):
    """``none``: the edge is absent (outputs zeros)."""

    op_name: ClassVar[str] = "none"
    parameter_free: ClassVar[bool] = True

    def __init__(self, channels: int, *, rngs: nnx.Rngs):
        del channels, rngs

    def __call__(self, x: jax.Array) -> jax.Array:
        return jnp.zeros_like(x)


class Identity(nnx.Module):
    """``skip``: identity."""

    op_name: ClassVar[str] = "skip"
    parameter_free: ClassVar[bool] = True

    def __init__(self, channels: int, *, rngs: nnx.Rngs):
        del channels, rngs

    def __call__(self, x: jax.Array) -> jax.Array:
        return x


class Conv1x1(nnx.Module):
    """``conv1x1``: ReLU-Conv1x1-BN."""

    op_name: ClassVar[str] = "conv1x1"
    parameter_free: ClassVar[bool] = False

    def __init__(self, channels: int, *, rngs: nnx.Rngs):
        self.op = ReLUConvBN(channels, channels, 1, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.op(x)


class Conv3x3(nnx.Module):
    """``conv3x3``: ReLU-Conv3x3-BN."""

    op_name: ClassVar[str] = "conv3x3"
    parameter_free: ClassVar[bool] = False

    def __init__(self, channels: int, *, rngs: nnx.Rngs):
        self.op = ReLUConvBN(channels, channels, 3, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.op(x)


class AvgPool3x3(nnx.Module):
    """``avgpool3x3``: 3x3 average pooling, stride 1, padding not counted (as NB-201)."""

    op_name: ClassVar[str] = "avgpool3x3"
    parameter_free: ClassVar[bool] = True

    def __init__(self, channels: int, *, rngs: nnx.Rngs):
        del channels, rngs

    def __call__(self, x: jax.Array) -> jax.Array:
        return nnx.avg_pool(x, (3, 3), strides=(1, 1), padding="SAME", count_include_pad=False)


OP_CLASSES: tuple[type, ...] = (Zero, Identity, Conv1x1, Conv3x3, AvgPool3x3)
OPS: tuple[str, ...] = tuple(c.op_name for c in OP_CLASSES)
"""Op names in NB-201's order: the DNA value of an edge indexes this tuple."""
NONE = "none"
PARAMETER_FREE: frozenset[str] = frozenset(c.op_name for c in OP_CLASSES if c.parameter_free)
OP_BY_NAME: dict[str, type] = {c.op_name: c for c in OP_CLASSES}


def op_class(op: str | type) -> type:
    """The op class for a name (``"conv3x3"``) or the class itself (checked)."""
    if isinstance(op, str):
        if op not in OP_BY_NAME:
            raise ValueError(f"op must be one of {OPS}, got {op!r}")
        return OP_BY_NAME[op]
    if op not in OP_CLASSES:
        raise ValueError(f"op must be one of {OPS} or their classes, got {op!r}")
    return op


# ---------------------------------------------------------------------- network
def _check_sizes(channels, cells_per_stage, num_stages, in_channels, num_classes) -> None:
    for name, v, lo in (("channels", channels, 1), ("cells_per_stage", cells_per_stage, 1),
                        ("num_stages", num_stages, 1), ("in_channels", in_channels, 1),
                        ("num_classes", num_classes, 2)):
        if not isinstance(v, int) or v < lo:
            raise ValueError(f"{name} must be an int >= {lo}, got {v!r}")


@dataclasses.dataclass(frozen=True)
class NetConfig:
    """Sizes of the network (NB-201 itself: channels 16, cells_per_stage 5, 3 stages,
    32x32x3 CIFAR images). The defaults train in seconds on a 2-core CPU."""

    channels: int = 8
    cells_per_stage: int = 1
    num_stages: int = 3
    in_channels: int = 1
    num_classes: int = 10

    def __post_init__(self):
        _check_sizes(self.channels, self.cells_per_stage, self.num_stages, self.in_channels,
                     self.num_classes)

    def kwargs(self) -> dict:
        return dataclasses.asdict(self)


def block_plan(config: NetConfig) -> list[tuple[str, int]]:
    """``(kind, channels)`` of each block in order: ``("cell", c)`` or ``("reduction", c)``
    (a reduction to ``c`` channels from ``c // 2``)."""
    plan = []
    for stage, c in enumerate(stage_channels(config)):
        if stage:
            plan.append(("reduction", c))
        plan.extend(("cell", c) for _ in range(config.cells_per_stage))
    return plan


def edge_op(op: str | type, channels: int, *, rngs: nnx.Rngs) -> nnx.Module:
    """One edge's op module: ``op_class(op)(channels, rngs=rngs)``. In :func:`space` each
    edge is ``deferred(edge_op)(oneof(OP_CLASSES), ...)``, so a supernet sees a choice
    among modules built once per candidate."""
    return op_class(op)(channels, rngs=rngs)


class Cell(nnx.Module):
    """One NB-201 cell: node t = sum over f < t of edge_op[t <- f](node f); returns node 3.

    ``genotype``: 6 ops in :data:`EDGES` order, each an op name or class (built here with
    ``channels`` and ``rngs``) or an already built module (e.g. a supernet's mixed op)."""

    def __init__(self, genotype: Sequence[type | str | nnx.Module], channels: int | None = None,
                 *, rngs: nnx.Rngs | None = None):
        if len(genotype) != len(EDGES):
            raise ValueError(f"genotype must list {len(EDGES)} ops (edges {EDGES}), "
                             f"got {len(genotype)}")
        if all(isinstance(op, nnx.Module) for op in genotype):
            edges = list(genotype)
        else:
            if channels is None or rngs is None:
                raise ValueError("Cell: op names or classes need channels and rngs to be built "
                                 "(or pass 6 built op modules)")
            edges = [edge_op(op, channels, rngs=rngs) for op in genotype]
        self.edges = nnx.List(edges)

    def __call__(self, x: jax.Array) -> jax.Array:
        nodes = [x]
        for t in range(1, NUM_NODES):
            nodes.append(sum(self.edges[e](nodes[f])
                             for e, (to, f) in enumerate(EDGES) if to == t))
        return nodes[-1]


class ResidualReduction(nnx.Module):
    """NB-201's reduction block: ReLUConvBN(3x3, stride 2) -> ReLUConvBN(3x3), plus a
    shortcut avg-pool(2x2, stride 2) -> conv1x1; halves the resolution, doubles channels."""

    def __init__(self, c_in: int, c_out: int, *, rngs: nnx.Rngs):
        self.conv_a = ReLUConvBN(c_in, c_out, 3, stride=2, rngs=rngs)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, rngs=rngs)
        self.shortcut = nnx.Conv(c_in, c_out, (1, 1), use_bias=False, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        pooled = nnx.avg_pool(x, (2, 2), strides=(2, 2), padding="SAME", count_include_pad=False)
        return self.shortcut(pooled) + self.conv_b(self.conv_a(x))


def stem(in_channels: int, channels: int, *, rngs: nnx.Rngs) -> nnx.Conv:
    """The stem conv (3x3, no bias); batch norm follows in :class:`NB201Net`."""
    return nnx.Conv(in_channels, channels, (3, 3), padding="SAME", use_bias=False, rngs=rngs)


def classifier(channels: int, num_classes: int, *, rngs: nnx.Rngs) -> nnx.Linear:
    """The final linear layer."""
    return nnx.Linear(channels, num_classes, rngs=rngs)


def stage_channels(config: NetConfig) -> list[int]:
    """Channels of each stage: ``channels * 2**stage``."""
    return [config.channels * 2 ** s for s in range(config.num_stages)]


class NB201Net(nnx.Module):
    """Stem conv -> [cells_per_stage cells, reduction] x (num_stages - 1) -> cells ->
    BN-ReLU -> global average pool -> linear. Input NHWC, output logits.

    ``NB201Net(genotype, channels=..., rngs=...)`` builds every part (stem, then the
    blocks in order, then the classifier: the order of the random draws);
    :meth:`from_parts` assembles already built parts (what :func:`space` does, so that
    each edge of each cell is its own choice point)."""

    def __init__(self, genotype: Sequence[type | str] | None = None, *, channels: int = 8,
                 cells_per_stage: int = 1, num_stages: int = 3, in_channels: int = 1,
                 num_classes: int = 10, rngs: nnx.Rngs | None = None,
                 parts: tuple[nnx.Module, Sequence[nnx.Module], nnx.Module] | None = None):
        if parts is None:
            if genotype is None or rngs is None:
                raise ValueError("NB201Net needs a genotype and rngs (or parts=(stem, blocks, "
                                 "classifier) via NB201Net.from_parts)")
            if len(genotype) != len(EDGES):
                raise ValueError(f"genotype must list {len(EDGES)} ops (edges {EDGES}), "
                                 f"got {len(genotype)}")
            for op in genotype:
                op_class(op)
            config = NetConfig(channels, cells_per_stage, num_stages, in_channels, num_classes)
            first = stem(in_channels, channels, rngs=rngs)
            blocks = [Cell(genotype, c, rngs=rngs) if kind == "cell" else
                      ResidualReduction(c // 2, c, rngs=rngs)
                      for kind, c in block_plan(config)]
            parts = (first, blocks, classifier(stage_channels(config)[-1], num_classes,
                                               rngs=rngs))
        first, blocks, last = parts
        self.stem = first
        self.stem_norm = BatchStatNorm(first.out_features)
        self.blocks = nnx.List(list(blocks))
        self.head_norm = BatchStatNorm(last.in_features)
        self.classifier = last

    @classmethod
    def from_parts(cls, stem: nnx.Conv, blocks: Sequence[nnx.Module],
                   classifier: nnx.Linear) -> NB201Net:
        """The network of built parts: stem conv, blocks (cells and reductions), linear."""
        return cls(parts=(stem, blocks, classifier))

    @property
    def genotype(self) -> tuple[str | None, ...]:
        """Op names of the first cell's edges (``None`` for an edge that is no plain op,
        e.g. a supernet's mixed op)."""
        cell = next(b for b in self.blocks if isinstance(b, Cell))
        return tuple(getattr(op, "op_name", None) for op in cell.edges)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = self.stem_norm(self.stem(x))
        for block in self.blocks:
            x = block(x)
        x = nnx.relu(self.head_norm(x))
        return self.classifier(jnp.mean(x, axis=(1, 2)))


def edge_name(e: int) -> str:
    to, f = EDGES[e]
    return f"edge_{to}_{f}"


def space(config: NetConfig | None = None, seed: int = 0) -> Space:
    """The searchable model: 6 decisions ``edge_<to>_<from>``, each a ``oneof`` over
    :data:`OP_CLASSES`, read by that edge of every cell (one genotype for all cells);
    ``space.materialize(dna)`` builds an :class:`NB201Net` (weights initialized from
    ``seed``, the same at every materialization, equal to ``NB201Net(genotype,
    rngs=nnx.Rngs(seed))``). Each edge is its own ``deferred(edge_op)(oneof(...))``, so
    the same space is searched by the no-sharing algorithms and by
    ``nas.weight_sharing.Supernet`` (a mixed op per edge and cell)."""
    config = config or NetConfig()
    rngs = nnx.Rngs(seed)  # one Rngs, copied fresh by every build: stem, blocks, linear
    blocks = []
    for kind, c in block_plan(config):
        if kind == "reduction":
            blocks.append(deferred(ResidualReduction)(c // 2, c, rngs=rngs))
        else:
            blocks.append(deferred(Cell)([
                deferred(edge_op)(oneof(list(OP_CLASSES), name=edge_name(e)), c, rngs=rngs)
                for e in range(len(EDGES))]))
    return Space(deferred(NB201Net.from_parts)(
        stem=deferred(stem)(config.in_channels, config.channels, rngs=rngs),
        blocks=blocks,
        classifier=deferred(classifier)(stage_channels(config)[-1], config.num_classes,
                                        rngs=rngs)))


def genotype_of(ints: Sequence[int]) -> tuple[str, ...]:
    """Op names of a DNA's 6 ints."""
    ints = [int(i) for i in ints]
    if len(ints) != len(EDGES) or any(not 0 <= i < len(OPS) for i in ints):
        raise ValueError(f"a cell DNA is {len(EDGES)} ints in [0, {len(OPS)}), got {ints}")
    return tuple(OPS[i] for i in ints)


def arch_string(ints: Sequence[int]) -> str:
    """NB-201's arch string, e.g. ``|conv3x3~0|+|conv3x3~0|skip~1|+|...|``."""
    ops = genotype_of(ints)
    nodes = []
    for t in range(1, NUM_NODES):
        nodes.append("|" + "|".join(f"{ops[e]}~{f}" for e, (to, f) in enumerate(EDGES)
                                    if to == t) + "|")
    return "+".join(nodes)


def reaches_output(ints: Sequence[int]) -> bool:
    """Whether some path of non-``none`` edges joins the input (node 0) to the output
    (node 3); if not, the cell outputs zeros whatever its other ops."""
    ops = genotype_of(ints)
    live = [True] + [False] * (NUM_NODES - 1)
    for t in range(1, NUM_NODES):
        live[t] = any(live[f] and ops[e] != NONE for e, (to, f) in enumerate(EDGES) if to == t)
    return live[-1]
