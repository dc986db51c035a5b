"""Train a sample of NB-201 cells stand-alone and store the ground-truth table.

    OPENBLAS_NUM_THREADS=1 python benchmarks/nb201_ground_truth.py            # committed table
    python benchmarks/nb201_ground_truth.py --archs 20 --seeds 1 --out /tmp/t.json  # quick

Split over processes with ``--part i --parts n --out part_i.json`` (architectures i, i+n,
...), then ``--merge part_0.json part_1.json ... --out table.json``.

Architectures are trained in groups of ``--group`` (one compiled call each: lax.map over
the group's architectures, vmap over seeds); the table is rewritten after every group, so
an interrupted run keeps what it finished. Writes JSON (see nas.benchmarks.ground_truth).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time

import jax
import numpy as np

from nas.benchmarks import analog_nasbench as anb
from nas.benchmarks import data as bdata
from nas.benchmarks import ground_truth as gt
from nas.benchmarks import nb201

# cells every table holds: NB-201's best CIFAR-10 cell, all-conv3x3, a ResNet-like cell,
# all-skip, all-pool and an all-none cell (chance)
LANDMARKS = ((3, 3, 3, 1, 3, 3), (3, 3, 3, 3, 3, 3), (3, 0, 3, 1, 0, 1), (1, 1, 1, 1, 1, 1),
             (4, 4, 4, 4, 4, 4), (0, 0, 0, 0, 0, 0))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="fashion_mnist", choices=bdata.DATASETS)
    p.add_argument("--resolution", type=int, default=7)
    p.add_argument("--train-size", type=int, default=2048)
    p.add_argument("--valid-size", type=int, default=500)
    p.add_argument("--test-size", type=int, default=1000)
    p.add_argument("--channels", type=int, default=8)
    p.add_argument("--cells-per-stage", type=int, default=1)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--eval-batch-size", type=int, default=500)
    p.add_argument("--archs", type=int, default=100)
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--sample-seed", type=int, default=0)
    p.add_argument("--group", type=int, default=10)
    p.add_argument("--chunk", type=int, default=None,
                   help="vmap this many architectures at once (GPU); default: one at a time")
    p.add_argument("--part", type=int, default=0)
    p.add_argument("--parts", type=int, default=1)
    p.add_argument("--merge", nargs="+", default=None, help="part tables to merge into --out")
    p.add_argument("--summary", action="store_true", help="summarize the table at --out")
    p.add_argument("--out", default=os.path.join(gt.TABLES_DIR, gt.DEFAULT_TABLE))
    args = p.parse_args(argv)
    if args.merge:
        return merge(args.merge, args.out)
    if args.summary:
        return summarize(args.out)

    kw = {"resolution": args.resolution, "train_size": args.train_size,
          "valid_size": args.valid_size, "test_size": args.test_size}
    if args.dataset == "digits":
        kw.pop("resolution")
    data = bdata.load_with_fallback(args.dataset, **kw)
    net = nb201.NetConfig(channels=args.channels, cells_per_stage=args.cells_per_stage,
                          in_channels=data.image_shape[-1], num_classes=data.num_classes)
    train = gt.TrainConfig(epochs=args.epochs, batch_size=args.batch_size,
                           eval_batch_size=args.eval_batch_size)
    dnas = gt.sample_cells(args.archs, seed=args.sample_seed, include=LANDMARKS)
    dnas = dnas[args.part::args.parts]
    seeds = list(range(args.seeds))
    print(data.describe(), net, train, f"{len(dnas)} archs x {len(seeds)} seeds",
          sep="\n", flush=True)

    meta = {"dataset": data.name, "data": {**kw, "split_seed": 0, "image_shape":
                                           list(data.image_shape)},
            "net": net.kwargs(), "train": {k: getattr(train, k) for k in train.__annotations__},
            "seeds": seeds, "sample_seed": args.sample_seed, "parts": args.parts,
            "command": "python " + " ".join(sys.argv),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "jax": jax.__version__, "platform": jax.devices()[0].platform}
    results = {"valid_acc": [], "test_acc": [], "train_loss": []}
    wall0, cpu0 = time.time(), time.process_time()
    for start in range(0, len(dnas), args.group):
        group = dnas[start:start + args.group]
        if len(group) < args.group:  # keep one compiled shape: pad with repeats, drop after
            group = np.concatenate([group, np.repeat(group[-1:], args.group - len(group), 0)])
        t = time.time()
        out = gt.train_architectures(group, seeds, data, net, train, chunk=args.chunk)
        n = min(args.group, len(dnas) - start)
        for k in results:
            results[k].append(out[k][:n])
        done = start + n
        meta.update({"wall_s": round(time.time() - wall0, 1),
                     "cpu_s": round(time.process_time() - cpu0, 1),
                     "loadavg_1m": round(os.getloadavg()[0], 2), "complete": done == len(dnas)})
        table = gt.make_table(dnas[:done], {k: np.concatenate(v) for k, v in results.items()},
                              net, meta)
        table.save(args.out)
        print(f"{done}/{len(dnas)} archs  group {time.time() - t:.0f}s  "
              f"wall {meta['wall_s']}s cpu {meta['cpu_s']}s load {meta['loadavg_1m']}  "
              f"valid mean {out['valid_acc'][:n].mean():.3f}", flush=True)
    best = int(np.argmax(table.mean("valid_acc")))
    print(f"best by valid: {nb201.arch_string(table.dnas[best])} "
          f"valid {table.mean('valid_acc')[best]:.4f} test {table.mean('test_acc')[best]:.4f}")
    print(f"wrote {args.out}")
    return 0


def summarize(path: str) -> int:
    """Accuracy spread, seed agreement, landmarks, and agreement with CIFAR-10 (analog)."""
    table = gt.load_table(path)
    va, te = table.mean("valid_acc"), table.mean("test_acc")
    live = np.array([nb201.reaches_output(d) for d in table.dnas])
    out = {"archs": table.num_architectures, "seeds": table.valid_acc.shape[1],
           "test_mean": round(float(te.mean()), 4), "test_median": round(float(np.median(te)), 4),
           "test_max": round(float(te.max()), 4), "disconnected": int((~live).sum()),
           "cost": {k: table.meta.get(k) for k in ("cpu_s", "wall_s", "loadavg_1m")}}
    if table.valid_acc.shape[1] >= 2:
        out["tau_seed0_vs_seed1_test"] = round(gt.kendall_tau(table.test_acc[:, 0],
                                                              table.test_acc[:, 1]), 3)
        out["seed_std_test_mean"] = round(float(table.test_acc.std(axis=1).mean()), 4)
    out["tau_valid_vs_test"] = round(gt.kendall_tau(va, te), 3)
    out["tau_params_vs_test"] = round(gt.kendall_tau(table.params, te), 3)
    top = np.argsort(-va)[:5]
    out["top5_by_valid"] = [{"arch": nb201.arch_string(table.dnas[i]),
                             "valid": round(float(va[i]), 4), "test": round(float(te[i]), 4),
                             "rank_by_test": table.rank(te[i])} for i in top]
    out["landmarks"] = {nb201.arch_string(d): round(table.accuracy(d), 4) for d in LANDMARKS
                        if any((table.dnas == d).all(axis=1))}
    if anb.available():
        cifar = np.array([float(anb.load().lookup(d)) for d in table.dnas])
        out["tau_vs_cifar10_analog"] = round(gt.kendall_tau(te, cifar), 3)
        out["tau_vs_cifar10_analog_connected"] = round(gt.kendall_tau(te[live], cifar[live]), 3)
    print(json.dumps(out, indent=1))
    return 0


def merge(paths: list[str], out: str) -> int:
    """Concatenate part tables (same configs) into one, rows in sampling order; the cost
    fields become sums (CPU) and maxima (wall) over the parts."""
    parts = [gt.load_table(p) for p in paths]
    meta = dict(parts[0].meta)
    for key in ("dataset", "data", "net", "train", "seeds", "sample_seed"):
        if any(t.meta[key] != meta[key] for t in parts):
            raise ValueError(f"part tables disagree on {key}; cannot merge")
    n = len(parts)
    order = [(i % n, i // n) for i in range(sum(t.num_architectures for t in parts))]
    pick = lambda f: np.stack([getattr(parts[a], f)[b] for a, b in order])  # noqa: E731
    meta.update({"cpu_s": round(sum(t.meta["cpu_s"] for t in parts), 1),
                 "wall_s": max(t.meta["wall_s"] for t in parts),
                 "complete": all(t.meta["complete"] for t in parts),
                 "command": [t.meta["command"] for t in parts],
                 "loadavg_1m": [t.meta["loadavg_1m"] for t in parts]})
    table = gt.Table(pick("dnas"), pick("valid_acc"), pick("test_acc"), pick("params"), meta)
    table.save(out)
    print(f"merged {len(parts)} parts, {table.num_architectures} architectures -> {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
