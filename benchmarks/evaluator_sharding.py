"""Native evaluator on a multi-device mesh: individuals per second on 1, 2, 4, 8 devices.

The programs (and their keys) are sharded along the population axis; the kernel's sharding
rule (``evojax_zero.native``'s ``custom_partitioning``) makes each device evaluate its own
rows. One JSON line per device count: wall and process CPU time of the best of ``--repeats``
calls, evaluations per second and per CPU-second, the load average, and whether the fitness
equals the one-device result bit for bit. On CPU, devices are host threads
(``--xla_force_host_platform_device_count``), so the speed-up is bounded by the cores.

    python benchmarks/evaluator_sharding.py --config demo --population 4096
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                           + " --xla_force_host_platform_device_count=8")

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

import jax  # noqa: E402
import numpy as np  # noqa: E402
from jax.sharding import Mesh, NamedSharding, PartitionSpec  # noqa: E402

from evojax_zero import program as P  # noqa: E402
from evojax_zero.evaluate.evaluator import EvalConfig, Evaluator  # noqa: E402

_spec = importlib.util.spec_from_file_location(
    "_bench_evaluator", os.path.join(os.path.dirname(os.path.abspath(__file__)), "evaluator.py"))
_bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_bench)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default="demo", choices=list(_bench.CONFIGS))
    ap.add_argument("--population", type=int, default=4096)
    ap.add_argument("--devices", default="1,2,4,8")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    spec_kw, sizes, make_tasks = _bench.CONFIGS[args.config]
    spec = P.ProgramSpec(**spec_kw, max_setup_size=sizes[0], max_predict_size=sizes[1],
                         max_learn_size=sizes[2])
    tasks = make_tasks()
    progs = _bench.random_programs(spec, sizes, args.population, 0)
    ev = Evaluator(spec, EvalConfig(), backend="native")
    keys = jax.random.split(jax.random.key(0), args.population)
    fn = jax.jit(ev._per_task)  # the jitted core; sharding comes from the inputs
    reference = None
    for n in [int(x) for x in args.devices.split(",")]:
        mesh = Mesh(np.array(jax.devices()[:n]), ("pop",))
        rows = NamedSharding(mesh, PartitionSpec("pop"))
        p_sh = jax.device_put(progs, rows)
        k_sh = jax.device_put(keys, rows)
        t_sh = jax.device_put(tasks, NamedSharding(mesh, PartitionSpec()))
        out = jax.block_until_ready(fn(p_sh, t_sh, k_sh))  # compile
        best = None
        for _ in range(args.repeats):
            c0, t0 = time.process_time(), time.perf_counter()
            out = jax.block_until_ready(fn(p_sh, t_sh, k_sh))
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            best = (wall, cpu) if best is None or wall < best[0] else best
        fitness = np.asarray(out)
        reference = fitness if reference is None else reference
        evals = args.population * tasks.num_tasks
        print(json.dumps({
            "config": args.config, "devices": n, "population": args.population,
            "cores": len(os.sched_getaffinity(0)), "load": round(os.getloadavg()[0], 2),
            "out_sharding": str(out.sharding.spec),
            "shards": len(out.addressable_shards),
            "seconds": round(best[0], 4), "cpu_seconds": round(best[1], 4),
            "individuals_per_s": round(args.population / best[0], 1),
            "evals_per_s": round(evals / best[0], 1),
            "evals_per_cpu_s": round(evals / best[1], 1),
            "bit_equal_to_1_device": bool(np.array_equal(fitness, reference)),
        }), flush=True)


if __name__ == "__main__":
    main()
