"""Supernet search steps per second: nas.weight_sharing (JAX/NNX) against PyTorch.

    python benchmarks/weight_sharing.py [--algorithms darts1,darts2,darts2_exact,gdas,enas]
        [--conv nnx,canonical] [--batch 64] [--resolution 16] [--channels 8] [--steps 10]
        [--rounds 3] [--threads 1] [--dataset fashion_mnist] [--json out.json]

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
intra_op_parallelism_threads=1`` and ``NPROC=1`` (the size of XLA:CPU's runtime thread pools)
before JAX starts, and ``torch.set_num_threads(1)``;
``--threads 0`` leaves both libraries their defaults (all cores). ``--keep-freed-memory``
makes glibc keep freed memory for the whole process (both sides; see
``nas.weight_sharing.host_memory``). Each algorithm: first the
JAX step's compile (first call, wall and CPU seconds) and torch's first step, then
``--rounds`` rounds of ``--steps`` steps per side, interleaved (JAX, torch, torch, JAX, ...)
so a change of machine load hits both. Reported: median steps per wall second and per
CPU-second of the process (``time.process_time``: all threads), and the 1-minute load.

The header's ``switch_conv_grad_cpu_ms`` times one conv gradient at top level and inside
``lax.switch``: XLA:CPU runs JAX's own gradient convolutions about 30x slower inside a
branch. The library's hard mixed ops (GDAS, ENAS) therefore run the user's ``nnx.Conv``
layers through ``nas.weight_sharing.canonical_conv`` (same numbers, gradient convolutions
in the canonical layout), so the template as a user writes it (``--conv nnx``) is fast;
``--conv canonical`` adds a side whose edge convolutions are this script's own
:func:`same_conv` (the hand-written version of the same fix), for comparison.

The JAX template is built here from ``nb201``'s modules because ``nb201.space()`` passes the
op *classes* to the root ``NB201Net`` constructor, which a supernet cannot share: each edge
is ``nas.deferred(edge_op)(nas.oneof(OPS, name="edge_<to>_<from>"), channels, rngs=...)``, the
same name in every cell (one shared decision per edge).
"""

import argparse
import os
import sys

if __name__ == "__main__":  # thread settings must precede JAX's start (not on import)
    _pre = argparse.ArgumentParser(add_help=False)
    _pre.add_argument("--threads", type=int, default=1)
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    if _pre.parse_known_args()[0].threads == 1:
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread"
                                   "_eigen=false intra_op_parallelism_threads=1").strip()
        # XLA:CPU sizes its runtime thread pools (the thunk executor's "XLAEigen" pool, the
        # client's) from NPROC, else from the cores it may run on: unpinned on 2 cores two
        # threads ran independent thunks side by side, 1.7 CPU-s per wall second
        os.environ.setdefault("NPROC", "1")

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
from nas.weight_sharing import host_memory  # noqa: E402

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


# XLA:CPU leaves the gradient convolutions that JAX's transpose rules emit (weight gradient
# ``f01b_i01o->01bf``, input gradient with an ``01oi`` kernel) in their non-canonical layout
# when they sit inside a conditional's branch (the ``lax.switch`` of GDAS / ENAS), and
# runs them 10-40x slower than the same convolutions at top level, where they are
# rewritten with transposes into the fast layout (jax-ml/jax#12868 is the loop-body case).
# ``same_conv`` is a stride-1 SAME convolution whose VJP writes both gradient convolutions
# in the canonical NHWC/HWIO layout itself: same numbers, fast inside a branch.
_DN = ("NHWC", "HWIO", "NHWC")


def _conv(x, w):
    p = (w.shape[0] - 1) // 2
    return jax.lax.conv_general_dilated(x, w, (1, 1), ((p, p), (p, p)), dimension_numbers=_DN)


@jax.custom_vjp
def same_conv(x: jax.Array, w: jax.Array) -> jax.Array:
    """``conv(x NHWC, w HWIO)``, stride 1, SAME padding (odd kernel)."""
    return _conv(x, w)


def _same_conv_fwd(x, w):
    return _conv(x, w), (x, w)


def _same_conv_bwd(res, g):
    x, w = res
    dx = _conv(g, jnp.flip(w, (0, 1)).transpose(0, 1, 3, 2))
    p = (w.shape[0] - 1) // 2
    dw = jax.lax.conv_general_dilated(x.transpose(3, 1, 2, 0), g.transpose(1, 2, 0, 3), (1, 1),
                                      ((p, p), (p, p)), dimension_numbers=_DN)
    return dx, dw.transpose(1, 2, 0, 3)


same_conv.defvjp(_same_conv_fwd, _same_conv_bwd)


class CanonicalReLUConvBN(nnx.Module):
    """``nb201.ReLUConvBN`` (stride 1) with :func:`same_conv`; same parameters."""

    def __init__(self, channels: int, kernel: int, *, rngs: nnx.Rngs):
        self.conv = nnx.Conv(channels, channels, (kernel, kernel), padding="SAME",
                             use_bias=False, rngs=rngs)
        self.norm = nb201.BatchStatNorm(channels)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.norm(same_conv(nnx.relu(x), self.conv.kernel[...]))


def canonical_edge_op(op: str, channels: int, *, rngs: nnx.Rngs) -> nnx.Module:
    """:func:`edge_op` with the convolutions of :class:`CanonicalReLUConvBN`."""
    if op in ("conv1x1", "conv3x3"):
        return CanonicalReLUConvBN(channels, 1 if op == "conv1x1" else 3, rngs=rngs)
    return edge_op(op, channels, rngs=rngs)


def switch_conv_check(repeats: int = 5) -> dict:
    """CPU ms of one 3x3 conv's gradient (64x16x16x16) at top level and inside
    ``lax.switch``, with JAX's own VJP and with :func:`same_conv`'s."""
    x = jax.random.normal(jax.random.key(0), (64, 16, 16, 16))
    w = 0.1 * jax.random.normal(jax.random.key(1), (3, 3, 16, 16))
    out = {}
    for conv_name, conv in (("lax", _conv), ("same_conv", same_conv)):
        for where in ("top", "switch"):
            def loss(w, x, i, conv=conv, where=where):
                if where == "top":
                    y = conv(x, w)
                else:
                    y = jax.lax.switch(i, [lambda w, x: conv(x, w), lambda w, x: x], w, x)
                return jnp.sum(y ** 2)

            f = jax.jit(jax.grad(loss, (0, 1)))
            jax.block_until_ready(f(w, x, 0))
            c0 = time.process_time()
            for _ in range(repeats):
                r = f(w, x, 0)
            jax.block_until_ready(r)
            out[f"{conv_name}_{where}_ms"] = round((time.process_time() - c0) / repeats * 1e3, 1)
    return out


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


def supernet_space(config: nb201.NetConfig, seed: int = 0, conv: str = "nnx") -> nas.Space:
    """The NB-201 search space as a template a supernet can share (6 decisions); ``conv=
    "canonical"`` uses :class:`CanonicalReLUConvBN` for the edge convolutions."""
    op_fn = {"nnx": edge_op, "canonical": canonical_edge_op}[conv]
    rngs = nnx.Rngs(seed)
    blocks, c = [], config.channels
    for stage in range(config.num_stages):
        if stage > 0:
            blocks.append(nas.deferred(nb201.ResidualReduction)(c, 2 * c, rngs=rngs))
            c *= 2
        for _ in range(config.cells_per_stage):
            blocks.append(nas.deferred(SearchCell)([
                nas.deferred(op_fn)(nas.oneof(list(nb201.OPS), name=nb201.edge_name(e)), c,
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
    def __init__(self, name, config, num_steps, data, conv="nnx"):
        space = supernet_space(config, conv=conv)
        self.algo = jax_algorithm(name, ws.Supernet(space), num_steps)
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


def timed(fn, *a, **kw):
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn(*a, **kw)
    return out, time.perf_counter() - w0, time.process_time() - c0


def bench(name, args, config, jdata, tdata) -> dict:
    """One algorithm: build + first step of every side, then interleaved timed blocks."""
    num_steps = 1 + args.steps * args.rounds
    load0 = os.getloadavg()[0]
    row = {"algorithm": name}
    runners = {}
    for conv in args.conv:
        side = "jax" if conv == "nnx" else f"jax_{conv}"
        runners[side], bw, _ = timed(JaxRunner, name, config, num_steps, jdata, conv=conv)
        _, fw, fc = timed(runners[side].run, 1)
        row.update({f"{side}_build_s": round(bw, 2), f"{side}_first_step_s": round(fw, 2),
                    f"{side}_first_step_cpu_s": round(fc, 2)})
    if torch is not None:
        runners["torch"], _, _ = timed(TorchRunner, name, config, num_steps, tdata)
        _, tw, _ = timed(runners["torch"].run, 1)
        row["torch_first_step_s"] = round(tw, 3)
    rates = {side: ([], []) for side in runners}
    for r in range(args.rounds):
        order = list(runners.items())
        if r % 2:
            order.reverse()
        for side, runner in order:
            _, w, c = timed(runner.run, args.steps)
            rates[side][0].append(args.steps / w)
            rates[side][1].append(args.steps / c)
    for side, (wall, cpu) in rates.items():
        row[f"{side}_steps_per_s"] = round(statistics.median(wall), 3)
        row[f"{side}_steps_per_cpu_s"] = round(statistics.median(cpu), 3)
    if "torch" in runners:
        for side in runners:
            if side != "torch":
                row[f"{side}_over_torch_cpu"] = round(
                    row[f"{side}_steps_per_cpu_s"] / row["torch_steps_per_cpu_s"], 2)
                row[f"{side}_over_torch_wall"] = round(
                    row[f"{side}_steps_per_s"] / row["torch_steps_per_s"], 2)
    row["jax_compiles"] = {side: runner.compile_count() for side, runner in runners.items()
                           if side != "torch"}
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
    ap.add_argument("--conv", default="nnx",
                    help="JAX sides, comma-separated: nnx (the template as a user writes it), "
                         "canonical (edge convs with same_conv's canonical-layout VJP)")
    ap.add_argument("--no-check", action="store_true", help="skip the switch-conv check")
    ap.add_argument("--keep-freed-memory", action="store_true",
                    help="nas.weight_sharing.host_memory.keep_freed_memory() first (glibc keeps "
                         "freed memory: no page faults on XLA's per-call buffers; whole process)")
    ap.add_argument("--json", default=None, help="also write the rows to this file")
    args = ap.parse_args(argv)
    args.conv = [c for c in args.conv.split(",") if c]
    for c in args.conv:
        if c not in ("nnx", "canonical"):
            ap.error(f"--conv: {c!r} is not nnx or canonical")
    names = [a for a in args.algorithms.split(",") if a]
    for a in names:
        if a not in ALGORITHMS:
            ap.error(f"--algorithms: {a!r} is not one of {ALGORITHMS}")
    if args.threads == 1 and torch is not None:
        torch.set_num_threads(1)
        torch.set_num_interop_threads(1)
    kept = host_memory.keep_freed_memory() if args.keep_freed_memory else False
    config = nb201.NetConfig(channels=args.channels, cells_per_stage=args.cells_per_stage)
    pairs, data_name = batches(args)
    jdata = as_jax(pairs)
    tdata = as_torch(pairs) if torch is not None else None
    header = {"benchmark": "weight_sharing", "data": data_name, "batch": args.batch,
              "resolution": args.resolution, "net": config.kwargs(), "threads": args.threads,
              "torch_threads": torch.get_num_threads() if torch is not None else None,
              "torch": torch.__version__ if torch is not None else None,
              "jax": jax.__version__, "device": str(jax.devices()[0]),
              "xla_flags": os.environ.get("XLA_FLAGS", ""), "nproc": os.environ.get("NPROC"),
              "keep_freed_memory": kept,
              "cpus": os.cpu_count(),
              "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="minutes")}
    print(json.dumps(header), flush=True)
    if not args.no_check:
        check = {"switch_conv_grad_cpu_ms": switch_conv_check()}
        header.update(check)
        print(json.dumps(check), flush=True)
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
