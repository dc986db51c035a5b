"""Evaluator throughput: (program, task) evaluations per second per configuration.

Prints one JSON line per (configuration, backend) with config, backend, device,
population, wall and CPU seconds of the best call (CPU: ``time.process_time()``, all threads of
this process), evals_per_s, evals_per_cpu_s, instr_per_s, compile_s, the 1-minute load and the
ratio per CPU-second to the C++ reference's rate (``../shared/AUTOML_ZERO_REFERENCE.md``
section 6, 2026-12-01): demo 209k (program, task) evaluations per CPU-second; linear 29.9M
train steps = 299k evaluations of 100 steps; nonlinear 11.5k (1 task); the full 65-op
configurations are compared with the demo's 209k. Compare per CPU-second with the process
pinned to one core (``taskset -c 0``), as the reference is single-threaded.

    python benchmarks/evaluator.py                 # all configs, all available backends
    python benchmarks/evaluator.py --configs demo --population 4096 --backends xla
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

import jax  # noqa: E402

from evojax_zero import program as P  # noqa: E402
from evojax_zero.evaluate.evaluator import EvalConfig, Evaluator  # noqa: E402
from evojax_zero.program import tasks as T  # noqa: E402
from evojax_zero.search.mutation import MutationConfig, random_program  # noqa: E402

# (program, task) evaluations per CPU-second of the C++ reference (contract section 6).
REFERENCE_EVALS_PER_CPU_S = {"demo": 209_000, "linear": 299_000, "nonlinear": 11_500,
                             "full65_f4": 209_000, "full65_f16": 209_000}
DEMO_OPS = (56, 27, 2, 3, 18, 23)
ALL_OPS = tuple(range(1, 65))

# name: (spec kwargs, sizes (setup, predict, learn), task factory)
CONFIGS = {
    "demo": (dict(num_scalars=4, num_vectors=3, num_matrices=1, feature_size=4,
                  setup_ops=DEMO_OPS, predict_ops=DEMO_OPS, learn_ops=DEMO_OPS),
             (10, 2, 8), lambda: T.linear_regression(10, 4, 100, 100)),
    "linear": (dict(num_scalars=4, num_vectors=3, num_matrices=1, feature_size=4,
                    setup_ops=(56,), predict_ops=(27,), learn_ops=(2, 3, 18, 23)),
               (5, 1, 4), lambda: T.linear_regression(10, 4, 100, 100)),
    "nonlinear": (dict(num_scalars=5, num_vectors=9, num_matrices=2, feature_size=4,
                       setup_ops=(63, 64), predict_ops=(31, 16, 27),
                       learn_ops=(2, 3, 18, 25, 16, 28, 29, 39, 23, 31)),
                  (7, 4, 10), lambda: T.teacher_regression(1, 4, 1000, 100)),
    "full65_f4": (dict(num_scalars=4, num_vectors=3, num_matrices=1, feature_size=4,
                       setup_ops=ALL_OPS, predict_ops=ALL_OPS, learn_ops=ALL_OPS),
                  (10, 2, 8), lambda: T.linear_regression(10, 4, 100, 100)),
    "full65_f16": (dict(num_scalars=20, num_vectors=20, num_matrices=20, feature_size=16,
                        setup_ops=ALL_OPS, predict_ops=ALL_OPS, learn_ops=ALL_OPS),
                   (10, 2, 8), lambda: T.linear_regression(10, 16, 100, 100)),
}


def random_programs(spec: P.ProgramSpec, sizes, n: int, seed: int) -> P.Program:
    """n random programs of the given sizes over the spec's ops (the reference's
    RANDOM_ALGORITHM, via the library's own generator)."""
    config = MutationConfig(spec.setup_ops, spec.predict_ops, spec.learn_ops)
    keys = jax.random.split(jax.random.key(seed), n)
    return jax.jit(jax.vmap(lambda k: random_program(k, spec, config, sizes)))(keys)


def measure(name: str, backend: str, population: int, repeats: int) -> dict:
    spec_kw, sizes, make_tasks = CONFIGS[name]
    spec = P.ProgramSpec(**spec_kw, max_setup_size=sizes[0], max_predict_size=sizes[1],
                         max_learn_size=sizes[2])
    tasks = make_tasks()
    ev = Evaluator(spec, EvalConfig(), backend=backend)
    progs = [random_programs(spec, sizes, population, seed) for seed in range(2)]
    key = jax.random.key(0)
    t0 = time.perf_counter()
    jax.block_until_ready(ev.per_task(progs[0], tasks, key))
    compile_s = time.perf_counter() - t0
    times = []
    for r in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        jax.block_until_ready(ev.per_task(progs[(r + 1) % 2], tasks, key))
        times.append((time.perf_counter() - t0, time.process_time() - c0))
    dt, cpu = min(times)
    evals = population * tasks.num_tasks
    steps = tasks.num_train + tasks.num_valid
    instr_per_eval = sizes[0] + tasks.num_train * (sizes[1] + sizes[2]) + tasks.num_valid * sizes[1]
    evals_per_s = evals / dt
    return {
        "config": name, "backend": ev.backend, "device": str(jax.devices()[0].device_kind),
        "platform": jax.default_backend(), "cores": os.cpu_count(), "population": population,
        "tasks": tasks.num_tasks, "examples_per_eval": steps, "seconds": round(dt, 4),
        "cpu_seconds": round(cpu, 4), "threads": os.environ.get("EVOJAX_ZERO_NUM_THREADS"),
        "evals_per_s": round(evals_per_s, 1), "evals_per_cpu_s": round(evals / cpu, 1),
        "instr_per_s": round(evals_per_s * instr_per_eval),
        "instr_per_cpu_s": round(evals * instr_per_eval / cpu), "compile_s": round(compile_s, 2),
        "load": round(os.getloadavg()[0], 2),
        "reference_evals_per_cpu_s": REFERENCE_EVALS_PER_CPU_S[name],
        "ratio_to_reference_per_cpu_s": round(evals / cpu / REFERENCE_EVALS_PER_CPU_S[name], 4),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--configs", default=",".join(CONFIGS))
    ap.add_argument("--backends", default="xla,native")
    ap.add_argument("--population", type=int, default=1024)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    for name in args.configs.split(","):
        if name not in CONFIGS:
            raise ValueError(f"--configs: unknown {name!r}; choose from {list(CONFIGS)}")
        for backend in args.backends.split(","):
            try:
                row = measure(name, backend, args.population, args.repeats)
            except ValueError as e:  # backend unavailable
                row = {"config": name, "backend": backend, "skipped": str(e)}
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
