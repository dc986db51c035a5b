"""Does DARTS collapse on the NB-201-style benchmark with long search, and does GDAS avoid it?

Searches the benchmark's own space, unchanged (``nb201.space(net)``, the committed
ground-truth table's ``NetConfig``), on the table's protocol (``ground_truth.protocol``:
Fashion-MNIST at the table's resolution; weights train on the training split, the
architecture on the validation split, batch ``--batch``) with DARTS (first order, or
``--order 2``) or GDAS at the published defaults, for ``--epochs`` epochs of the training
split. Logged every ``--log-every`` steps: the collapse diagnostics of
``nas.weight_sharing`` (share of parameter-free ops in the derived cell, mean entropy of
the architecture distribution, training/validation loss) and, every ``--hessian-every``
steps, the dominant eigenvalue of the validation loss' Hessian w.r.t. alpha. At
``--checkpoints`` evenly spaced points the derived cell is recorded; after the search
each distinct derived cell gets its stand-alone test accuracy and rank (the table's mean
when the cell is in the table, else ``ground_truth.train_like``: same protocol and seeds).

One process per method (run them side by side), each writing ``<out>/<method>.json``;
``--plot`` draws every JSON given into one png with ``nas.weight_sharing``'s diagnostics::

    OPENBLAS_NUM_THREADS=1 python benchmarks/weight_sharing_collapse.py --method darts \\
        --epochs 50 --out runs/collapse
    python benchmarks/weight_sharing_collapse.py --plot runs/collapse/{darts,gdas}.json \\
        --png docs/weight_sharing_collapse.png
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from nas import weight_sharing as ws  # noqa: E402
from nas.benchmarks import ground_truth as gt  # noqa: E402
from nas.benchmarks import nb201  # noqa: E402

METHODS = ("darts", "gdas")


def batch_fn(data, batch: int, seed: int):
    """``i -> (train batch, valid batch)``: shuffled epochs of each split (drop last)."""
    rng_t, rng_v = np.random.default_rng(seed), np.random.default_rng(seed + 1)
    xt, yt = jnp.asarray(data.x_train), jnp.asarray(data.y_train)
    xv, yv = jnp.asarray(data.x_valid), jnp.asarray(data.y_valid)
    nt, nv = len(yt) // batch, len(yv) // batch
    perms: dict = {}

    def idx(split, rng, n, size, i):
        e = i // n
        if (split, e) not in perms:
            perms[(split, e)] = rng.permutation(size)[: n * batch]
        return perms[(split, e)][(i % n) * batch:(i % n + 1) * batch]

    def batches(i):
        it, iv = idx("t", rng_t, nt, len(yt), i), idx("v", rng_v, nv, len(yv), i)
        return (xt[it], yt[it]), (xv[iv], yv[iv])

    return batches, nt


def make_algo(method: str, supernet: ws.Supernet, steps: int, order: int):
    if method == "darts":
        return ws.Darts(supernet, num_steps=steps, order=order)
    if method == "gdas":
        return ws.Gdas(supernet, num_steps=steps)
    raise ValueError(f"--method must be one of {METHODS}, got {method!r}")


def probs_of(algo, state) -> np.ndarray:
    alpha = np.asarray(algo.fns.alpha(state.arch), np.float64)
    p = np.exp(alpha - alpha.max(1, keepdims=True))
    return p / p.sum(1, keepdims=True)


def standalone(table: gt.Table, cell, cache: dict) -> tuple[float, bool]:
    """(test accuracy, from the table?) of a cell; ``cache`` maps arch strings to both."""
    arch = nb201.arch_string(cell)
    if arch not in cache:
        try:
            cache[arch] = (table.accuracy(np.asarray(cell)), True)
        except ValueError:
            cache[arch] = (float(np.mean(gt.train_like(table, np.asarray(cell))["test_acc"])),
                           False)
    return tuple(cache[arch])


def fill_standalone(res: dict, table: gt.Table, cache: dict | None = None,
                    save=None) -> dict:
    """Stand-alone test accuracy, rank and parameter-free edges of each checkpoint's cell
    (``cache``: arch string -> result, shared across runs; ``save(cache)`` after each)."""
    w1, c1 = time.time(), time.process_time()
    cache = {} if cache is None else cache
    for cp in res["checkpoints"]:
        acc, in_table = standalone(table, cp["cell"], cache)
        if save is not None:
            save(cache)
        cp.update(test_acc=round(acc, 4), in_table=in_table, rank=table.rank(acc),
                  param_free_edges=sum(nb201.OPS[v] in nb201.PARAMETER_FREE
                                       for v in cp["cell"]))
    res.update(standalone_cpu_s=round(time.process_time() - c1, 1),
               standalone_wall_s=round(time.time() - w1, 1),
               complete=res["checkpoints"][-1]["step"] == res["steps"])
    return res


def search(args, table: gt.Table, save) -> dict:
    """The search; ``save(res)`` after every checkpoint (a killed run keeps what it did)."""
    data, net, _ = gt.protocol(table)
    space = nb201.space(net, seed=args.seed)
    batches, per_epoch = batch_fn(data, args.batch, args.seed)
    steps = args.epochs * per_epoch
    bounds = np.linspace(0, steps, args.checkpoints + 1).round().astype(int)[1:]
    load0 = os.getloadavg()
    w0, c0 = time.time(), time.process_time()
    algo = make_algo(args.method, ws.Supernet(space, seed=args.seed), steps, args.order)
    key = jax.random.key(args.seed)
    state, history, checkpoints, start = None, [], [], 0
    res = {"method": args.method, "order": args.order if args.method == "darts" else None,
           "seed": args.seed, "epochs": args.epochs, "steps": steps, "batch": args.batch,
           "steps_per_epoch": per_epoch, "net": net.kwargs(), "data": data.name,
           "log_every": args.log_every, "hessian_every": args.hessian_every,
           "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="minutes"),
           "jax": jax.__version__, "complete": False,
           "checkpoints": checkpoints, "history": history}
    for end in bounds:
        seg = int(end - start)

        def seg_batches(i, start=start):
            return batches(start + i)

        # segments start at multiples of log_every/hessian_every, so the logging cadence
        # is that of one run; the step keys are fold_in(key, global step) as in ws.run
        state, hist = ws.run(algo, seg_batches, seg, key=jax.random.fold_in(key, start),
                             state=state if state is not None else algo.init(),
                             log_every=args.log_every, hessian_every=args.hessian_every)
        for h in hist:
            h["step"] += start
            h["epoch"] = round(h["step"] / per_epoch, 3)
        history.extend(hist)
        cell = [int(v) for v in np.asarray(algo.derive(state).ints)]
        checkpoints.append({"step": int(end), "epoch": round(int(end) / per_epoch, 2),
                            "cell": cell, "arch": nb201.arch_string(cell),
                            "probs": np.round(probs_of(algo, state), 3).tolist(),
                            "cpu_s": round(time.process_time() - c0, 1),
                            "wall_s": round(time.time() - w0, 1)})
        res.update(search_cpu_s=round(time.process_time() - c0, 1),
                   search_wall_s=round(time.time() - w0, 1),
                   loadavg=[[round(v, 2) for v in load0],
                            [round(v, 2) for v in os.getloadavg()]])
        save(res)
        print(json.dumps({"method": args.method, **checkpoints[-1], **hist[-1]}), flush=True)
        start = int(end)
    res["complete"] = True
    return res


def plot(paths, png: str) -> None:
    """One row per method: ``ws.plot``'s three diagnostics plus the checkpoints' test
    accuracy, on one figure."""
    import matplotlib  # noqa: PLC0415 - plotting only

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    runs = [json.loads(pathlib.Path(p).read_text()) for p in paths]
    fig, axes = plt.subplots(1, 4, figsize=(17, 3.4))
    keys = ("param_free_share", "entropy", "hessian_eigenvalue")
    for run in runs:
        label = run["method"] + (f" (order {run['order']})" if run.get("order") else "")
        tmp = ws.plot(run["history"])  # the library's plot, per run; its lines copied over
        for ax, src in zip(axes, tmp.axes, strict=False):
            for line in src.get_lines():
                xs = np.asarray(line.get_xdata(), float) / run["steps_per_epoch"]
                ax.plot(xs, line.get_ydata(), label=label,
                        marker="." if src.get_title() == "hessian_eigenvalue" else None)
        plt.close(tmp)
        cps = [c for c in run["checkpoints"] if "test_acc" in c]
        axes[3].plot([c["epoch"] for c in cps], [c["test_acc"] for c in cps], marker="o",
                     label=label)
    for ax, title in zip(axes, (*keys, "derived cell: stand-alone test acc"), strict=True):
        ax.set_title(title)
        ax.set_xlabel("epoch")
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(png, dpi=90)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--method", default="darts", choices=METHODS)
    ap.add_argument("--order", type=int, default=1, choices=(1, 2))
    ap.add_argument("--epochs", type=int, default=50)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--log-every", type=int, default=8)
    ap.add_argument("--hessian-every", type=int, default=64,
                    help="a multiple of --log-every (the driver computes it at log steps)")
    ap.add_argument("--checkpoints", type=int, default=5)
    ap.add_argument("--table", default=None, help="ground-truth table (default: committed)")
    ap.add_argument("--out", default="runs/weight_sharing_collapse")
    ap.add_argument("--plot", nargs="+", default=None, help="JSON files to plot")
    ap.add_argument("--standalone", nargs="+", default=None,
                    help="runs' JSON: write <name>.filled.json with the checkpoints' "
                         "stand-alone accuracy (cached in <out>/standalone_cache.json)")
    ap.add_argument("--png", default="docs/weight_sharing_collapse.png")
    args = ap.parse_args(argv)
    if args.plot:
        plot(args.plot, args.png)
        return 0
    if args.hessian_every % args.log_every:
        ap.error("--hessian-every must be a multiple of --log-every")
    table = gt.load_table(args.table)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cache_path = out / "standalone_cache.json"
    cache = json.loads(cache_path.read_text()) if cache_path.exists() else {}

    def save_cache(c):
        cache_path.write_text(json.dumps(c))

    if args.standalone:  # fill in (killed or running) runs' checkpoints, into copies
        for src in args.standalone:
            res = fill_standalone(json.loads(pathlib.Path(src).read_text()), table, cache,
                                  save_cache)
            pathlib.Path(src).with_suffix(".filled.json").write_text(json.dumps(res))
    else:
        path = out / f"{args.method}.json"
        res = search(args, table, lambda r: path.write_text(json.dumps(r)))
        res = fill_standalone(res, table, cache, save_cache)
        path.write_text(json.dumps(res))
    print(json.dumps({k: v for k, v in res.items() if k != "history"}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
