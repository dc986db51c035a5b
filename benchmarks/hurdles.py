"""Time to solution on the demo preset with and without hurdles and with islands, through
the command line (``python -m evojax_zero run demo ...``), side by side, one run at a time.

    python benchmarks/hurdles.py --seeds 0 1 2 3 4 --max-train-steps 1000000000 \
        --configs base hurdle islands --out /tmp/hurdles_bench

Each (config, seed) is one CLI process: one experiment (``max_experiments=1``) with the given
train-step budget; the run's ``result.json`` says when the best *search* fitness first
reached ``sufficient_fitness`` (0.9999), in wall seconds and in the process's CPU seconds (all
threads; ``time.process_time`` inside the runner), from the start of the run (compiles
included). The CPU-s of the whole process (``RUSAGE_CHILDREN``) is printed beside it. One
JSON line per run; ``--report`` prints the table of a finished JSONL file.

Configs (``--set`` on top of the demo preset):
  base     P=1000, B=100, FEC on
  hurdle   + hurdle_tasks=2 (75th percentile of the population's fitness)
  islands  4 islands of P=250 (B=50), migration of the best every generation
  islands_hurdle  both
"""

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = {
    "base": [],
    "hurdle": ["hurdle_tasks=2", "hurdle_kind=percentile", "hurdle_percentile=75"],
    "islands": ["islands_count=4", "population_size=250", "batch_size=50",
                "islands_migration_every=1", "islands_migrants=1"],
    "islands_hurdle": ["islands_count=4", "population_size=250", "batch_size=50",
                       "hurdle_tasks=2"],
}


def run_one(config: str, seed: int, budget: int, out: str, extra: list[str]) -> dict:
    out_dir = os.path.join(out, f"{config}_s{seed}")
    sets = CONFIGS[config] + [f"max_train_steps={budget}", "max_experiments=1", *extra]
    cmd = [sys.executable, "-m", "evojax_zero", "run", "demo", "--seed", str(seed),
           "--no-progress", "--out", out_dir]
    for s in sets:
        cmd += ["--set", s]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.time()
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True,
                       env={**os.environ, "OPENBLAS_NUM_THREADS": "1"})
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{p.stderr[-3000:]}")
    with open(os.path.join(out_dir, "result.json")) as f:
        r = json.load(f)
    return {"bench": "demo_time_to_solution", "config": config, "seed": seed,
            "command": " ".join(cmd[1:]),
            "solved": r["first_solved_seconds"] is not None,
            "solved_wall_s": r["first_solved_seconds"],
            "solved_cpu_s": r.get("first_solved_cpu_seconds"),
            "best_search": r["search_fitness"], "select": r["select_fitness"],
            "individuals": r["individuals"], "train_steps": r["train_steps"],
            "fec_hit_rate": r["fec_hit_rate"], "hurdle": r.get("hurdle_counters"),
            "islands_best": None if r.get("island_stats") is None
            else [round(s["best"], 4) for s in r["island_stats"]],
            "process_wall_s": round(time.time() - t0, 1),
            "process_cpu_s": round(after.ru_utime + after.ru_stime
                                   - before.ru_utime - before.ru_stime, 1),
            "load1": round(os.getloadavg()[0], 1),
            "utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime())}


def report(path: str) -> None:
    rows = [json.loads(line) for line in open(path) if line.strip()]
    print("| config | seed | solved | to solution: CPU-s / wall-s | individuals | train steps "
          "| hurdle: stopped / steps saved | run CPU-s / wall-s | load1 |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        h = r["hurdle"]
        to = (f"{r['solved_cpu_s']:.0f} / {r['solved_wall_s']:.0f}" if r["solved"] else "-")
        hs = f"{h['stopped']} / {h['train_steps_avoided'] / 1e6:.0f}M" if h else "-"
        print(f"| {r['config']} | {r['seed']} | {'yes' if r['solved'] else 'no'} | {to} | "
              f"{r['individuals']:,} | {r['train_steps'] / 1e6:.0f}M | {hs} | "
              f"{r['process_cpu_s']:.0f} / {r['process_wall_s']:.0f} | {r['load1']} |")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--configs", nargs="+", default=["base", "hurdle", "islands"],
                   choices=sorted(CONFIGS))
    p.add_argument("--max-train-steps", type=int, default=1_000_000_000)
    p.add_argument("--out", default="/tmp/hurdles_bench")
    p.add_argument("--set", action="append", default=[], help="extra --set for every run")
    p.add_argument("--report", default=None, help="print the table of a JSONL file")
    a = p.parse_args()
    if a.report:
        report(a.report)
        return
    for seed in a.seeds:  # configs side by side per seed (same load conditions)
        for config in a.configs:
            print(json.dumps(run_one(config, seed, a.max_train_steps, a.out, a.set)),
                  flush=True)


if __name__ == "__main__":
    main()
