"""Train a sample of NB-201 cells stand-alone and store the ground-truth table.

    OPENBLAS_NUM_THREADS=1 python benchmarks/nb201_ground_truth.py            # committed table
    python benchmarks/nb201_ground_truth.py --archs 20 --seeds 1 --out /tmp/t.json  # quick

Architectures are trained in groups of ``--group`` (one compiled call each: lax.map over
the group's architectures, vmap over seeds); the table is rewritten after every group, so
an interrupted run keeps what it finished. Writes JSON (see nas.benchmarks.ground_truth).
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import time

import jax
import numpy as np

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
    p.add_argument("--resolution", type=int, default=14)
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
    p.add_argument("--out", default=os.path.join(gt.TABLES_DIR, gt.DEFAULT_TABLE))
    args = p.parse_args(argv)

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
    seeds = list(range(args.seeds))
    print(data.describe(), net, train, f"{len(dnas)} archs x {len(seeds)} seeds",
          sep="\n", flush=True)

    meta = {"dataset": data.name, "data": {**kw, "split_seed": 0, "image_shape":
                                           list(data.image_shape)},
            "net": net.kwargs(), "train": {k: getattr(train, k) for k in train.__annotations__},
            "seeds": seeds, "sample_seed": args.sample_seed,
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


if __name__ == "__main__":
    raise SystemExit(main())
