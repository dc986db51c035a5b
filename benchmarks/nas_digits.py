"""Case study: search the digits ConvNet space, retrain the winner, compare to default.

    python benchmarks/nas_digits.py [--trials 16] [--search-epochs 5] [--final-epochs 20]

Search: regularized evolution maximizing validation accuracy after a short training.
Then the best config and the hand-designed default are retrained on train+valid for
``--final-epochs`` with several seeds and scored on the held-out test split.
"""

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

import nas  # noqa: E402
from nas import digits  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=16)
    ap.add_argument("--search-epochs", type=int, default=5)
    ap.add_argument("--final-epochs", type=int, default=20)
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args()
    space = digits.space()
    t0 = time.perf_counter()
    algo = nas.RegularizedEvolution(space, population_size=8, tournament_size=3)
    tuner = nas.search(lambda cfg: digits.evaluate(cfg, epochs=args.search_epochs)["valid"],
                       algo, num_trials=args.trials, seed=0)
    best = tuner.best
    print(json.dumps({"search": "digits", "trials": args.trials,
                      "search_epochs": args.search_epochs,
                      "best_valid": round(best.reward, 4), "best": space.decode(best.dna),
                      "seconds": round(time.perf_counter() - t0, 1)}), flush=True)
    for name, cfg in (("default", digits.DEFAULT), ("searched", best.value)):
        tests = [digits.evaluate(cfg, epochs=args.final_epochs, seed=s,
                                 train_on_valid=True)["test"] for s in range(args.seeds)]
        print(json.dumps({"model": name, "config": str(cfg), "params": digits.param_count_of(cfg),
                          "final_epochs": args.final_epochs, "seeds": args.seeds,
                          "test_acc_mean": round(float(np.mean(tests)), 4),
                          "test_acc_std": round(float(np.std(tests)), 4)}), flush=True)


if __name__ == "__main__":
    main()
