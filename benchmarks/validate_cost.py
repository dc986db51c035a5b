"""Cost of the Evaluator's boundary check (program.validate) against the evaluation itself.

    OPENBLAS_NUM_THREADS=1 python benchmarks/validate_cost.py [xla|native ...]

Prints CPU and wall milliseconds per call for 1000 demo-sized programs on 10 tasks.
"""

import os
import sys
import time

import jax

from evojax_zero.evaluate.evaluator import Evaluator
from evojax_zero.experiment import presets
from evojax_zero.program import programs as P
from evojax_zero.program import tasks as T
from evojax_zero.search import initial


def _per_call(fn, n):
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n * 1e3, (time.process_time() - c0) / n * 1e3


def main(backends):
    cfg = presets.preset("demo").search
    spec = cfg.spec
    pop = initial.initial_population(cfg.initial_population, spec, cfg.population_size,
                                     cfg.sizes_init, jax.random.key(0), cfg.mutation)
    tasks = T.linear_regression(10, 4, 100, 100)
    key = jax.random.key(0)
    wc, cc = _per_call(lambda: P.validate(spec, pop), 1)  # compiles the jitted reduction
    print(f"validate, first call (compile): {wc:.0f} ms wall, {cc:.0f} ms CPU")
    wv, cv = _per_call(lambda: P.validate(spec, pop), 50)
    print(f"validate P={pop.batch_shape[0]}: {wv:.2f} ms wall, {cv:.2f} ms CPU")
    for be in backends:
        ev = Evaluator(spec, backend=be)
        ev(pop, tasks, key).block_until_ready()
        we, ce = _per_call(lambda ev=ev: ev(pop, tasks, key).block_until_ready(), 5)
        print(f"{be}: Evaluator call {we:.1f} ms wall, {ce:.1f} ms CPU; validate is "
              f"{100 * cv / ce:.2f} % of its CPU")
    print(f"load {os.getloadavg()}")


if __name__ == "__main__":
    main(sys.argv[1:] or ["xla"])
