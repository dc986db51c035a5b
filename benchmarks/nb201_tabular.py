"""Random search and regularized evolution on the analog-nasbench NB-201 CIFAR-10 table.

    python benchmarks/nb201_tabular.py --seeds 100 --budgets 50 100 150 300

Each search maximizes the table's ``baseline_accuracy`` (CIFAR-10 test accuracy after
200 epochs; the table has no separate validation accuracy) over ``nas.benchmarks.nb201``'s
space, driven by ``nas.run_vectorized``. Prints one JSON line per (algorithm, budget):
mean/std over seeds of the best accuracy found, and how often the global optimum was found.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import jax
import numpy as np

import nas
from nas.benchmarks import analog_nasbench as anb
from nas.benchmarks import nb201


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=100)
    p.add_argument("--budgets", type=int, nargs="+", default=[50, 100, 150, 300])
    p.add_argument("--batch-size", type=int, default=10)
    p.add_argument("--population", type=int, default=10)
    p.add_argument("--tournament", type=int, default=3)
    args = p.parse_args(argv)
    if any(b % args.batch_size for b in args.budgets):
        raise ValueError(f"--budgets must be multiples of --batch-size ({args.batch_size})")

    table = anb.load()
    objective = table.objective("baseline_accuracy")
    best_dna, best_value = table.best()
    space = nb201.space()
    algorithms = {
        "random": nas.RandomSearch(space, batch_size=args.batch_size),
        "evolution": nas.RegularizedEvolution(space, population_size=args.population,
                                              tournament_size=args.tournament,
                                              batch_size=args.batch_size),
    }
    steps = max(args.budgets) // args.batch_size
    print(json.dumps({"optimum": best_value, "optimum_arch": nb201.arch_string(best_dna),
                      "table_mean": float(table.metrics["baseline_accuracy"].mean())}))
    for name, algo in algorithms.items():
        t, c = time.time(), time.process_time()
        curves = np.stack([np.asarray(nas.run_vectorized(
            algo, objective, jax.random.key(seed), num_steps=steps).best_so_far)
            for seed in range(args.seeds)]) * 100  # [seeds, steps], percent
        wall, cpu = time.time() - t, time.process_time() - c
        for b in args.budgets:
            best = curves[:, b // args.batch_size - 1]
            print(json.dumps({
                "algorithm": name, "budget": b, "seeds": args.seeds,
                "best_mean": round(float(best.mean()), 3), "best_std": round(float(best.std()), 3),
                "found_optimum": round(float(np.mean(best >= best_value - 1e-6)), 3),
                "wall_s": round(wall, 1), "cpu_s": round(cpu, 1),
                "loadavg_1m": round(os.getloadavg()[0], 2)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
