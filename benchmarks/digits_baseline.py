"""Digits baseline: the best evolved algorithm next to classical baselines on the same data.

The ``digits`` preset (the reference's run_baseline.sh on projected pairs of scikit-learn's
8x8 digits) searches on pairs outside 9 held-out pairs and scores on held-out pairs. Here
every method is trained on exactly the final tasks' projected train split (100 tasks on
the held-out pairs) and scored on the same tasks' validation split (what the evolved
algorithm's fitness measures) and on their held-back test split:

* ``evolved``: the best program of a digits-preset search (online, one pass, as evaluated);
* ``neural_net_sgd``: the reference's hand-written NEURAL_NET_ALGORITHM run by our
  evaluator (two-layer ReLU net, hidden F, online SGD lr 0.01, one pass);
* ``logistic_regression``: scikit-learn ``LogisticRegression`` (L2, C=1, lbfgs) per task;
* ``two_layer_net``: a two-layer ReLU net (hidden 16) trained full-batch with optax Adam
  (lr 1e-2, 300 steps, sigmoid cross-entropy), all tasks in one vmapped jit.

    python benchmarks/digits_baseline.py                       # baselines + a default search
    python benchmarks/digits_baseline.py --max-train-steps 0   # baselines only
    python benchmarks/digits_baseline.py --program best.txt    # score a saved program

Prints one JSON line per method (mean accuracy over the tasks, valid and test).
"""

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402


def _accuracy(logits, y):
    return float(np.mean((np.asarray(logits) > 0) == (np.asarray(y) > 0.5)))


def logistic_regression(train, evals):
    """Per-task sklearn logistic regression; returns mean accuracy per eval split."""
    from sklearn.linear_model import LogisticRegression

    out = {name: [] for name in evals}
    for t, (x, y) in enumerate(train):
        clf = LogisticRegression(C=1.0, max_iter=1000).fit(x, y)
        for name, sets in evals.items():
            ex, ey = sets[t]
            out[name].append(float(clf.score(ex, ey)))
    return {name: float(np.mean(v)) for name, v in out.items()}


def two_layer_net(train_x, train_y, evals, hidden=16, steps=300, lr=1e-2, seed=0):
    """Two-layer ReLU nets (one per task, vmapped), full-batch Adam on sigmoid BCE."""
    import optax

    T, _, F = train_x.shape
    opt = optax.adam(lr)

    def init(key):
        k1, k2 = jax.random.split(key)
        return {"w1": jax.random.normal(k1, (F, hidden)) * jnp.sqrt(2.0 / F),
                "b1": jnp.zeros(hidden),
                "w2": jax.random.normal(k2, (hidden,)) * jnp.sqrt(1.0 / hidden),
                "b2": jnp.zeros(())}

    def logits(p, x):
        return jax.nn.relu(x @ p["w1"] + p["b1"]) @ p["w2"] + p["b2"]

    def loss(p, x, y):
        return optax.sigmoid_binary_cross_entropy(logits(p, x), y).mean()

    @jax.jit
    def fit(keys, xs, ys):
        def one(key, x, y):
            p = init(key)
            s = opt.init(p)

            def step(carry, _):
                p, s = carry
                g = jax.grad(loss)(p, x, y)
                u, s = opt.update(g, s, p)
                return (optax.apply_updates(p, u), s), None

            (p, _), _ = jax.lax.scan(step, (p, s), None, length=steps)
            return p

        return jax.vmap(one)(keys, xs, ys)

    params = fit(jax.random.split(jax.random.key(seed), T), jnp.asarray(train_x, jnp.float32),
                 jnp.asarray(train_y, jnp.float32))
    out = {}
    for name, sets in evals.items():
        accs = []
        for t, (ex, ey) in enumerate(sets):
            p = jax.tree.map(lambda a, t=t: a[t], params)
            accs.append(_accuracy(logits(p, jnp.asarray(ex, jnp.float32)), ey))
        out[name] = float(np.mean(accs))
    return out


def program_accuracy(spec, program, tasks_valid, tasks_test):
    """Accuracy of an AutoML-Zero program (online training on the train split, as the
    evaluator does) on the valid split (its fitness) and on the test split."""
    from evojax_zero import experiment

    return {"valid": experiment.evaluate(spec, program, tasks_valid),
            "test": experiment.evaluate(spec, program, tasks_test)}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--seed", type=int, default=0, help="search seed")
    p.add_argument("--max-train-steps", type=int, default=20_000_000,
                   help="search budget (0: baselines only)")
    p.add_argument("--population-size", type=int, default=100)
    p.add_argument("--batch-size", type=int, default=10)
    p.add_argument("--program", default=None, help="score this saved program (text) instead")
    p.add_argument("--out", default=None, help="search output directory")
    a = p.parse_args()

    from evojax_zero import experiment
    from evojax_zero.program import tasks
    from evojax_zero.program.programs import from_text, to_text
    from evojax_zero.search import initial as algorithms

    cfg = experiment.preset("digits", max_train_steps=a.max_train_steps,
                            population_size=a.population_size, batch_size=a.batch_size)
    spec = cfg.search.spec
    final, tests = cfg.final_tasks.build_with_test()
    test_x = np.stack([x[: min(len(t[1]) for t in tests)] for x, _ in tests])
    test_y = np.stack([y[: test_x.shape[1]] for _, y in tests])
    # the evaluator scores its "valid" arrays: swap in the test split for test accuracy
    final_test = tasks.Tasks(final.train_x, final.train_y, jnp.asarray(test_x, final.train_x.dtype),
                             jnp.asarray(test_y, final.train_y.dtype), final.epoch_order,
                             final.eval_type)
    tx, ty = np.asarray(final.train_x, np.float64), np.asarray(final.train_y, np.float64)
    vx, vy = np.asarray(final.valid_x, np.float64), np.asarray(final.valid_y, np.float64)
    evals = {"valid": list(zip(vx, vy, strict=True)), "test": list(zip(test_x, test_y,
                                                                       strict=True))}
    common = {"tasks": final.num_tasks, "pairs": "held-out", "train": int(tx.shape[1]),
              "valid": int(vx.shape[1]), "test": int(test_x.shape[1]),
              "features": int(tx.shape[2])}

    def report(method, acc, **extra):
        print(json.dumps({"bench": "digits_baseline", "method": method,
                          "valid_accuracy": round(acc["valid"], 4),
                          "test_accuracy": round(acc["test"], 4), **common, **extra}),
              flush=True)

    t0 = time.time()
    report("logistic_regression", logistic_regression(list(zip(tx, ty, strict=True)), evals),
           seconds=round(time.time() - t0, 1))
    t0 = time.time()
    report("two_layer_net", two_layer_net(tx, ty, evals), seconds=round(time.time() - t0, 1))
    nn = algorithms.initial_program("neural_net", spec, (6, 10, 22))
    report("neural_net_sgd", program_accuracy(spec, nn, final, final_test))

    program = None
    if a.program:
        with open(a.program) as f:
            program = from_text(spec, f.read())
        extra = {"program": a.program}
    elif a.max_train_steps > 0:
        t0 = time.time()
        res = experiment.run(cfg, a.seed, out_dir=a.out, progress=False, log=lambda s: None)
        program = res.best
        extra = {"seed": a.seed, "max_train_steps": a.max_train_steps,
                 "individuals": res.individuals, "search_fitness": round(res.search_fitness, 4),
                 "select_fitness": round(res.select_fitness, 4),
                 "search_seconds": round(time.time() - t0, 1),
                 "device": jax.devices()[0].platform}
    if program is not None:
        report("evolved", program_accuracy(spec, program, final, final_test), **extra)
        print(to_text(program))


if __name__ == "__main__":
    main()
