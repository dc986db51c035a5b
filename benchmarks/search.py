"""Search benchmarks: demo time to solution over seeds; individuals/s with and without FEC.

    python benchmarks/search.py tts --seeds 0 1 2 3 4            # demo, FEC (the reference's)
    python benchmarks/search.py tts --seeds 0 1 2 3 4 --no-fec   # demo without FEC
    python benchmarks/search.py speed --preset demo --generations 30   # with and without FEC
    python benchmarks/search.py speed --preset linear --generations 30
    python benchmarks/search.py speed --preset demo --fec-mode host    # host FEC cache
    python benchmarks/search.py checkpoint --seeds 0   # demo with and without checkpoints
    python benchmarks/search.py speed --ask xla         # the XLA ask instead of the native one
    python benchmarks/search.py experiment --preset demo --fec on   # as the reference measures

``experiment`` runs one experiment's search to the preset's train-step budget in this
process and divides the individuals by the process's whole CPU time (imports and compiles
included), as the reference's figures are taken (AUTOML_ZERO_REFERENCE.md section 6); it
also reports the rate after the first (compiling) generation.

Rates are per wall second and per CPU-second of this process (all its threads), the
latter comparable to the reference's single-threaded "per CPU-second" figures; every line
carries the 1-minute load average. For the reference's conditions pin the process to one
core with one evaluator thread: ``EVOJAX_ZERO_NUM_THREADS=1 taskset -c 0 python ...``.

Prints one JSON line per measurement.
"""

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

import jax  # noqa: E402


def _load():
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def _ask_kind(search) -> str:
    return "native" if getattr(search.kernels, "native_ask", False) else "xla"


def time_to_solution(seeds, population_size, batch_size, max_experiments, fec=True):
    """Each seed in a fresh process state is not possible here: compiled kernels are shared
    across seeds (as they would be in one sweep); the first seed pays the compile."""
    from evojax_zero import experiment

    for seed in seeds:
        cfg = experiment.preset("demo", population_size=population_size, batch_size=batch_size,
                                max_experiments=max_experiments, fec=fec)
        t0, c0 = time.time(), time.process_time()
        res = experiment.run(cfg, seed, progress=False, log=lambda s: None)
        print(json.dumps({"bench": "demo_time_to_solution", "seed": seed,
                          "solved": res.select_fitness > 0.9999,
                          "select_fitness": res.select_fitness,
                          "final_fitness": res.final_fitness,
                          "wall_s": round(time.time() - t0, 1),
                          "cpu_s": round(time.process_time() - c0, 1),
                          "individuals": res.individuals, "experiments": res.experiments,
                          "fec": fec, "population": population_size, "batch": batch_size,
                          "load1": _load(), "device": jax.devices()[0].platform,
                          "ask": os.environ.get("EVOJAX_ZERO_ASK", "auto")}), flush=True)


def checkpoint_cost(seeds, population_size, batch_size, max_experiments, every, seconds):
    """The demo run without and with a checkpoint directory (same seed: same work),
    alternated twice after a compiling warm-up."""
    import dataclasses
    import tempfile

    from evojax_zero import experiment

    for seed in seeds:
        cfg = experiment.preset("demo", population_size=population_size, batch_size=batch_size,
                                max_experiments=max_experiments)
        # compile first (same search config: the runs below reuse the kernels)
        experiment.run(dataclasses.replace(cfg, max_train_steps=1), seed, progress=False,
                       log=lambda s: None)
        for ckpt in (False, True, False, True):
            with tempfile.TemporaryDirectory() as d:
                t0, c0 = time.time(), time.process_time()
                res = experiment.run(cfg, seed, progress=False, log=lambda s: None,
                                     checkpoint_dir=os.path.join(d, "ck") if ckpt else None,
                                     checkpoint_every=every, checkpoint_seconds=seconds)
                print(json.dumps({"bench": "demo_checkpoint_cost", "seed": seed,
                                  "checkpoint": ckpt, "every": every, "seconds": seconds,
                                  "wall_s": round(time.time() - t0, 1),
                                  "cpu_s": round(time.process_time() - c0, 1),
                                  "individuals": res.individuals,
                                  "select_fitness": res.select_fitness, "load1": _load()}),
                      flush=True)


def speed(preset, generations, population_size, batch_size, fec_mode="auto", fecs=(True, False)):
    import dataclasses

    from evojax_zero import experiment
    from evojax_zero.search.loop import Search

    for fec in fecs:
        cfg = experiment.preset(preset, population_size=population_size,
                                batch_size=batch_size, fec=fec)
        if fec and fec_mode != "auto":
            cfg = dataclasses.replace(cfg, search=dataclasses.replace(cfg.search, fec=fec_mode))
        s = Search(cfg.search, cfg.search_tasks.build(None))
        st = s.init(jax.random.key(0))
        st = s.generation(st)  # compile
        jax.block_until_ready(st.evolution.fitness)
        ts0 = s.counters.train_steps
        n0, t0, c0 = s.counters.individuals, time.time(), time.process_time()
        for _ in range(generations):
            st = s.generation(st)
        jax.block_until_ready(st.evolution.fitness)
        dt, cpu = time.time() - t0, time.process_time() - c0
        hits = s.counters.fec_hits / s.counters.fec_lookups if s.counters.fec_lookups else None
        print(json.dumps({"bench": "individuals_per_second", "preset": preset, "fec": fec,
                          "value": round((s.counters.individuals - n0) / dt, 1),
                          "per_cpu_second": round((s.counters.individuals - n0) / cpu, 1),
                          "train_steps_per_cpu_second": round(
                              (s.counters.train_steps - ts0) / cpu, 1),
                          "wall_s": round(dt, 2), "cpu_s": round(cpu, 2), "load1": _load(),
                          "fec_hit_rate": hits, "population": population_size,
                          "batch": batch_size, "backend": s.evaluator.backend,
                          "fec_kind": s.fec.kind if s.fec else None,
                          "ask": _ask_kind(s)}), flush=True)


def experiment_speed(preset, fec, seed):
    """One experiment's search to the budget; individuals per CPU-s of the whole process."""
    from evojax_zero import experiment
    from evojax_zero.search.loop import Search

    cfg = experiment.preset(preset, fec=fec)
    s = Search(cfg.search, cfg.search_tasks.build(None))
    t_start = time.time()
    st = s.generation(s.init(jax.random.key(seed)))
    jax.block_until_ready(st.evolution.fitness)
    n1, ts1, c1 = s.counters.individuals, s.counters.train_steps, time.process_time()
    while s.counters.train_steps < cfg.max_train_steps:
        st = s.generation(st)
    jax.block_until_ready(st.evolution.fitness)
    cpu, n, ts = time.process_time(), s.counters.individuals, s.counters.train_steps
    print(json.dumps({"bench": "experiment_speed", "preset": preset, "fec": fec, "seed": seed,
                      "individuals": n, "train_steps": ts,
                      "process_cpu_s": round(cpu, 2), "wall_s": round(time.time() - t_start, 1),
                      "individuals_per_process_cpu_s": round(n / cpu),
                      "train_steps_per_process_cpu_s": round(ts / cpu),
                      "individuals_per_cpu_s_after_first_generation": round((n - n1) / (cpu - c1)),
                      "train_steps_per_cpu_s_after_first_generation": round(
                          (ts - ts1) / (cpu - c1)),
                      "fec_hit_rate": s.counters.fec_hit_rate, "load1": _load(),
                      "ask": _ask_kind(s), "best": s.stats(st)["best"]}), flush=True)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("what", choices=("tts", "speed", "checkpoint", "experiment"))
    p.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2, 3, 4])
    p.add_argument("--preset", default="demo")
    p.add_argument("--generations", type=int, default=5)
    p.add_argument("--population-size", type=int, default=1000)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--max-experiments", type=int, default=20,
                   help="tts: give up after this many experiments (reference: unlimited)")
    p.add_argument("--no-fec", action="store_true", help="tts without FEC")
    p.add_argument("--fec-mode", default="auto", choices=("auto", "host", "native"),
                   help="speed: where the FEC cache lives")
    p.add_argument("--fec", default="both", choices=("both", "on", "off"),
                   help="speed: with FEC, without, or both")
    p.add_argument("--ask", default="auto", choices=("auto", "xla"),
                   help="the search's ask: native when available (auto) or the XLA one")
    p.add_argument("--checkpoint-every", type=int, default=None,
                   help="checkpoint: generations between saves (default: by time only)")
    p.add_argument("--checkpoint-seconds", type=float, default=60.0)
    a = p.parse_args()
    if a.ask == "xla":
        os.environ["EVOJAX_ZERO_ASK"] = "xla"
    if a.what == "tts":
        time_to_solution(a.seeds, a.population_size, a.batch_size, a.max_experiments,
                         not a.no_fec)
    elif a.what == "experiment":
        for seed in a.seeds:
            experiment_speed(a.preset, a.fec != "off", seed)
    elif a.what == "checkpoint":
        checkpoint_cost(a.seeds, a.population_size, a.batch_size, a.max_experiments,
                        a.checkpoint_every, a.checkpoint_seconds)
    else:
        speed(a.preset, a.generations, a.population_size, a.batch_size, a.fec_mode,
              {"both": (True, False), "on": (True,), "off": (False,)}[a.fec])


if __name__ == "__main__":
    main()
