"""A tiny NB-201-like user template for the weight-sharing tests (plain user code).

4 nodes, 6 edges; each edge a oneof over none / skip / conv1x1 / conv3x3 / avgpool3x3;
cells stacked in stages. Nothing here knows about supernets.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

import nas


class Zero(nnx.Module):
    def __call__(self, x):
        return jnp.zeros_like(x)


class Skip(nnx.Module):
    def __call__(self, x):
        return x


class Dense(nnx.Module):
    """A dense layer with batch statistics (state that a forward pass updates)."""

    def __init__(self, d, *, rngs):
        self.lin = nnx.Linear(d, d, rngs=rngs)
        self.bn = nnx.BatchNorm(d, rngs=rngs)

    def __call__(self, x):
        return jnp.tanh(self.bn(self.lin(x)))


class MLP(nnx.Module):
    """Residual layers between a 3-feature input and 2 logits: the small non-cell template."""

    def __init__(self, layers, d, *, rngs):
        self.inp = nnx.Linear(3, d, rngs=rngs)
        self.layers = nnx.List(layers)
        self.out = nnx.Linear(d, 2, rngs=rngs)

    def __call__(self, x):
        h = jnp.tanh(self.inp(x))
        for layer in self.layers:
            h = h + layer(h)
        return self.out(h)


class ReLUConv(nnx.Module):
    def __init__(self, channels: int, kernel: int, *, rngs: nnx.Rngs):
        self.conv = nnx.Conv(channels, channels, (kernel, kernel), padding="SAME", rngs=rngs)

    def __call__(self, x):
        return self.conv(nnx.relu(x))


class AvgPool(nnx.Module):
    def __call__(self, x):
        return nnx.avg_pool(x, (3, 3), (1, 1), padding="SAME")


class Cell(nnx.Module):
    """Node j = sum over i < j of edge_(i,j)(node i); edges in order (0,1),(0,2),(1,2),..."""

    def __init__(self, edges):
        self.edges = nnx.List(edges)

    def __call__(self, x):
        nodes, k = [x], 0
        for j in range(1, 4):
            acc = 0.0
            for i in range(j):
                acc = acc + self.edges[k](nodes[i])
                k += 1
            nodes.append(acc)
        return nodes[-1]


class Net(nnx.Module):
    def __init__(self, cells, channels: int, num_classes: int = 4, *, rngs: nnx.Rngs):
        self.stem = nnx.Conv(1, channels, (3, 3), padding="SAME", rngs=rngs)
        self.cells = nnx.List(cells)
        self.head = nnx.Linear(channels, num_classes, rngs=rngs)

    def __call__(self, x):
        x = self.stem(x)
        for cell in self.cells:
            x = cell(x)
        return self.head(x.mean(axis=(1, 2)))


OPS = ("none", "skip", "conv1x1", "conv3x3", "avgpool3x3")


def edge(channels: int, rngs: nnx.Rngs, name: str | None = None):
    return nas.oneof([
        nas.deferred(Zero)(), nas.deferred(Skip)(),
        nas.deferred(ReLUConv)(channels, 1, rngs=rngs),
        nas.deferred(ReLUConv)(channels, 3, rngs=rngs),
        nas.deferred(AvgPool)()], name=name)


def template(channels: int = 4, num_cells: int = 1, seed: int = 0, num_classes: int = 4):
    rngs = nnx.Rngs(seed)
    cells = [nas.deferred(Cell)([edge(channels, rngs) for _ in range(6)])
             for _ in range(num_cells)]
    return nas.deferred(Net)(cells, channels, num_classes, rngs=rngs)


def data(n: int = 32, size: int = 6, num_classes: int = 4, seed: int = 0):
    """Synthetic images whose class is the quadrant holding a bright blob."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, num_classes, n)
    x = rng.normal(0, 0.3, (n, size, size, 1)).astype(np.float32)
    h = size // 2
    for i, c in enumerate(y):
        r, q = divmod(int(c), 2)
        x[i, r * h:(r + 1) * h, q * h:(q + 1) * h, 0] += 1.0
    return jnp.asarray(x), jnp.asarray(y, jnp.int32)


def split_key(seed: int = 0):
    return jax.random.key(seed)
