"""Native CPU backend vs the XLA evaluator, side by side in one process.

One JSON line per (configuration, backend): config, backend, threads, device, population,
evals_per_s (wall), evals_per_cpu_s (process CPU time), instr_per_s, instr_per_cpu_s,
compile_s, the 1-minute load, and the ratio per CPU-second to the C++ reference's rate
(``benchmarks/evaluator.py``'s REFERENCE_EVALS_PER_CPU_S, from
``../shared/AUTOML_ZERO_REFERENCE.md`` section 6; pin with ``taskset -c 0`` to compare with
the single-threaded reference). Instruction
counts are nominal (setup + N_train * (predict + learn) + N_valid * predict per evaluation;
early stops make the executed count smaller). For each configuration a last line compares
the fitness of the two backends on the same programs (max |difference|, bit-equal share).

    python benchmarks/evaluator_native.py
    python benchmarks/evaluator_native.py --configs demo,full65_f4 --population 8192
    python benchmarks/evaluator_native.py --dtype float32 --threads 1,2
    python benchmarks/evaluator_native.py --configs demo,linear --thread-ab 1,2 --rounds 21
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from evojax_zero import program as P  # noqa: E402
from evojax_zero.program.ops import FIRST_OUT_ADDRESS, OP_SPECS, Kind  # noqa: E402

_spec = importlib.util.spec_from_file_location(
    "_bench_evaluator", os.path.join(os.path.dirname(os.path.abspath(__file__)), "evaluator.py"))
_bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_bench)
CONFIGS = _bench.CONFIGS  # same configurations as benchmarks/evaluator.py
REFERENCE_EVALS_PER_CPU_S = _bench.REFERENCE_EVALS_PER_CPU_S


def random_population(spec: P.ProgramSpec, sizes, n: int, seed: int, dtype) -> P.Program:
    """n random full-size programs over the spec's ops (vectorised NumPy)."""
    rng = np.random.default_rng(seed)
    fns = {}
    for fn, size in zip(P.FUNCTION_NAMES, sizes, strict=True):
        L = spec.max_size(fn)
        allowed = np.array([o for o in spec.ops(fn) if o != 0] or [0], np.int32)
        op = np.zeros((n, L), np.int32)
        op[:, :size] = rng.choice(allowed, size=(n, size))
        addr = np.zeros((n, L, 3), np.int32)
        for slot, attr in enumerate(("in1", "in2", "out")):
            for kind in (Kind.SCALAR, Kind.VECTOR, Kind.MATRIX):
                lo = FIRST_OUT_ADDRESS[kind] if attr == "out" else 0
                hi = spec.num_addresses(kind)
                mask = np.isin(op, [int(s.op) for s in OP_SPECS if getattr(s, attr) == kind])
                mask[:, size:] = False
                addr[..., slot] = np.where(mask, rng.integers(lo, hi, size=(n, L)),
                                           addr[..., slot])
        data = np.stack([rng.uniform(-1, 1, (n, L)), rng.uniform(0, 1, (n, L)),
                         rng.uniform(0, 1, (n, L)), rng.uniform(-1, 1, (n, L))], -1)
        data[..., 1:] = data[..., 1:].astype(np.float32)
        data[:, size:] = 0.0
        fns[fn] = P.Function(op=jnp.asarray(op), addr=jnp.asarray(addr),
                             data=jnp.asarray(data, dtype),
                             size=jnp.full((n,), size, jnp.int32))
    return P.Program(**fns)


def _time(fn, repeats: int):
    best = None
    for _ in range(repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        out = jax.block_until_ready(fn())
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        if best is None or wall < best[0]:
            best = (wall, cpu)
    return best, out


def measure(name, backend, threads, progs, repeats, dtype, tasks, spec, sizes):
    from evojax_zero.evaluate.evaluator import EvalConfig, Evaluator

    if threads is not None:
        os.environ["EVOJAX_ZERO_NUM_THREADS"] = str(threads)
    ev = Evaluator(spec, EvalConfig(), backend=backend)
    population = progs.batch_shape[0]
    key = jax.random.key(0)
    t0 = time.perf_counter()
    jax.block_until_ready(ev.per_task(progs, tasks, key))
    compile_s = time.perf_counter() - t0
    (wall, cpu), out = _time(lambda: ev.per_task(progs, tasks, key), repeats)
    evals = population * tasks.num_tasks
    ipe = sizes[0] + tasks.num_train * (sizes[1] + sizes[2]) + tasks.num_valid * sizes[1]
    row = {
        "config": name, "backend": ev.backend, "threads": threads,
        "device": jax.devices()[0].device_kind, "cores": len(os.sched_getaffinity(0)),
        "dtype": jnp.dtype(dtype).name, "population": population, "tasks": tasks.num_tasks,
        "seconds": round(wall, 4), "cpu_seconds": round(cpu, 4),
        "evals_per_s": round(evals / wall, 1), "evals_per_cpu_s": round(evals / cpu, 1),
        "instr_per_s": round(evals * ipe / wall), "instr_per_cpu_s": round(evals * ipe / cpu),
        "compile_s": round(compile_s, 2), "load": round(os.getloadavg()[0], 2),
        "ratio_to_reference_per_cpu_s": round(evals / cpu / REFERENCE_EVALS_PER_CPU_S[name], 3),
    }
    return row, np.asarray(out)


def thread_ab(name, counts, rounds, population, dtype):
    """CPU-seconds per evaluation at each thread count, calls interleaved (1, 2, 1, 2, ...)
    in one process, so load drifts hit every count alike; prints one line per count with the
    median and quartiles over `rounds` calls and the ratio of medians to the first count."""
    from evojax_zero.evaluate.evaluator import EvalConfig, Evaluator

    spec_kw, sizes, make_tasks = CONFIGS[name]
    spec = P.ProgramSpec(**spec_kw, max_setup_size=sizes[0], max_predict_size=sizes[1],
                         max_learn_size=sizes[2])
    tasks = make_tasks()
    tasks = tasks.replace(train_x=tasks.train_x.astype(dtype), train_y=tasks.train_y.astype(dtype),
                          valid_x=tasks.valid_x.astype(dtype), valid_y=tasks.valid_y.astype(dtype))
    progs = random_population(spec, sizes, population, 1, dtype)
    ev = Evaluator(spec, EvalConfig(), backend="native")
    key = jax.random.key(0)
    jax.block_until_ready(ev.per_task(progs, tasks, key))
    cpu = {c: [] for c in counts}
    wall = {c: [] for c in counts}
    loads = []
    for _ in range(rounds):
        for c in counts:
            os.environ["EVOJAX_ZERO_NUM_THREADS"] = str(c)  # read by the kernel at each call
            c0, t0 = time.process_time(), time.perf_counter()
            jax.block_until_ready(ev.per_task(progs, tasks, key))
            wall[c].append(time.perf_counter() - t0)
            cpu[c].append(time.process_time() - c0)
        loads.append(os.getloadavg()[0])
    evals = population * tasks.num_tasks
    base = float(np.median(cpu[counts[0]]))
    for c in counts:
        q1, med, q3 = np.percentile(cpu[c], [25, 50, 75])
        print(json.dumps({
            "config": name, "threads": c, "population": population, "rounds": rounds,
            "dtype": jnp.dtype(dtype).name, "cpu_s_median": round(float(med), 4),
            "cpu_s_q1_q3": [round(float(q1), 4), round(float(q3), 4)],
            "wall_s_median": round(float(np.median(wall[c])), 4),
            "us_cpu_per_eval": round(1e6 * float(med) / evals, 3),
            "cpu_ratio_to_first": round(float(med) / base, 3),
            "load_min_max": [round(min(loads), 1), round(max(loads), 1)],
        }), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--configs", default=",".join(CONFIGS))
    ap.add_argument("--population", type=int, default=4096, help="native population")
    ap.add_argument("--xla-population", type=int, default=256,
                    help="XLA population (the XLA interpreter is much slower on CPU)")
    ap.add_argument("--threads", default="1,default",
                    help="native thread counts to time ('default' = all available cores)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--dtype", default="float64", choices=("float64", "float32"))
    ap.add_argument("--no-xla", action="store_true")
    ap.add_argument("--thread-ab", default="",
                    help="thread counts (e.g. 1,2) to compare in CPU-s per evaluation, "
                         "interleaved over --rounds calls; only this is measured")
    ap.add_argument("--rounds", type=int, default=21)
    args = ap.parse_args()
    if args.dtype == "float64":
        jax.config.update("jax_enable_x64", True)
    dtype = jnp.dtype(args.dtype)

    from evojax_zero import native

    if not native.available():
        print(json.dumps({"backend": "native", "skipped": native.why_unavailable()}))
    if args.thread_ab:
        counts = [int(c) for c in args.thread_ab.split(",")]
        for name in args.configs.split(","):
            thread_ab(name, counts, args.rounds, args.population, dtype)
        return
    default_threads = os.environ.pop("EVOJAX_ZERO_NUM_THREADS", None)
    for name in args.configs.split(","):
        if name not in CONFIGS:
            raise ValueError(f"--configs: unknown {name!r}; choose from {list(CONFIGS)}")
        spec_kw, sizes, make_tasks = CONFIGS[name]
        spec = P.ProgramSpec(**spec_kw, max_setup_size=sizes[0], max_predict_size=sizes[1],
                             max_learn_size=sizes[2])
        tasks = make_tasks()
        tasks = tasks.replace(train_x=tasks.train_x.astype(dtype),
                              train_y=tasks.train_y.astype(dtype),
                              valid_x=tasks.valid_x.astype(dtype),
                              valid_y=tasks.valid_y.astype(dtype))
        pop = random_population(spec, sizes, max(args.population, args.xla_population), 1,
                                dtype)
        outs = {}
        if native.available():
            for th in args.threads.split(","):
                threads = None if th == "default" else int(th)
                if threads is None and default_threads is not None:
                    os.environ["EVOJAX_ZERO_NUM_THREADS"] = default_threads
                else:
                    os.environ.pop("EVOJAX_ZERO_NUM_THREADS", None)
                progs = jax.tree.map(lambda x: x[:args.population], pop)
                row, out = measure(name, "native", threads, progs, args.repeats, dtype, tasks,
                                   spec, sizes)
                if threads is None:
                    row["threads"] = int(default_threads or len(os.sched_getaffinity(0)))
                print(json.dumps(row), flush=True)
                outs["native"] = out
        if not args.no_xla:
            progs = jax.tree.map(lambda x: x[:args.xla_population], pop)
            row, out = measure(name, "xla", None, progs, args.repeats, dtype, tasks, spec,
                               sizes)
            row.pop("threads")
            print(json.dumps(row), flush=True)
            outs["xla"] = out
        if len(outs) == 2:
            n = min(len(outs["native"]), len(outs["xla"]))
            a, b = outs["native"][:n], outs["xla"][:n]
            print(json.dumps({
                "config": name, "compare": "native_vs_xla", "programs": n,
                "max_abs_diff": float(np.max(np.abs(a - b))),
                "bit_equal_share": float(np.mean(a == b)),
            }), flush=True)


if __name__ == "__main__":
    main()
