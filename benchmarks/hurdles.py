"""Hurdles: demo search (FEC off) with and without a hurdle, same seeds, side by side.

    python benchmarks/hurdles.py --seeds 0 1 --wall 120 --target 0.999

Each run evolves on the demo preset's 10 search tasks (redrawn per seed) until the best
search fitness reaches ``--target`` or ``--wall`` seconds pass; prints one JSON line per run
with wall and CPU seconds (this process, all threads), individuals, train steps spent and
avoided, and the first time each fitness level was reached. Time to solution here is on the
search tasks (not the reference's selection protocol); the first run pays the compiles, so
a warm-up generation of each configuration runs first and is not timed.
"""

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

import jax  # noqa: E402
import numpy as np  # noqa: E402

from evojax_zero import experiment  # noqa: E402
from evojax_zero.search.hurdles import HurdleConfig, HurdleSearch  # noqa: E402
from evojax_zero.search.loop import Search  # noqa: E402

LEVELS = (0.9, 0.99, 0.999, 0.9999)


def run(seed, hurdle, wall, target, population, batch):
    cfg = experiment.preset("demo", population_size=population, batch_size=batch, fec=False)
    t = cfg.search_tasks.build(np.random.default_rng([seed, 0]))
    s = Search(cfg.search, t) if hurdle is None else HurdleSearch(cfg.search, t, hurdle)
    t0, c0 = time.time(), time.process_time()
    st = s.init(jax.random.key(seed))
    reached = {}
    while True:
        best = Search.stats(st)["best"]
        for lv in LEVELS:
            if best >= lv and lv not in reached:
                reached[lv] = (round(time.time() - t0, 1), s.counters.train_steps)
        if best >= target or time.time() - t0 > wall:
            break
        st = s.generation(st)
    hc = getattr(s, "hurdle_counters", None)
    return {"bench": "hurdles_demo", "seed": seed,
            "hurdle": None if hurdle is None else str(hurdle),
            "solved": best >= target, "best": best,
            "wall_s": round(time.time() - t0, 1), "cpu_s": round(time.process_time() - c0, 1),
            "individuals": s.counters.individuals, "train_steps": s.counters.train_steps,
            "reached_s_steps": {str(k): v for k, v in reached.items()},
            "hurdle_counters": None if hc is None else hc.to_dict(),
            "population": population, "batch": batch, "load1": round(os.getloadavg()[0], 1)}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--wall", type=float, default=120.0)
    p.add_argument("--target", type=float, default=0.999)
    p.add_argument("--population", type=int, default=1000)
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--hurdle-tasks", type=int, default=2)
    p.add_argument("--percentile", type=float, default=75.0)
    a = p.parse_args()
    hurdle = HurdleConfig(num_tasks=a.hurdle_tasks, percentile=a.percentile)
    for h in (None, hurdle):  # warm-up: compile both configurations
        run(0, h, 0.0, 2.0, a.population, a.batch)
    for seed in a.seeds:
        for h in (None, hurdle):
            print(json.dumps(run(seed, h, a.wall, a.target, a.population, a.batch)), flush=True)


if __name__ == "__main__":
    main()
