"""Issue 13 item 5: evolve a learning algorithm on projected digit pairs and compare it with
logistic regression on held-out pairs, like with like.

Protocol (the reference's and the paper's baseline protocol): every program learns *online*,
one example at a time, for ``--epochs`` passes over a task's train split (278 examples of a
projected 16-dim digit pair), and is scored on the validation split (35 examples); the
test split (35 more) is never seen by the search. Search tasks are pairs outside the 9
held-out pairs; the final report is on 100 held-out-pair tasks (the ``digits`` preset's
final tasks).

Stages (``--stage``):

* ``baselines``: scikit-learn logistic regression trained to convergence (the figure in
  BENCHMARKS.md), online-SGD logistic regression and the hand-written two-layer net
  (NEURAL_NET) as DSL programs under the evolved program's protocol, with their learning
  rate (and the net's init scale) tuned on the *validation* splits of the held-out tasks;
* ``search``: regularized evolution from a population seeded with the tuned hand-written
  programs, with FEC or hurdles or islands (the library's classes), the paper's larger
  search space (all ops in every function); writes ``best.txt`` and ``result.json`` to
  ``--out`` after every generation, so a killed run keeps its best program;
* ``report``: score a saved program (``--program``) on the final tasks' valid and test
  splits next to the baselines.

    python benchmarks/digits_evolved.py --stage baselines
    nohup python benchmarks/digits_evolved.py --stage search --mode hurdles \\
        --cpu-minutes 40 --out /tmp/digits_evolved &
    python benchmarks/digits_evolved.py --stage report --program /tmp/digits_evolved/best.txt
"""

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from evojax_zero.evaluate import analysis  # noqa: E402
from evojax_zero.evaluate.evaluator import EvalConfig, Evaluator  # noqa: E402
from evojax_zero.experiment.config import DIGITS_HELD_OUT, TaskSpec  # noqa: E402
from evojax_zero.program import tasks as tasks_lib  # noqa: E402
from evojax_zero.program.ops import Op  # noqa: E402
from evojax_zero.program.programs import ProgramSpec, from_lists, from_text, stack, to_text  # noqa: E402,E501
from evojax_zero.search import initial as algorithms  # noqa: E402
from evojax_zero.search.hurdles import HurdleConfig, HurdleSearch  # noqa: E402
from evojax_zero.search.islands import IslandConfig, IslandSearch  # noqa: E402
from evojax_zero.search.loop import Search, SearchConfig  # noqa: E402
from evojax_zero.search.mutation import MutationConfig  # noqa: E402

# ---------------------------------------------------------------------------------------
# Search space: every op in every function (NO_OP aside), room for more memory than the
# hand-written net needs (it uses s0-s4, v0-v8, m0-m1), and longer functions.
# ---------------------------------------------------------------------------------------

ALL_OPS = tuple(Op(i) for i in range(1, 65))
SIZES_MAX = (21, 21, 45)  # setup, predict, learn


def search_space(num_scalars=10, num_vectors=12, num_matrices=4):
    """ProgramSpec and MutationConfig of the search: all ops, sizes up to SIZES_MAX."""
    spec = ProgramSpec(num_scalars, num_vectors, num_matrices, 16, ALL_OPS, ALL_OPS, ALL_OPS,
                       *SIZES_MAX)
    mut = MutationConfig(ALL_OPS, ALL_OPS, ALL_OPS, mutation_types=(0, 1, 2, 4, 5),
                         mutate_prob=0.9, setup_size_min=1, setup_size_max=SIZES_MAX[0],
                         predict_size_min=1, predict_size_max=SIZES_MAX[1],
                         learn_size_min=1, learn_size_max=SIZES_MAX[2])
    return spec, mut


def neural_net(spec, lr, init_scale):
    """The reference's NEURAL_NET_ALGORITHM with learning rate and init std set."""
    return from_lists(spec, **algorithms.neural_net_lists(lr, init_scale, init_scale))


def logistic(spec, lr):
    """The reference's LINEAR_ALGORITHM; on accuracy tasks the evaluator replaces s1 by
    sigmoid(s1) before Learn, so its update is online logistic-regression SGD."""
    return from_lists(spec, **algorithms.linear_lists(lr))


# ---------------------------------------------------------------------------------------
# Tasks
# ---------------------------------------------------------------------------------------

def digit_tasks(spec: TaskSpec, epochs: int, with_test: bool = False):
    """The TaskSpec's projected digit-pair tasks with ``epochs`` passes (and, with
    ``with_test``, the same tasks with the test split in place of the validation split)."""
    pairs, seeds = spec.digit_pairs()
    t, tests = tasks_lib.projected_binary(pairs, seeds, spec.feature_size, num_epochs=epochs,
                                          return_test=True)
    if not with_test:
        return t
    n = min(len(y) for _, y in tests)
    tt = tasks_lib.Tasks(t.train_x, t.train_y,
                         jnp.asarray(np.stack([x[:n] for x, _ in tests]), t.train_x.dtype),
                         jnp.asarray(np.stack([y[:n] for _, y in tests]), t.train_y.dtype),
                         t.epoch_order, t.eval_type)
    return t, tt, tests


SEARCH_TASKS = TaskSpec("digits", 10, 0, 0, 16, held_out=False)
FINAL_TASKS = TaskSpec("digits", 100, 0, 0, 16, data_seeds=(2000,), held_out=True)


def select_tasks(num_tasks: int, epochs: int):
    """Held-out-pair tasks for choosing the search's winner, none of them a final task:
    a (pair, split seed) the final tasks use would leak their validation split."""
    final = set(zip(*FINAL_TASKS.digit_pairs(), strict=True))
    held = [p for p in tasks_lib.all_digit_pairs() if tuple(sorted(p)) in DIGITS_HELD_OUT]
    free = [(p, s) for s in range(100) for p in held if (p, s) not in final]
    pick = np.random.default_rng(1000).permutation(len(free))[:num_tasks]
    pairs, seeds = zip(*[free[i] for i in pick], strict=True)
    return tasks_lib.projected_binary(list(pairs), list(seeds), 16, num_epochs=epochs)


def score(evaluator, programs, t, tt, key=0):
    """(valid, test) mean accuracy [P] of a batch of programs."""
    k = jax.random.key(key)
    return np.asarray(evaluator(programs, t, k)), np.asarray(evaluator(programs, tt, k))


# ---------------------------------------------------------------------------------------
# Baselines
# ---------------------------------------------------------------------------------------

LRS = (0.003, 0.01, 0.03, 0.05, 0.1, 0.2, 0.3, 1.0)
INIT_SCALES = (0.03, 0.1, 0.3)


def sklearn_logistic(t, tests):
    from sklearn.linear_model import LogisticRegression

    tx, ty = np.asarray(t.train_x, np.float64), np.asarray(t.train_y)
    vx, vy = np.asarray(t.valid_x, np.float64), np.asarray(t.valid_y)
    va, te = [], []
    for i in range(t.num_tasks):
        clf = LogisticRegression(C=1.0, max_iter=1000).fit(tx[i], ty[i])
        va.append(clf.score(vx[i], vy[i]))
        te.append(clf.score(*tests[i]))
    return float(np.mean(va)), float(np.mean(te)), np.asarray(va), np.asarray(te)


def baselines(spec, epochs, emit):
    t, tt, tests = digit_tasks(FINAL_TASKS, epochs, with_test=True)
    ev = Evaluator(spec, EvalConfig(), "auto")
    common = {"tasks": t.num_tasks, "n_train": t.num_train, "n_valid": t.num_valid,
              "n_test": tt.num_valid, "epochs": epochs}
    va, te, _, _ = sklearn_logistic(t, tests)
    emit({"method": "sklearn_logistic_regression (lbfgs to convergence, C=1)",
          "valid": round(va, 4), "test": round(te, 4), **common})
    lin = stack([logistic(spec, lr) for lr in LRS])
    v, te = score(ev, lin, t, tt)
    for lr, a, b in zip(LRS, v, te, strict=True):
        emit({"method": "online_sgd_logistic", "lr": lr, "valid": round(float(a), 4),
              "test": round(float(b), 4), **common})
    grid = [(lr, s) for lr in LRS for s in INIT_SCALES]
    nn = stack([neural_net(spec, lr, s) for lr, s in grid])
    v2, te2 = score(ev, nn, t, tt)
    for (lr, s), a, b in zip(grid, v2, te2, strict=True):
        emit({"method": "online_sgd_neural_net", "lr": lr, "init_std": s,
              "valid": round(float(a), 4), "test": round(float(b), 4), **common})
    i, j = int(np.argmax(v)), int(np.argmax(v2))
    emit({"method": "tuned (by valid)", "logistic_lr": LRS[i], "logistic": [
        round(float(v[i]), 4), round(float(te[i]), 4)], "neural_net": grid[j],
        "neural_net_valid_test": [round(float(v2[j]), 4), round(float(te2[j]), 4)], **common})
    return LRS[i], grid[j]


# ---------------------------------------------------------------------------------------
# Search
# ---------------------------------------------------------------------------------------

def seed_population(spec, population_size, lr_logistic, nn_lr, nn_scale):
    """The tuned hand-written programs, repeated to fill the population: 3/4 two-layer
    nets, 1/4 logistic regression."""
    nn = neural_net(spec, nn_lr, nn_scale)
    lin = logistic(spec, lr_logistic)
    progs = [lin if i % 4 == 3 else nn for i in range(population_size)]
    return stack(progs)


def reseed(search, state, population, island_axis=False):
    """Replace the population of a fresh search state by ``population`` (evaluated here on
    the search tasks, so fitness and programs agree)."""
    ev = search.kernels.evaluator
    if island_axis:
        n = state.evolution.fitness.shape[0]
        fit = ev(population, search.tasks, jax.random.key(1))
        pop = jax.tree.map(lambda x: jnp.broadcast_to(x, (n, *x.shape)), population)
        fit = jnp.broadcast_to(fit, (n, *fit.shape))
    else:
        pop, fit = population, ev(population, search.tasks, jax.random.key(1))
    evo = state.evolution.replace(population=pop, fitness=fit.astype(
        state.evolution.fitness.dtype))
    return state.replace(evolution=evo)


def top_k(state, k, island_axis):
    f = np.asarray(state.evolution.fitness)
    pop = state.evolution.population
    if island_axis:
        f = f.reshape(-1)
        pop = jax.tree.map(lambda x: x.reshape(-1, *x.shape[2:]), pop)
    idx = np.argsort(-f, kind="stable")[:k]
    return jax.tree.map(lambda x: np.asarray(x)[idx], pop), f[idx]


def run_search(a, emit):
    spec, mut = search_space()
    lr_log, (nn_lr, nn_scale) = a.logistic_lr, (a.nn_lr, a.nn_init)
    search_t = digit_tasks(dataclasses.replace(SEARCH_TASKS, num_tasks=a.search_tasks),
                           a.epochs)
    select_t = select_tasks(a.select_tasks, a.epochs)
    fec = "auto" if a.mode == "fec" else None
    cfg = SearchConfig(spec, mut, a.population_size, 10, a.batch_size, "neural_net",
                       (3, 5, 11), fec)
    island_axis = a.mode == "islands"
    if a.mode == "hurdles":
        search = HurdleSearch(cfg, search_t, HurdleConfig(num_tasks=a.hurdle_tasks,
                                                           percentile=a.hurdle_percentile))
    elif island_axis:
        search = IslandSearch(cfg, search_t, IslandConfig(a.islands, a.migrate_every, 1))
    else:
        search = Search(cfg, search_t)
    select_ev = Evaluator(spec, EvalConfig(), "auto")
    os.makedirs(a.out, exist_ok=True)
    t0, c0 = time.time(), time.process_time()
    state = search.init(jax.random.key(a.seed))
    state = reseed(search, state, seed_population(spec, a.population_size, lr_log, nn_lr,
                                                  nn_scale), island_axis)
    gen, best = 0, None
    while True:
        state = search.generation(state)
        gen += 1
        cpu, wall = time.process_time() - c0, time.time() - t0
        progs, fits = top_k(state, a.select_top, island_axis)
        sel = np.asarray(select_ev(jax.tree.map(jnp.asarray, progs), select_t,
                                   jax.random.key(0)))
        i = int(np.argmax(sel))
        if best is None or sel[i] > best["select"]:
            one = jax.tree.map(lambda x, i=i: x[i], progs)
            best = {"select": float(sel[i]), "search": float(fits[i]), "gen": gen,
                    "text": to_text(jax.tree.map(jnp.asarray, one))}
            with open(os.path.join(a.out, "best.txt"), "w") as f:
                f.write(best["text"])
        f = np.asarray(state.evolution.fitness)
        c = search.counters
        rec = {"gen": gen, "individuals": c.individuals, "train_steps": c.train_steps,
               "cpu_s": round(cpu, 1), "wall_s": round(wall, 1),
               "load": [round(x, 2) for x in os.getloadavg()],
               "pop_mean": round(float(f.mean()), 4), "pop_best": round(float(f.max()), 4),
               "best_select": round(best["select"], 4), "best_select_search": round(
                   best["search"], 4), "best_gen": best["gen"],
               "fec_hit_rate": c.fec_hit_rate}
        if a.mode == "hurdles":
            rec["hurdles"] = search.hurdle_counters.to_dict()
        emit(rec)
        with open(os.path.join(a.out, "result.json"), "w") as fh:
            json.dump({"args": vars(a), **rec}, fh)
        if cpu > 60 * a.cpu_minutes or wall > 60 * a.wall_minutes:
            break
    return best


def report(a, emit):
    """The saved program next to the baselines on the final tasks; paired per-task
    differences against scikit-learn's logistic regression (mean and its standard error
    over the 100 tasks)."""
    spec, _ = search_space()
    paths = a.program.split(",")
    progs = []
    for path in paths:
        with open(path) as f:
            progs.append(from_text(spec, f.read()))
    t, tt, tests = digit_tasks(FINAL_TASKS, a.epochs, with_test=True)
    ev = Evaluator(spec, EvalConfig(), "auto")
    names = [f"evolved:{p}" for p in paths] + ["tuned_neural_net", "tuned_online_logistic"]
    batch = stack([*progs, neural_net(spec, a.nn_lr, a.nn_init),
                   logistic(spec, a.logistic_lr)])  # one batch: one compilation
    # random ops (the nets' Gaussian inits) draw from the evaluation key: average the keys
    per = {split: np.stack([np.asarray(ev.per_task(batch, tasks, jax.random.key(k)))
                            for k in range(a.eval_keys)])
           for split, tasks in (("valid", t), ("test", tt))}  # [keys, programs, T]
    _, _, lr_valid, lr_test = sklearn_logistic(t, tests)
    lr_per = {"valid": lr_valid, "test": lr_test}
    emit({"method": "sklearn_logistic_regression", "valid": round(float(lr_valid.mean()), 4),
          "test": round(float(lr_test.mean()), 4), "tasks": t.num_tasks})
    for j, name in enumerate(names):
        rec = {"method": name, "keys": a.eval_keys, "tasks": t.num_tasks, "epochs": a.epochs}
        for split in ("valid", "test"):
            x = per[split][:, j]  # [keys, T]
            d = x.mean(0) - lr_per[split]
            rec[split] = round(float(x.mean()), 4)
            rec[f"{split}_sd_over_keys"] = round(float(x.mean(1).std()), 4)
            rec[f"{split}_minus_sklearn_lr"] = round(float(d.mean()), 4)
            rec[f"{split}_minus_sklearn_lr_se"] = round(float(d.std(ddof=1) / np.sqrt(d.size)), 4)
            rec[f"{split}_tasks_better_worse"] = [int((d > 0).sum()), int((d < 0).sum())]
        emit(rec)
    for path, prog in zip(paths, progs, strict=True):
        print(f"# {path}, simplified (instructions that cannot reach the prediction removed)")
        print(to_text(analysis.simplify(prog, spec)))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--stage", choices=("baselines", "search", "report"), default="baselines")
    p.add_argument("--mode", choices=("fec", "hurdles", "islands", "plain"), default="hurdles")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--population-size", type=int, default=100)
    p.add_argument("--batch-size", type=int, default=10)
    p.add_argument("--search-tasks", type=int, default=10)
    p.add_argument("--select-tasks", type=int, default=20)
    p.add_argument("--hurdle-tasks", type=int, default=2)
    p.add_argument("--hurdle-percentile", type=float, default=50.0)
    p.add_argument("--islands", type=int, default=4)
    p.add_argument("--migrate-every", type=int, default=5)
    p.add_argument("--select-top", type=int, default=10)
    p.add_argument("--cpu-minutes", type=float, default=30.0)
    p.add_argument("--wall-minutes", type=float, default=60.0)
    p.add_argument("--logistic-lr", type=float, default=0.1)
    p.add_argument("--nn-lr", type=float, default=0.1)
    p.add_argument("--nn-init", type=float, default=0.1)
    p.add_argument("--program", default=None, help="saved program(s), comma-separated")
    p.add_argument("--eval-keys", type=int, default=5)
    p.add_argument("--out", default="/tmp/digits_evolved")
    a = p.parse_args()

    def emit(rec):
        print(json.dumps({"bench": "digits_evolved", **rec}), flush=True)

    if a.stage == "baselines":
        spec, _ = search_space()
        baselines(spec, a.epochs, emit)
    elif a.stage == "search":
        best = run_search(a, emit)
        print(best["text"])
    else:
        report(a, emit)


if __name__ == "__main__":
    main()
