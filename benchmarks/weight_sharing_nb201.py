"""Weight-sharing NAS judged against the NB-201-style ground-truth table.

    OPENBLAS_NUM_THREADS=1 python benchmarks/weight_sharing_nb201.py --methods darts,gdas \\
        --seeds 0 1 --steps 300 --out /tmp/ws_a.jsonl
    python benchmarks/weight_sharing_nb201.py --references --out /tmp/ws_ref.jsonl \\
        --budget-from /tmp/ws_a.jsonl /tmp/ws_b.jsonl
    python benchmarks/weight_sharing_nb201.py --report /tmp/ws_a.jsonl /tmp/ws_b.jsonl ...

Everything uses the table's own protocol (``ground_truth.protocol(table)``: its data set,
resolution, splits, ``NetConfig``) and the benchmark's own space, unchanged
(``ws.Supernet(nb201.space(net))``: its DNA is the table's cell DNA): the supernet trains
its weights on the table's training split and (DARTS, GDAS, ENAS) its architecture on the
validation split, in batches of ``--batch``. Per method and seed one JSON line holds:

* the derived cell (DARTS/GDAS: argmax of alpha without ``none``; ENAS: the controller's
  greedy cell; random search with sharing: the best of ``--candidates`` uniform samples by
  one-shot accuracy), its stand-alone test accuracy (the table's mean over its seeds when
  the cell is in the table, else ``ground_truth.train_like``: same protocol, same seeds),
  and its rank among the table's cells (1 = best);
* Kendall tau between one-shot accuracy (the supernet's inherited weights, each table cell
  as a hard selection, one batched ``ws.evaluate`` on the validation split) and the table's
  stand-alone test accuracy, also without the table's cells whose input cannot reach the
  output (those are at chance under both, which inflates tau);
* the table cell with the best one-shot accuracy, and its test accuracy and rank;
* the architecture distribution's final mean entropy per decision (nats; DARTS/GDAS:
  ``softmax(alpha)``, ENAS: the controller's samples) and its trace, and the logged
  parameter-free share of the derived (ENAS: sampled) cell;
* search cost: CPU-seconds of the process (``time.process_time``), wall seconds, load.

``--references`` runs ``nas.RandomSearch`` and ``nas.RegularizedEvolution`` without
sharing, the table's validation accuracy as objective, over the table's cells (one decision
over the table's rows: with only ~100 cells the NB-201 DNA space is mostly outside the
table). The budget in queries is the weight-sharing searches' mean CPU-seconds divided by
the table's CPU-seconds per cell (both seeds), i.e. how many stand-alone trainings the
same CPU time would have paid for. They report the test accuracy and rank of the cell
with the best validation accuracy found.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import nas  # noqa: E402
from nas import weight_sharing as ws  # noqa: E402
from nas.benchmarks import ground_truth as gt  # noqa: E402
from nas.benchmarks import nb201  # noqa: E402
from nas.space import DNA  # noqa: E402

METHODS = ("darts", "gdas", "enas", "rsws")


# ---------------------------------------------------------------------- search
def make_algo(method: str, supernet: ws.Supernet, steps: int, seed: int):
    if method == "darts":
        return ws.Darts(supernet, num_steps=steps, order=1)
    if method == "gdas":
        return ws.Gdas(supernet, num_steps=steps)
    if method == "enas":
        return ws.Enas(supernet, num_steps=steps, seed=seed)
    if method == "rsws":
        return ws.RandomSearchWS(supernet, num_steps=steps)
    raise ValueError(f"method must be one of {METHODS}, got {method!r}")


def batch_fn(data, batch: int, seed: int):
    """``i -> (train batch, valid batch)``: shuffled epochs of each split."""
    rng = np.random.default_rng(seed)
    xt, yt = jnp.asarray(data.x_train), jnp.asarray(data.y_train)
    xv, yv = jnp.asarray(data.x_valid), jnp.asarray(data.y_valid)
    nt, nv = len(yt) // batch, len(yv) // batch
    perms_t, perms_v = {}, {}

    def idx(perms, n, size, i):
        e = i // n
        if e not in perms:
            perms[e] = rng.permutation(size)[: n * batch]
        return perms[e][(i % n) * batch:(i % n + 1) * batch]

    def batches(i):
        it, iv = idx(perms_t, nt, len(yt), i), idx(perms_v, nv, len(yv), i)
        return (xt[it], yt[it]), (xv[iv], yv[iv])

    return batches


def standalone(table: gt.Table, cell: np.ndarray) -> tuple[float, bool]:
    """Stand-alone test accuracy (mean over the table's seeds) and whether it came from
    the table (else: trained now with ``train_like``)."""
    try:
        return table.accuracy(cell), True
    except ValueError:
        return float(np.mean(gt.train_like(table, cell)["test_acc"])), False


def search_one(method: str, seed: int, args, table: gt.Table, data, net) -> dict:
    space = nb201.space(net, seed)  # the benchmark's own space, unchanged
    load0 = os.getloadavg()[0]
    w0, c0 = time.time(), time.process_time()
    supernet = ws.Supernet(space, seed=seed)
    algo = make_algo(method, supernet, args.steps, seed)
    batches = batch_fn(data, args.batch, seed)
    state, history = ws.run(algo, batches, args.steps, key=jax.random.key(seed),
                            log_every=max(1, args.steps // 10))
    valid = (jnp.asarray(data.x_valid), jnp.asarray(data.y_valid))
    if method == "rsws":
        dnas, _ = algo.select(state, valid, jax.random.key(1000 + seed), args.candidates)
        derived = np.asarray(dnas.ints[0])
    else:
        derived = np.asarray(algo.derive(state).ints)
    jax.block_until_ready(derived)
    search_wall, search_cpu = time.time() - w0, time.process_time() - c0
    cell = derived.astype(np.int32)  # nb201.space's DNA is the table's cell DNA

    # one-shot accuracy of every table cell with the inherited weights
    dnas = DNA(jnp.asarray(table.dnas, jnp.int32),
               jnp.zeros((table.num_architectures, 0), jnp.float32))
    w1, c1 = time.time(), time.process_time()
    one_shot, _ = ws.evaluate_state(algo, state, dnas, valid, chunk=args.chunk)
    one_shot = np.asarray(one_shot, np.float64)
    eval_wall, eval_cpu = time.time() - w1, time.process_time() - c1

    test = table.mean("test_acc")
    live = np.array([nb201.reaches_output(d) for d in table.dnas])
    acc, in_table = standalone(table, cell)
    top = int(np.argmax(one_shot))
    last = history[-1] if history else {}
    return {
        "method": method, "seed": seed, "steps": args.steps, "batch": args.batch,
        "derived": [int(v) for v in cell], "arch": nb201.arch_string(cell),
        "param_free_edges": int(sum(nb201.OPS[v] in nb201.PARAMETER_FREE for v in cell)),
        "test_acc": round(acc, 4), "in_table": in_table, "rank": table.rank(acc),
        "tau_oneshot_test": round(gt.kendall_tau(one_shot, test), 3),
        "tau_oneshot_test_live": round(gt.kendall_tau(one_shot[live], test[live]), 3),
        "oneshot_mean": round(float(one_shot.mean()), 4),
        "oneshot_top_arch": nb201.arch_string(table.dnas[top]),
        "oneshot_top_test_acc": round(float(test[top]), 4),
        "oneshot_top_rank": table.rank(float(test[top])),
        "final_train_loss": round(float(last.get("train_loss", np.nan)), 4),
        # the architecture distribution at the end (DARTS/GDAS: softmax(alpha); ENAS: the
        # controller's samples; RS-WS: uniform) and the logged derived/sampled cell
        "final_entropy": round(float(last.get("entropy", np.log(len(nb201.OPS)))), 4),
        "final_param_free_share": round(float(last.get("param_free_share", np.nan)), 4),
        "entropy_trace": [[h["step"], round(float(h["entropy"]), 4)] for h in history
                          if "entropy" in h],
        "search_cpu_s": round(search_cpu, 1), "search_wall_s": round(search_wall, 1),
        "oneshot_eval_cpu_s": round(eval_cpu, 1), "oneshot_eval_wall_s": round(eval_wall, 1),
        "loadavg_1m": [round(load0, 2), round(os.getloadavg()[0], 2)],
    }


# ------------------------------------------------------------------ references
def references(args, table: gt.Table) -> list[dict]:
    per_cell = table.meta["cpu_s"] / table.num_architectures
    if args.budget_from:
        cpus = [r["search_cpu_s"] for r in read_rows(args.budget_from) if "method" in r
                and r["method"] in METHODS]
        budget = max(1, round(float(np.mean(cpus)) / per_cell))
    else:
        budget = args.budget
    space = nas.Space(nas.oneof(list(range(table.num_architectures)), name="table_row"))
    valid = jnp.asarray(table.mean("valid_acc"), jnp.float32)
    test = table.mean("test_acc")

    def objective(dna):
        return valid[dna.ints[0]]

    rows = []
    algos = {"random (no sharing)": nas.RandomSearch(space, batch_size=1),
             "evolution (no sharing)": nas.RegularizedEvolution(
                 space, population_size=min(10, budget), tournament_size=min(3, budget),
                 batch_size=1)}
    for name, algo in algos.items():
        w0, c0 = time.time(), time.process_time()
        picks = []
        for seed in range(args.ref_seeds):
            res = nas.run_vectorized(algo, objective, jax.random.key(seed), num_steps=budget)
            picks.append(int(res.state.best.dna.ints[0]))
        accs = test[picks]
        ranks = [table.rank(float(a)) for a in accs]
        rows.append({
            "method": name, "seeds": args.ref_seeds, "queries": budget,
            "table_cpu_s_per_cell": round(per_cell, 2),
            "simulated_cpu_s": round(budget * per_cell, 1),
            "test_acc_mean": round(float(accs.mean()), 4),
            "test_acc_std": round(float(accs.std()), 4),
            "rank_median": float(np.median(ranks)), "rank_mean": round(float(np.mean(ranks)), 1),
            "lookup_cpu_s": round(time.process_time() - c0, 1),
            "lookup_wall_s": round(time.time() - w0, 1),
            "loadavg_1m": round(os.getloadavg()[0], 2)})
    return rows


# ---------------------------------------------------------------------- report
def read_rows(paths) -> list[dict]:
    rows = []
    for p in paths:
        with open(p) as f:
            rows.extend(json.loads(line) for line in f if line.strip())
    return rows


def report(paths) -> str:
    rows = read_rows(paths)
    ws_rows = [r for r in rows if r.get("method") in METHODS]
    ref_rows = [r for r in rows if "queries" in r]
    out = ["| method | seed | steps | derived cell | param-free edges | final entropy (nats, "
           "max 1.61) | test acc | rank /100 | tau one-shot vs test (live cells) | "
           "best-one-shot table cell: test acc (rank) | search CPU-s / wall-s |",
           "|" + "---|" * 11]
    def esc(arch):  # arch strings are full of "|", the markdown column separator
        return arch.replace("|", "\\|")

    for r in ws_rows:
        src = "" if r["in_table"] else " (trained)"
        ent = r.get("final_entropy")
        ent = "-" if ent is None else f"{ent:.4f}"
        out.append(f"| {r['method']} | {r['seed']} | {r['steps']} | `{esc(r['arch'])}` | "
                   f"{r['param_free_edges']}/6 | {ent} | "
                   f"{r['test_acc']:.3f}{src} | {r['rank']} | {r['tau_oneshot_test']:.2f} "
                   f"({r['tau_oneshot_test_live']:.2f}) | {r['oneshot_top_test_acc']:.3f} "
                   f"({r['oneshot_top_rank']}) | {r['search_cpu_s']:.0f} / "
                   f"{r['search_wall_s']:.0f} |")
    if ref_rows:
        out += ["", "| reference | seeds | queries (= CPU-s at the table's cost) | test acc "
                "mean +- std | rank median (mean) |", "|---|---|---|---|---|"]
        for r in ref_rows:
            out.append(f"| {r['method']} | {r['seeds']} | {r['queries']} "
                       f"({r['simulated_cpu_s']:.0f}) | {r['test_acc_mean']:.3f} +- "
                       f"{r['test_acc_std']:.3f} | {r['rank_median']:.0f} "
                       f"({r['rank_mean']}) |")
    return "\n".join(out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--candidates", type=int, default=100, help="rsws: samples to rank")
    p.add_argument("--chunk", type=int, default=10, help="one-shot evaluation vmap chunk")
    p.add_argument("--table", default=None, help="ground-truth table (default: committed)")
    p.add_argument("--references", action="store_true")
    p.add_argument("--budget", type=int, default=20, help="reference queries")
    p.add_argument("--budget-from", nargs="+", default=None,
                   help="JSON-lines files of weight-sharing runs: budget = their mean CPU-s")
    p.add_argument("--ref-seeds", type=int, default=20)
    p.add_argument("--report", nargs="+", default=None, help="JSON-lines files to tabulate")
    p.add_argument("--out", default=None, help="append JSON lines here too")
    args = p.parse_args(argv)
    if args.report:
        print(report(args.report))
        return 0
    table = gt.load_table(args.table)

    def emit(row):
        print(json.dumps(row), flush=True)
        if args.out:
            with open(args.out, "a") as f:
                f.write(json.dumps(row) + "\n")

    if args.references:
        for row in references(args, table):
            emit(row)
        return 0
    data, net, _ = gt.protocol(table)
    emit({"benchmark": "weight_sharing_nb201", "data": data.name,
          "image_shape": list(data.image_shape), "net": net.kwargs(),
          "table_archs": table.num_architectures, "jax": jax.__version__,
          "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="minutes")})
    for method in [m for m in args.methods.split(",") if m]:
        for seed in args.seeds:
            emit(search_one(method, seed, args, table, data, net))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
