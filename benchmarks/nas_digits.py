"""Case study: search the digits ConvNet space, retrain the winner, compare to default.

    python benchmarks/nas_digits.py [--trials 16] [--search-epochs 5] [--final-epochs 20]

Search: regularized evolution maximizing validation accuracy after a short training.
The search line reports trials per second, wall and process CPU seconds (all threads),
the load average and how many trials repeated an architecture seen before (the digits
trainer compiles once per architecture; ``lr`` is not part of the architecture).
``--recompile`` clears the trainer cache before every trial (each trial compiles, as
before the cache existed); ``--compare`` runs the search both ways, one after the other.
Then the best config and the hand-designed default are retrained on train+valid for
``--final-epochs`` with several seeds and scored on the held-out test split
(``--final-epochs 0`` skips this).
"""

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

import nas  # noqa: E402
from nas.benchmarks import digits  # noqa: E402


def _arch(cfg: dict) -> tuple:
    return tuple(map(tuple, cfg["convs"])), cfg["act"], cfg["dense"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=16)
    ap.add_argument("--search-epochs", type=int, default=5)
    ap.add_argument("--final-epochs", type=int, default=20)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--population", type=int, default=8)
    ap.add_argument("--recompile", action="store_true")
    ap.add_argument("--compare", action="store_true")
    args = ap.parse_args()
    digits.data()  # load the data set outside the timed search
    modes = [True, False] if args.compare else [args.recompile]
    for recompile in modes:
        best = search(args, recompile)
    if args.final_epochs < 1:
        return
    for name, cfg in (("default", digits.DEFAULT), ("searched", best.value)):
        tests = [digits.evaluate(cfg, epochs=args.final_epochs, seed=s,
                                 train_on_valid=True)["test"] for s in range(args.seeds)]
        print(json.dumps({"model": name, "config": str(cfg), "params": digits.param_count_of(cfg),
                          "final_epochs": args.final_epochs, "seeds": args.seeds,
                          "test_acc_mean": round(float(np.mean(tests)), 4),
                          "test_acc_std": round(float(np.std(tests)), 4)}), flush=True)


def search(args, recompile: bool):
    space = digits.space()
    digits._trainer.cache_clear()

    def objective(cfg):
        if recompile:
            digits._trainer.cache_clear()
        return digits.evaluate(cfg, epochs=args.search_epochs)["valid"]

    load0 = os.getloadavg()[0]
    compiles0 = digits.TRACE_COUNTS["train"]
    t0, c0 = time.perf_counter(), time.process_time()
    algo = nas.RegularizedEvolution(space, population_size=args.population, tournament_size=3)
    tuner = nas.search(objective, algo, num_trials=args.trials, seed=0, progress=False)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    best = tuner.best
    archs = [_arch(t.value) for t in tuner.history]
    print(json.dumps({"search": "digits", "trainer_cache": not recompile, "trials": args.trials,
                      "search_epochs": args.search_epochs,
                      "best_valid": round(best.reward, 4), "best": space.decode(best.dna),
                      "distinct_architectures": len(set(archs)),
                      "compiles": digits.TRACE_COUNTS["train"] - compiles0,
                      "trials_per_s": round(args.trials / wall, 3),
                      "seconds": round(wall, 1), "cpu_seconds": round(cpu, 1),
                      "loadavg_1m": [round(load0, 2), round(os.getloadavg()[0], 2)],
                      "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="minutes")}),
          flush=True)
    return best


if __name__ == "__main__":
    main()
