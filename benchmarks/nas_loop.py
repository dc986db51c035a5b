"""Trials per second of the nas ask/tell loop, the vectorized loop and PyGlove.

    python benchmarks/nas_loop.py [--pyglove-trials 300] [--tuner-trials 2000]

All three run regularized evolution (population 100, tournament 10) on the same space
(10 op choices of 8, a distinct manyof 3 of 6 widths, a log float and a linear float)
with a trivial objective, side by side in one run. One JSON line per measurement; the
last line holds the ratios. PyGlove is a benchmark-only extra (``pip install pyglove``).
"""

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import time  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

import nas  # noqa: E402

OPS = ["conv1", "conv3", "conv5", "sep3", "sep5", "max", "avg", "skip"]
WIDTHS = [16, 32, 48, 64, 96, 128]


def nas_space() -> nas.Space:
    return nas.Space({
        "ops": [nas.oneof(OPS) for _ in range(10)],
        "widths": nas.manyof(3, WIDTHS),
        "lr": nas.floatv(1e-4, 1e-1, "log"),
        "dropout": nas.floatv(0.0, 0.5),
    })


def python_objective(cfg) -> float:
    return sum(op == "sep3" for op in cfg["ops"]) + cfg["widths"][0] / 128 - cfg["dropout"]


def jax_objective(dna: nas.DNA) -> jax.Array:
    # same value as python_objective: sep3 is index 3; widths[0] is WIDTHS[ints[10]]
    widths = jnp.asarray(WIDTHS, jnp.float32)
    return (jnp.sum(dna.ints[:10] == 3) + widths[dna.ints[10]] / 128 - dna.floats[1]).astype(
        jnp.float32)


def emit(**kw):
    print(json.dumps(kw), flush=True)


def bench_tuner(n: int) -> float:
    algo = nas.RegularizedEvolution(nas_space(), population_size=100, tournament_size=10)
    tuner = nas.Tuner(algo, seed=0)
    for _ in range(10):  # compile ask/tell outside the timed region
        tuner.tell(t := tuner.ask(), python_objective(t.value))
    t0 = time.perf_counter()
    for _ in range(n):
        t = tuner.ask()
        tuner.tell(t, python_objective(t.value))
    rate = n / (time.perf_counter() - t0)
    emit(loop="nas ask/tell (Python objective, materialized)", trials=n,
         trials_per_s=round(rate, 1), best=round(tuner.best.reward, 4))
    return rate


def bench_vectorized(batch: int, steps: int, repeats: int = 3) -> float:
    algo = nas.RegularizedEvolution(nas_space(), population_size=max(100, batch),
                                    tournament_size=10, batch_size=batch)
    t0 = time.perf_counter()
    res = nas.run_vectorized(algo, jax_objective, jax.random.key(0), steps)
    jax.block_until_ready(res.rewards)
    compile_s = time.perf_counter() - t0
    times = []
    for r in range(repeats):
        t0 = time.perf_counter()
        res = nas.run_vectorized(algo, jax_objective, jax.random.key(r + 1), steps)
        jax.block_until_ready(res.rewards)
        times.append(time.perf_counter() - t0)
    rate = batch * steps / min(times)
    emit(loop="nas vectorized (jit lax.scan, vmap objective)", batch=batch, steps=steps,
         trials=batch * steps, compile_s=round(compile_s, 2), trials_per_s=round(rate, 1),
         best=round(float(res.state.best.reward), 4))
    return rate


def bench_pyglove(n: int) -> float | None:
    try:
        import pyglove as pg
    except ImportError:
        emit(loop="pyglove", skipped="pip install pyglove")
        return None
    space = pg.Dict(
        ops=pg.List([pg.oneof(OPS) for _ in range(10)]),
        widths=pg.manyof(3, WIDTHS),
        lr=pg.floatv(1e-4, 1e-1, scale="log"),
        dropout=pg.floatv(0.0, 0.5),
    )
    algo = pg.evolution.regularized_evolution(population_size=100, tournament_size=10)
    t0 = time.perf_counter()
    for cfg, feedback in pg.sample(space, algo, num_examples=n):
        feedback(python_objective(cfg))
    rate = n / (time.perf_counter() - t0)
    emit(loop="pyglove pg.sample + regularized_evolution", version=pg.__version__, trials=n,
         trials_per_s=round(rate, 1))
    return rate


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pyglove-trials", type=int, default=300)
    ap.add_argument("--tuner-trials", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=4096)
    ap.add_argument("--steps", type=int, default=200)
    args = ap.parse_args()
    emit(device=str(jax.devices()[0]), jax=jax.__version__,
         space_size=math.inf if nas_space().n_float else nas_space().size())
    pg_rate = bench_pyglove(args.pyglove_trials)
    tuner_rate = bench_tuner(args.tuner_trials)
    vec_rate = bench_vectorized(args.batch, args.steps)
    if pg_rate:
        emit(ratio_tuner_vs_pyglove=round(tuner_rate / pg_rate, 2),
             ratio_vectorized_vs_pyglove=round(vec_rate / pg_rate, 1),
             goal_vectorized_vs_pyglove=10_000,
             goal_met=vec_rate / pg_rate >= 10_000)


if __name__ == "__main__":
    main()
