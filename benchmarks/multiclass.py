"""Multi-class tasks: a hand-written multinomial logistic regression program against
scikit-learn's LogisticRegression on projected 10-class digits and MNIST, on both evaluator
backends, with the evaluation time.

    OPENBLAS_NUM_THREADS=1 python benchmarks/multiclass.py [--seeds 5] [--epochs 3]

Prints, per dataset: the program's validation accuracy (mean, min-max over seeds) per backend,
LogisticRegression's on the same projected features, and CPU-seconds (all threads of this
process) and wall seconds of one evaluation after compilation, with the load average.
"""

from __future__ import annotations

import argparse
import os
import time

import jax
import numpy as np

from evojax_zero import native
from evojax_zero import program as P
from evojax_zero.evaluate.evaluator import Evaluator
from evojax_zero.program import tasks as T
from evojax_zero.program.ops import Op as O

SPEC = P.ProgramSpec(
    num_scalars=4, num_vectors=4, num_matrices=2, feature_size=16,
    setup_ops=[O.SCALAR_CONST_SET], predict_ops=[O.MATRIX_VECTOR_PRODUCT],
    learn_ops=[O.VECTOR_DIFF, O.SCALAR_VECTOR_PRODUCT, O.VECTOR_OUTER_PRODUCT, O.MATRIX_SUM],
    max_setup_size=1, max_predict_size=1, max_learn_size=4)
# m0 holds the class weights; v2 = m0 @ v0 are the logits; the evaluator writes their softmax
# back into v2 before Learn, so m0 += lr * (onehot - p) x^T is SGD on the cross-entropy.
PROGRAM = {
    "setup": [[O.SCALAR_CONST_SET, 0, 0, 2, 0.01]],
    "predict": [[O.MATRIX_VECTOR_PRODUCT, 0, 0, 2]],
    "learn": [[O.VECTOR_DIFF, 1, 2, 3], [O.SCALAR_VECTOR_PRODUCT, 2, 3, 3],
              [O.VECTOR_OUTER_PRODUCT, 3, 0, 1], [O.MATRIX_SUM, 0, 1, 0]],
}


def timed(fn):
    c, w = time.process_time(), time.perf_counter()
    out = jax.block_until_ready(fn())
    return out, time.process_time() - c, time.perf_counter() - w


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=3)
    args = ap.parse_args()
    from sklearn.linear_model import LogisticRegression

    backends = ["native", "xla"] if native.available() else ["xla"]
    programs = P.stack([P.from_lists(SPEC, **PROGRAM)])
    print(f"date {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load "
          f"{os.getloadavg()[0]:.1f}, jax {jax.__version__}, F=16, K=10, lr 0.01, "
          f"{args.epochs} epochs, seeds 0..{args.seeds - 1}")
    for dataset in ("digits", "mnist"):
        try:
            tasks = T.projected_multiclass(list(range(args.seeds)), dataset=dataset,
                                           num_epochs=args.epochs)
        except ValueError as e:
            print(f"{dataset}: skipped ({e})")
            continue
        print(f"\n{dataset}: {tasks.num_tasks} tasks, {tasks.num_train} train / "
              f"{tasks.num_valid} valid examples each")
        for b in backends:
            ev = Evaluator(SPEC, backend=b)
            def run(ev=ev, tasks=tasks):
                return ev.per_task(programs, tasks, jax.random.key(0))

            _, c0, w0 = timed(run)
            fit, c, w = timed(run)
            fit = np.asarray(fit)[0]
            steps = tasks.num_tasks * tasks.num_train * args.epochs
            print(f"  program, {b:6s}: accuracy {fit.mean():.3f} ({fit.min():.3f}-"
                  f"{fit.max():.3f}); evaluation {c:.2f} CPU-s, {w:.2f} s wall "
                  f"({steps / c / 1e6:.2f} M train steps per CPU-s); first call incl. "
                  f"compile {c0:.1f} CPU-s, {w0:.1f} s wall")
        ref = [LogisticRegression(max_iter=3000).fit(np.asarray(tasks.train_x[k]),
                                                     np.asarray(tasks.train_y[k]))
               .score(np.asarray(tasks.valid_x[k]), np.asarray(tasks.valid_y[k]))
               for k in range(tasks.num_tasks)]
        print(f"  scikit-learn LogisticRegression: accuracy {np.mean(ref):.3f} "
              f"({min(ref):.3f}-{max(ref):.3f}); chance 0.100")


if __name__ == "__main__":
    main()
