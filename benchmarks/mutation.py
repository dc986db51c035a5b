"""The jitted ``ask`` of a search step: tournament selection plus mutation of a batch.

    python benchmarks/mutation.py                       # demo preset, 100 children per ask
    python benchmarks/mutation.py --preset nonlinear --repeats 7

Times the XLA ask, ``engine.ask(key, state, mutate)``, and the native one
(``evojax_zero.search.native_ask``, what the search uses when it loads; same children), each
jitted with the key fixed, alternating; the best of ``--repeats`` rounds of ``--calls`` calls.
Prints one JSON line per ask: ms per ask, children per second (wall and per CPU-second of
this process) and the load.
"""

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

import jax  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--preset", default="demo")
    p.add_argument("--calls", type=int, default=200)
    p.add_argument("--repeats", type=int, default=5)
    a = p.parse_args()

    from evojax_zero import experiment
    from evojax_zero.search import native_ask
    from evojax_zero.search.loop import Search
    from evojax_zero.search.mutation import mutate

    cfg = experiment.preset(a.preset)
    c = cfg.search
    s = Search(c, cfg.search_tasks.build(None))
    state = s.init(jax.random.key(0))
    asks = {"xla": jax.jit(lambda st: s.engine.ask(
        st.key, st.evolution, lambda k, prog: mutate(k, prog, c.mutation, c.spec))[0])}
    if native_ask.available() and native_ask.applicable(state.key, state.evolution.population):
        asks["native"] = jax.jit(lambda st: native_ask.ask(
            st.key, st.evolution, s.engine, c.mutation, c.spec)[0])
    compile_s = {}
    for name, ask in asks.items():
        t0 = time.time()
        jax.block_until_ready(ask(state))
        compile_s[name] = time.time() - t0
    best = dict.fromkeys(asks, float("inf"))
    best_cpu = dict.fromkeys(asks, float("inf"))
    for _ in range(a.repeats):
        for name, ask in asks.items():
            t0, c0 = time.perf_counter(), time.process_time()
            for _ in range(a.calls):
                jax.block_until_ready(ask(state))
            best[name] = min(best[name], (time.perf_counter() - t0) / a.calls)
            best_cpu[name] = min(best_cpu[name], (time.process_time() - c0) / a.calls)
    try:
        load = round(os.getloadavg()[0], 2)
    except OSError:
        load = None
    for name in asks:
        print(json.dumps({"bench": "ask", "ask": name, "preset": a.preset,
                          "batch": c.batch_size, "population": c.population_size,
                          "tournament": c.tournament_size,
                          "ms_per_ask": round(best[name] * 1e3, 3),
                          "cpu_ms_per_ask": round(best_cpu[name] * 1e3, 3),
                          "children_per_s": round(c.batch_size / best[name]),
                          "children_per_cpu_s": round(c.batch_size / best_cpu[name]),
                          "compile_s": round(compile_s[name], 2), "load1": load,
                          "device": jax.devices()[0].platform}), flush=True)


if __name__ == "__main__":
    main()
