"""The paper's adaptation experiments (Real et al. 2020, Sec. 4.3) on real data, offline.

Each regime (``few_examples``, ``fast_training``, ``multiclass``) and the control
(``adaptation_control``, the normal binary regime) is one regularized-evolution search that
starts from the hand-written two-layer net (``experiment.adaptation_preset``; the multi-class
one from its ten-output version); then the best program of each search is
scored on 100 held-out tasks *of its own regime* (valid split = its fitness, and the
held-back test split) next to hand-designed baselines trained on exactly the same examples,
its simplified code is printed, and ``evaluate.techniques`` says which techniques appear.

    python benchmarks/adaptation.py search --dataset mnist --individuals 20000
    python benchmarks/adaptation.py report --dataset mnist     # tables + programs (markdown)

``search`` writes ``<out>/<dataset>/<regime>_s<seed>/`` (log.txt, best.txt, simplified.txt,
result.json, fitness.png; checkpoints, so a killed run resumes). ``report`` reads them.
"""

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import pathlib  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import digits_baseline  # noqa: E402

from evojax_zero import experiment  # noqa: E402
from evojax_zero.evaluate import analysis  # noqa: E402
from evojax_zero.experiment import techniques  # noqa: E402
from evojax_zero.experiment.checkpoint import Checkpointer, run_identity  # noqa: E402
from evojax_zero.experiment.presets import ADAPTATION_PRESETS, adaptation_preset  # noqa: E402
from evojax_zero.program.programs import from_lists, from_text, index, to_text  # noqa: E402
from evojax_zero.search import initial  # noqa: E402
from evojax_zero.search.loop import abstract_state  # noqa: E402

OUT = "adaptation_out"
REGIME_ORDER = ("few_examples", "fast_training", "adaptation_control", "multiclass")
LR_GRID = (0.003, 0.01, 0.03, 0.1, 0.3)


def run_dir(out, dataset, regime, seed) -> pathlib.Path:
    return pathlib.Path(out) / dataset / f"{regime}_s{seed}"


def search(a) -> None:
    """One search per regime (sequentially), each with ``individuals`` evaluations."""
    for regime in a.regimes:
        cfg = search_config(a, regime)
        d = run_dir(a.out, a.dataset, regime, a.seed)
        t0, c0 = time.time(), time.process_time()
        res = experiment.run(cfg, a.seed, out_dir=str(d), checkpoint_dir=str(d / "ckpt"),
                             checkpoint_seconds=120, progress=False,
                             log=lambda s, r=regime: print(f"[{r}] {s}", flush=True))
        print(json.dumps({"bench": "adaptation_search", "regime": regime,
                          "dataset": a.dataset, "seed": a.seed,
                          "individuals": res.individuals, "train_steps": res.train_steps,
                          "search_fitness": round(res.search_fitness, 4),
                          "select_fitness": round(res.select_fitness, 4),
                          "final_fitness": round(res.final_fitness, 4),
                          "wall_s": round(time.time() - t0, 1),
                          "cpu_s": round(time.process_time() - c0, 1),
                          "load": [round(x, 2) for x in os.getloadavg()]}), flush=True)


def _train_steps(spec) -> int:
    """Train steps of one task of a regime (examples x epochs)."""
    t = spec.build()
    return t.num_train * t.num_epochs


def regime_tasks(regime: str, dataset: str):
    """The 100 held-out final tasks of ``regime``: (tasks scored on valid, same on test)."""
    cfg = adaptation_preset(regime, dataset)
    final, tests = cfg.final_tasks.build_with_test()
    n = min(len(y) for _, y in tests)
    test_x = np.stack([x[:n] for x, _ in tests])
    test_y = np.stack([y[:n] for _, y in tests])
    # the evaluator scores its "valid" arrays: swap in the test split for test accuracy
    on_test = final.replace(valid_x=jnp.asarray(test_x, final.train_x.dtype),
                            valid_y=jnp.asarray(test_y, final.train_y.dtype))
    return cfg, final, on_test


def tuned_lr(lists_fn, regime: str, dataset: str) -> float:
    """The learning rate of LR_GRID with the best fitness on the regime's search tasks (not
    the held-out final tasks)."""
    cfg = adaptation_preset(regime, dataset)
    spec = cfg.search.spec
    search_tasks = cfg.search_tasks.build()
    fits = [experiment.evaluate(spec, from_lists(spec, **lists_fn(lr)), search_tasks)
            for lr in LR_GRID]
    return LR_GRID[int(np.argmax(fits))]


def two_layer_net_softmax(train_x, train_y, evals, num_classes, hidden=16, steps=300, lr=1e-2,
                          seed=0):
    """digits_baseline.two_layer_net for K classes: full-batch Adam on softmax cross-entropy,
    one net per task, vmapped."""
    import optax

    T, _, F = train_x.shape
    opt = optax.adam(lr)

    def init(key):
        k1, k2 = jax.random.split(key)
        return {"w1": jax.random.normal(k1, (F, hidden)) * jnp.sqrt(2.0 / F),
                "b1": jnp.zeros(hidden),
                "w2": jax.random.normal(k2, (hidden, num_classes)) * jnp.sqrt(1.0 / hidden),
                "b2": jnp.zeros(num_classes)}

    def logits(p, x):
        return jax.nn.relu(x @ p["w1"] + p["b1"]) @ p["w2"] + p["b2"]

    def loss(p, x, y):
        return optax.softmax_cross_entropy_with_integer_labels(logits(p, x), y).mean()

    @jax.jit
    def fit(keys, xs, ys):
        def one(key, x, y):
            p = init(key)
            s = opt.init(p)

            def step(carry, _):
                p, s = carry
                u, s = opt.update(jax.grad(loss)(p, x, y), s, p)
                return (optax.apply_updates(p, u), s), None

            return jax.lax.scan(step, (p, s), None, length=steps)[0][0]

        return jax.vmap(one)(keys, xs, ys)

    params = fit(jax.random.split(jax.random.key(seed), T), jnp.asarray(train_x, jnp.float32),
                 jnp.asarray(train_y, jnp.int32))
    out = {}
    for name, sets in evals.items():
        accs = [float(np.mean(np.argmax(np.asarray(logits(
            jax.tree.map(lambda a, t=t: a[t], params), jnp.asarray(ex, jnp.float32))), -1)
            == ey)) for t, (ex, ey) in enumerate(sets)]
        out[name] = float(np.mean(accs))
    return out


def search_config(a, regime: str):
    """The config ``search`` runs for ``regime`` (its identity names the checkpoints)."""
    cfg = adaptation_preset(regime, a.dataset, population_size=a.population_size,
                            batch_size=a.batch_size, max_train_steps=1)
    steps = a.individuals * cfg.search_tasks.num_tasks * _train_steps(cfg.search_tasks)
    return adaptation_preset(regime, a.dataset, population_size=a.population_size,
                             batch_size=a.batch_size, max_train_steps=steps,
                             progress_every=1000)


def load_program(a, regime: str, spec):
    """``(program, note)``: the finished search's best.txt, else (a search still running or
    stopped) the best member of its newest checkpoint's population; None if neither."""
    d = run_dir(a.out, a.dataset, regime, a.seed)
    if (d / "best.txt").exists():
        return from_text(spec, (d / "best.txt").read_text()), "finished"
    if not (d / "ckpt").exists():
        return None, None
    cfg = search_config(a, regime)
    ck = Checkpointer(str(d / "ckpt"), run_identity(cfg, a.seed))
    try:
        rs = ck.restore(abstract_state(cfg.search), None)
    finally:
        ck.close()
    if rs is None or rs.search is None:
        return None, None
    ev = rs.search.evolution
    i = int(np.argmax(np.asarray(ev.fitness)))
    n = rs.counters.individuals
    return index(ev.population, i), f"stopped at {n} individuals (checkpoint)"


def score_regime(a, r: str, programs: dict, spec):
    """``({method: (valid, test)}, {method: note}, final tasks)`` on regime ``r``'s final
    tasks."""
    cfg, final, on_test = regime_tasks(r, a.dataset)
    multi = r == "multiclass"
    tx, ty = np.asarray(final.train_x, np.float64), np.asarray(final.train_y, np.float64)
    evals = {"valid": list(zip(np.asarray(final.valid_x, np.float64),
                               np.asarray(final.valid_y, np.float64), strict=True)),
             "test": list(zip(np.asarray(on_test.valid_x, np.float64),
                              np.asarray(on_test.valid_y, np.float64), strict=True))}
    out, notes = {}, {}

    def prog(p):
        acc = digits_baseline.program_accuracy(spec, p, final, on_test)
        return acc["valid"], acc["test"]

    for name, p in programs.items():
        if (name == "evolved[multiclass]") == multi:
            out[name] = prog(p)
    net = initial.multiclass_neural_net_lists if multi else initial.neural_net_lists
    out["two-layer net, SGD lr 0.01 (start)"] = prog(from_lists(spec, **net()))
    lr = tuned_lr(net, r, a.dataset)
    out["two-layer net, SGD tuned lr"] = prog(from_lists(spec, **net(lr)))
    notes["two-layer net, SGD tuned lr"] = f"lr {lr}"
    if not multi:
        lr = tuned_lr(initial.linear_lists, r, a.dataset)
        out["linear, SGD tuned lr"] = prog(from_lists(spec, **initial.linear_lists(lr)))
        notes["linear, SGD tuned lr"] = f"lr {lr}"
    acc = digits_baseline.logistic_regression(list(zip(tx, ty, strict=True)), evals)
    out["logistic regression (sklearn)"] = (acc["valid"], acc["test"])
    acc = two_layer_net_softmax(tx, ty, evals, final.num_classes) if multi else \
        digits_baseline.two_layer_net(tx, ty, evals)
    out["two-layer net, Adam full batch"] = (acc["valid"], acc["test"])
    print(json.dumps({"bench": "adaptation_tasks", "regime": r, "dataset": a.dataset,
                      "tasks": final.num_tasks, "train_examples": final.num_train,
                      "epochs": final.num_epochs, "valid": final.num_valid,
                      "test": int(on_test.num_valid)}), flush=True)
    return out, notes, final


def report(a) -> None:
    """Tables: every program and baseline on every regime's held-out tasks (valid/test
    accuracy), techniques found, and the simplified programs."""
    regimes = [r for r in REGIME_ORDER if r in a.regimes]
    spec = adaptation_preset(regimes[0], a.dataset).search.spec
    programs, status = {}, {}
    for r in regimes:
        p, status[r] = load_program(a, r, spec)
        if p is not None:
            programs[f"evolved[{r}]"] = p
            print(json.dumps({"bench": "adaptation_program", "regime": r,
                              "status": status[r]}), flush=True)
    rows: dict[str, dict[str, tuple]] = {}
    notes: dict[str, list[str]] = {}
    found = {}
    for r in regimes:
        out, note, final = score_regime(a, r, programs, spec)
        for name, v in out.items():
            rows.setdefault(name, {})[r] = v
        for name, n in note.items():
            notes.setdefault(name, []).append(f"{r}: {n}")
        p = programs.get(f"evolved[{r}]")
        if p is not None:
            found[r] = techniques.detect(p, spec, final[0])
            print(json.dumps({"bench": "adaptation_techniques", "regime": r, **found[r]}),
                  flush=True)
    for name, per in rows.items():
        print(json.dumps({"bench": "adaptation", "dataset": a.dataset, "seed": a.seed,
                          "method": name, **{f"{r}_valid": round(v[0], 4) for r, v in
                                             per.items()},
                          **{f"{r}_test": round(v[1], 4) for r, v in per.items()}}), flush=True)
    print(f"\n### {a.dataset}, seed {a.seed}: held-out test accuracy (valid in brackets)\n")
    print("| program / method | " + " | ".join(regimes) + " |")
    print("|---|" + "---|" * len(regimes))
    for name, per in rows.items():
        label = name + (f" ({'; '.join(notes[name])})" if name in notes else "")
        cells = [f"{per[r][1]:.4f} ({per[r][0]:.4f})" if r in per else "-" for r in regimes]
        print(f"| {label} | " + " | ".join(cells) + " |")
    print("\n| regime | techniques found in its best program | evidence |")
    print("|---|---|---|")
    for r, f in found.items():
        ev = "; ".join(e for t in techniques.TECHNIQUES for e in f[t]) or "-"
        print(f"| {r} | {techniques.summary(f)} | `{ev}` |")
    for name, p in programs.items():
        r = name[len("evolved["):-1]
        simple = analysis.simplify(p, spec, multiclass=r == "multiclass")
        print(f"\n{name} ({status[r]}), simplified (dead code removed):\n```\n"
              f"{to_text(simple)}```")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("stage", choices=("search", "report"))
    p.add_argument("--dataset", default="digits", choices=("digits", "mnist", "fashion_mnist"))
    p.add_argument("--regimes", nargs="+", default=list(REGIME_ORDER),
                   choices=ADAPTATION_PRESETS)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--individuals", type=int, default=20000,
                   help="search budget per regime, in evaluated programs")
    p.add_argument("--population-size", type=int, default=100)
    p.add_argument("--batch-size", type=int, default=10)
    p.add_argument("--out", default=OUT, help="run directories (search writes, report reads)")
    a = p.parse_args()
    (search if a.stage == "search" else report)(a)


if __name__ == "__main__":
    main()
