"""Supernet search steps per second: nas.weight_sharing (JAX/NNX) against PyTorch.

    python benchmarks/weight_sharing.py [--algorithms darts1,darts2,darts2_exact,gdas,enas]
        [--batch 64] [--resolution 16] [--channels 8] [--steps 10] [--rounds 3]
        [--threads 1] [--dataset fashion_mnist] [--json out.json]

Both sides search the NB-201 cell space (4 nodes, 6 edges, none / skip / conv1x1 / conv3x3 /
avgpool3x3, one genotype shared by every cell) on the network of ``nas.benchmarks.nb201``
(``NetConfig`` sizes: stem, cells, residual reductions, head); the PyTorch side is
``benchmarks/torch_supernet.py``, written after the original DARTS code. Algorithms:

* ``darts1``: DARTS first order; ``darts2``: second order with the paper's
  finite-difference Hessian-vector product (both sides); ``darts2_exact``: JAX's exact
  hypergradient through the unrolled step, timed against the same PyTorch ``darts2``;
* ``gdas``: hard Gumbel-softmax, only the sampled op computed;
* ``enas``: a child sampled by the LSTM controller trains the shared weights, another is
  scored on the validation batch for a REINFORCE step of the controller.

One process, same batches (``--batch`` train and valid images, NHWC for JAX, NCHW for
torch), same threads: ``--threads 1`` sets ``XLA_FLAGS=--xla_cpu_multi_thread_eigen=false
intra_op_parallelism_threads=1`` before JAX starts and ``torch.set_num_threads(1)``;
``--threads 0`` leaves both libraries their defaults (all cores). Each algorithm: first the
JAX step's compile (first call, wall and CPU seconds) and torch's first step, then
``--rounds`` rounds of ``--steps`` steps per side, interleaved (JAX, torch, torch, JAX, ...)
so a change of machine load hits both. Reported: median steps per wall second and per
CPU-second of the process (``time.process_time``: all threads), and the 1-minute load.

The JAX template is built here from ``nb201``'s modules because ``nb201.space()`` passes the
op *classes* to the root ``NB201Net`` constructor, which a supernet cannot share: each edge
is ``nas.deferred(edge_op)(nas.oneof(OPS, name="edge_<to>_<from>"), channels, rngs=...)``, the
same name in every cell (one shared decision per edge).
"""

import argparse
import os
import sys

_pre = argparse.ArgumentParser(add_help=False)
_pre.add_argument("--threads", type=int, default=1)
_THREADS = _pre.parse_known_args()[0].threads
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
if _THREADS == 1:
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen"
                               "=false intra_op_parallelism_threads=1").strip()

import datetime  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from flax import nnx  # noqa: E402

import nas  # noqa: E402
from nas import weight_sharing as ws  # noqa: E402
from nas.benchmarks import data as nas_data  # noqa: E402
from nas.benchmarks import nb201  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
try:
    import torch  # noqa: E402
    import torch_supernet  # noqa: E402
except ImportError:  # the bench-torch extra is optional: JAX-only figures then
    torch = None

ALGORITHMS = ("darts1", "darts2", "darts2_exact", "gdas", "enas")
TORCH_OF = {"darts1": "darts1", "darts2": "darts2", "darts2_exact": "darts2", "gdas": "gdas",
            "enas": "enas"}


# ------------------------------------------------------------------ JAX template
def edge_op(op: str, channels: int, *, rngs: nnx.Rngs) -> nnx.Module:
    """One NB-201 edge op by name (``nb201.OPS``)."""
    return nb201.op_class(op)(channels, rngs=rngs)


class SearchCell(nnx.Module):
    """``nb201.Cell`` over 6 given edge modules."""

    def __init__(self, edges: list):
        self.edges = nnx.List(edges)

    def __call__(self, x: jax.Array) -> jax.Array:
        nodes = [x]
        for t in range(1, nb201.NUM_NODES):
            nodes.append(sum(self.edges[e](nodes[f])
                             for e, (to, f) in enumerate(nb201.EDGES) if to == t))
        return nodes[-1]


class SearchNet(nnx.Module):
    """``nb201.NB201Net`` with its cells given: stem, blocks, BN-ReLU, pool, linear."""

    def __init__(self, blocks: list, channels: int, out_channels: int, in_channels: int,
                 num_classes: int, *, rngs: nnx.Rngs):
        self.stem = nnx.Conv(in_channels, channels, (3, 3), padding="SAME", use_bias=False,
                             rngs=rngs)
        self.stem_norm = nb201.BatchStatNorm(channels)
        self.blocks = nnx.List(blocks)
        self.head_norm = nb201.BatchStatNorm(out_channels)
        self.classifier = nnx.Linear(out_channels, num_classes, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = self.stem_norm(self.stem(x))
        for block in self.blocks:
            x = block(x)
        x = nnx.relu(self.head_norm(x))
        return self.classifier(jnp.mean(x, axis=(1, 2)))


def supernet_space(config: nb201.NetConfig, seed: int = 0) -> nas.Space:
    """The NB-201 search space as a template a supernet can share (6 decisions)."""
    rngs = nnx.Rngs(seed)
    blocks, c = [], config.channels
    for stage in range(config.num_stages):
        if stage > 0:
            blocks.append(nas.deferred(nb201.ResidualReduction)(c, 2 * c, rngs=rngs))
            c *= 2
        for _ in range(config.cells_per_stage):
            blocks.append(nas.deferred(SearchCell)([
                nas.deferred(edge_op)(nas.oneof(list(nb201.OPS), name=nb201.edge_name(e)), c,
                                      rngs=rngs)
                for e in range(len(nb201.EDGES))]))
    return nas.Space(nas.deferred(SearchNet)(blocks, config.channels, c, config.in_channels,
                                             config.num_classes, rngs=rngs))


def jax_algorithm(name: str, supernet: ws.Supernet, num_steps: int):
    if name == "darts1":
        return ws.Darts(supernet, num_steps=num_steps, order=1)
    if name == "darts2":
        return ws.Darts(supernet, num_steps=num_steps, order=2, hypergradient="finite_difference")
    if name == "darts2_exact":
        return ws.Darts(supernet, num_steps=num_steps, order=2, hypergradient="exact")
    if name == "gdas":
        return ws.Gdas(supernet, num_steps=num_steps)
    if name == "enas":
        return ws.Enas(supernet, num_steps=num_steps)
    raise ValueError(f"algorithm must be one of {ALGORITHMS}, got {name!r}")


# ------------------------------------------------------------------------ data
def batches(args, num: int = 4):
    """``num`` (train, valid) pairs of ``--batch`` images, as NumPy NHWC."""
    n = num * args.batch
    if args.dataset == "synthetic":
        rng = np.random.default_rng(0)
        shape = (n, args.resolution, args.resolution, 1)
        xs = [rng.normal(size=shape).astype(np.float32) for _ in range(2)]
        ys = [rng.integers(0, 10, n).astype(np.int32) for _ in range(2)]
        name = "synthetic"
    else:
        d = nas_data.load_with_fallback(args.dataset, resolution=args.resolution, train_size=n,
                                        valid_size=n, test_size=10)
        if d.image_shape[:2] != (args.resolution, args.resolution):
            raise ValueError(f"{d.name} gave {d.image_shape} images; use --resolution "
                             f"{d.image_shape[0]} or --dataset synthetic")
        xs, ys, name = [d.x_train[:n], d.x_valid[:n]], [d.y_train[:n], d.y_valid[:n]], d.name
    pairs = []
    for i in range(num):
        s = slice(i * args.batch, (i + 1) * args.batch)
        pairs.append(((xs[0][s], ys[0][s]), (xs[1][s], ys[1][s])))
    return pairs, name


def as_jax(pairs):
    return [tuple((jnp.asarray(x), jnp.asarray(y)) for x, y in p) for p in pairs]


def as_torch(pairs):
    return [tuple((torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))),
                   torch.from_numpy(y.astype(np.int64))) for x, y in p) for p in pairs]


# -------------------------------------------------------------------- runners
class JaxRunner:
    def __init__(self, name, config, num_steps, data):
        self.algo = jax_algorithm(name, ws.Supernet(supernet_space(config)), num_steps)
        self.state = self.algo.init()
        self.data = data
        self.key = jax.random.key(0)
        self.i = 0

    def run(self, steps: int) -> float:
        metrics = None
        for _ in range(steps):
            train, valid = self.data[self.i % len(self.data)]
            self.state, metrics = self.algo.step(self.state, train, valid,
                                                 jax.random.fold_in(self.key, self.i))
            self.i += 1
        jax.block_until_ready((self.state, metrics))
        if not bool(metrics["finite"]):
            raise ValueError(f"JAX step {self.i}: non-finite loss or gradient")
        return float(metrics["train_loss"])

    def compile_count(self) -> int:
        return self.algo._step._cache_size()


class TorchRunner:
    def __init__(self, name, config, num_steps, data):
        self.searcher = torch_supernet.make(TORCH_OF[name], num_steps, **config.kwargs())
        self.data = data
        self.i = 0

    def run(self, steps: int) -> float:
        loss = None
        for _ in range(steps):
            train, valid = self.data[self.i % len(self.data)]
            loss = self.searcher.step(train, valid)
            self.i += 1
        torch_supernet.check_finite(loss)
        return float(loss)


def timed(fn, *a):
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn(*a)
    return out, time.perf_counter() - w0, time.process_time() - c0


def bench(name, args, config, jdata, tdata) -> dict:
    num_steps = 1 + args.steps * args.rounds
    load0 = os.getloadavg()[0]
    jr, jw, jc = timed(JaxRunner, name, config, num_steps, jdata)
    _, fw, fc = timed(jr.run, 1)
    row = {"algorithm": name, "jax_build_s": round(jw, 2), "jax_first_step_s": round(fw, 2),
           "jax_first_step_cpu_s": round(fc, 2)}
    tr = None
    if torch is not None:
        tr, _, _ = timed(TorchRunner, name, config, num_steps, tdata)
        _, tw, tc = timed(tr.run, 1)
        row.update(torch_first_step_s=round(tw, 3))
    rates = {"jax": ([], []), "torch": ([], [])}
    for r in range(args.rounds):
        order = [("jax", jr), ("torch", tr)]
        if r % 2:
            order.reverse()
        for side, runner in order:
            if runner is None:
                continue
            _, w, c = timed(runner.run, args.steps)
            rates[side][0].append(args.steps / w)
            rates[side][1].append(args.steps / c)
    for side, (wall, cpu) in rates.items():
        if wall:
            row[f"{side}_steps_per_s"] = round(statistics.median(wall), 3)
            row[f"{side}_steps_per_cpu_s"] = round(statistics.median(cpu), 3)
    if torch is not None:
        row["jax_over_torch_wall"] = round(row["jax_steps_per_s"] / row["torch_steps_per_s"], 2)
        row["jax_over_torch_cpu"] = round(row["jax_steps_per_cpu_s"]
                                          / row["torch_steps_per_cpu_s"], 2)
    row["jax_compiles"] = jr.compile_count()
    row["loadavg_1m"] = [round(load0, 2), round(os.getloadavg()[0], 2)]
    return row


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--algorithms", default=",".join(ALGORITHMS))
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--resolution", type=int, default=16)
    ap.add_argument("--channels", type=int, default=nb201.NetConfig.channels)
    ap.add_argument("--cells-per-stage", type=int, default=nb201.NetConfig.cells_per_stage)
    ap.add_argument("--steps", type=int, default=10, help="steps per timed block")
    ap.add_argument("--rounds", type=int, default=3, help="timed blocks per side")
    ap.add_argument("--threads", type=int, default=1,
                    help="1: one thread each (pinned); 0: library defaults")
    ap.add_argument("--dataset", default="fashion_mnist",
                    choices=[*nas_data.DATASETS, "synthetic"])
    ap.add_argument("--json", default=None, help="also write the rows to this file")
    args = ap.parse_args(argv)
    names = [a for a in args.algorithms.split(",") if a]
    for a in names:
        if a not in ALGORITHMS:
            ap.error(f"--algorithms: {a!r} is not one of {ALGORITHMS}")
    if args.threads == 1 and torch is not None:
        torch.set_num_threads(1)
        torch.set_num_interop_threads(1)
    config = nb201.NetConfig(channels=args.channels, cells_per_stage=args.cells_per_stage)
    pairs, data_name = batches(args)
    jdata = as_jax(pairs)
    tdata = as_torch(pairs) if torch is not None else None
    header = {"benchmark": "weight_sharing", "data": data_name, "batch": args.batch,
              "resolution": args.resolution, "net": config.kwargs(), "threads": args.threads,
              "torch_threads": torch.get_num_threads() if torch is not None else None,
              "torch": torch.__version__ if torch is not None else None,
              "jax": jax.__version__, "device": str(jax.devices()[0]),
              "xla_flags": os.environ.get("XLA_FLAGS", ""), "cpus": os.cpu_count(),
              "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="minutes")}
    print(json.dumps(header), flush=True)
    rows = []
    for name in names:
        row = bench(name, args, config, jdata, tdata)
        rows.append(row)
        print(json.dumps(row), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"header": header, "rows": rows}, f, indent=1)
    return rows


if __name__ == "__main__":
    main()
