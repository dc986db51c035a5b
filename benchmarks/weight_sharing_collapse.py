"""Does DARTS collapse on a small NB-201-style cell, and does GDAS avoid it?

Searches one unchanged template (stem conv -> ``--cells`` NB-201 cells of 4 nodes / 6
edges, ops none / skip / conv1x1 / conv3x3 / avgpool3x3 as ReLU-Conv-BN without affine
parameters, as in DARTS' search) on scikit-learn's digits (8x8, half of the training split
trains the weights, half the architecture) with DARTS (first order, or ``--order 2``) and
GDAS at the published defaults, logging per step the collapse diagnostics of
``nas.weight_sharing``: share of parameter-free ops in the derived cell, entropy of the
architecture distribution and (every ``--hessian-every`` steps) the dominant Hessian
eigenvalue of the validation loss w.r.t. alpha. Writes ``collapse.json`` and
``collapse.png`` to ``--out`` and prints one JSON line per method.

    OPENBLAS_NUM_THREADS=1 python benchmarks/weight_sharing_collapse.py --steps 1000
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import nas
from nas import weight_sharing as ws


class Zero(nnx.Module):
    def __call__(self, x):
        return jnp.zeros_like(x)


class Skip(nnx.Module):
    def __call__(self, x):
        return x


class ReLUConvBN(nnx.Module):
    def __init__(self, c: int, k: int, *, rngs: nnx.Rngs):
        self.conv = nnx.Conv(c, c, (k, k), padding="SAME", use_bias=False, rngs=rngs)
        self.bn = nnx.BatchNorm(c, use_scale=False, use_bias=False, rngs=rngs)

    def __call__(self, x):
        return self.bn(self.conv(nnx.relu(x)))


class AvgPool(nnx.Module):
    def __call__(self, x):
        return nnx.avg_pool(x, (3, 3), (1, 1), padding="SAME")


class Cell(nnx.Module):
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
    def __init__(self, cells, c: int, *, rngs: nnx.Rngs):
        self.stem = nnx.Conv(1, c, (3, 3), padding="SAME", rngs=rngs)
        self.cells = nnx.List(cells)
        self.head = nnx.Linear(c, 10, rngs=rngs)

    def __call__(self, x):
        x = self.stem(x)
        for cell in self.cells:
            x = cell(x)
        return self.head(x.mean(axis=(1, 2)))


def template(channels: int, num_cells: int, seed: int):
    rngs = nnx.Rngs(seed)

    def edge(k):
        return nas.oneof([nas.deferred(Zero)(), nas.deferred(Skip)(),
                          nas.deferred(ReLUConvBN)(channels, 1, rngs=rngs),
                          nas.deferred(ReLUConvBN)(channels, 3, rngs=rngs),
                          nas.deferred(AvgPool)()], name=f"edge{k}")

    # one genotype shared by every cell (names reused: one decision per edge)
    cells = [nas.deferred(Cell)([edge(k) for k in range(6)]) for _ in range(num_cells)]
    return nas.deferred(Net)(cells, channels, rngs=rngs)


def digits(seed: int):
    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32).reshape(-1, 8, 8, 1)
    x_tr, _, y_tr, _ = train_test_split(x, y.astype(np.int32), test_size=0.2, random_state=0,
                                        stratify=y)
    x_w, x_a, y_w, y_a = train_test_split(x_tr, y_tr, test_size=0.5, random_state=seed,
                                          stratify=y_tr)
    return (x_w, y_w), (x_a, y_a)


def batches(data, batch_size: int, seed: int):
    (xw, yw), (xa, ya) = data
    rng = np.random.default_rng(seed)
    pw, pa = rng.permutation(len(xw)), rng.permutation(len(xa))

    def get(step):
        i = (step * batch_size) % (len(pw) - batch_size)
        j = (step * batch_size) % (len(pa) - batch_size)
        return ((jnp.asarray(xw[pw[i:i + batch_size]]), jnp.asarray(yw[pw[i:i + batch_size]])),
                (jnp.asarray(xa[pa[j:j + batch_size]]), jnp.asarray(ya[pa[j:j + batch_size]])))

    return get


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--channels", type=int, default=8)
    ap.add_argument("--cells", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--order", type=int, default=1)
    ap.add_argument("--hessian-every", type=int, default=100)
    ap.add_argument("--log-every", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--methods", default="darts,gdas")
    ap.add_argument("--out", default="runs/weight_sharing_collapse")
    args = ap.parse_args()
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    space = nas.Space(template(args.channels, args.cells, args.seed))
    get = batches(digits(args.seed), args.batch_size, args.seed)
    makers = {"darts": lambda sn: ws.Darts(sn, num_steps=args.steps, order=args.order),
              "gdas": lambda sn: ws.Gdas(sn, num_steps=args.steps)}
    results, histories = [], {}
    for name in args.methods.split(","):
        algo = makers[name](ws.Supernet(space, seed=args.seed))
        t0, c0 = time.time(), time.process_time()
        state, hist = ws.run(algo, get, args.steps, key=jax.random.key(args.seed),
                             log_every=args.log_every, hessian_every=args.hessian_every)
        wall, cpu = time.time() - t0, time.process_time() - c0
        dna = algo.derive(state)
        alpha = np.asarray(algo.fns.alpha(state.arch))
        probs = np.exp(alpha - alpha.max(1, keepdims=True))
        probs /= probs.sum(1, keepdims=True)
        eig = [(h["step"], h["hessian_eigenvalue"]) for h in hist if "hessian_eigenvalue" in h]
        res = {"method": name, "order": args.order if name == "darts" else None,
               "steps": args.steps, "channels": args.channels, "cells": args.cells,
               "wall_s": round(wall, 1), "cpu_s": round(cpu, 1),
               "loadavg": [round(v, 2) for v in os.getloadavg()],
               "final_param_free_share": hist[-1]["param_free_share"],
               "final_entropy": hist[-1]["entropy"],
               "hessian_eigenvalue": eig, "derived": space.decode(dna),
               "final_probs": np.round(probs, 3).tolist(),
               "final_valid_loss": hist[-1]["valid_loss"]}
        print(json.dumps(res))
        results.append(res)
        histories[name] = hist
    (out / "collapse.json").write_text(json.dumps({"results": results, "histories": histories}))
    plot_all(histories, out / "collapse.png")


def plot_all(histories: dict, path: pathlib.Path) -> None:
    import matplotlib  # noqa: PLC0415 - plotting only

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    keys = ("param_free_share", "entropy", "hessian_eigenvalue", "valid_loss")
    fig, axes = plt.subplots(1, len(keys), figsize=(16, 3.2))
    for name, hist in histories.items():
        for ax, k in zip(axes, keys, strict=True):
            pts = [(h["step"], h[k]) for h in hist if k in h]
            if pts:
                marker = "." if k == "hessian_eigenvalue" else None
                ax.plot(*zip(*pts, strict=True), label=name, marker=marker)
            ax.set_title(k)
            ax.set_xlabel("step")
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


if __name__ == "__main__":
    main()
