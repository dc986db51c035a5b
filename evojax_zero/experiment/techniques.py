"""Which known techniques an evolved program uses (the paper's Sec. 4.2-4.3 reading).

:func:`detect` looks at the *live* instructions of a program (``evaluate.analysis``: dead
code removed) and, for schedules, at the values the program's memory takes while it trains
on a task. Each detector is a rule that a hand-written example of the technique satisfies
and the hand-written two-layer net does not (tests/test_adaptation.py):

* ``noise_injection``: a random-set op (uniform or Gaussian) in Predict or Learn, so every
  example sees fresh noise (the paper's noisy ReLU / dropout-like adaptation);
* ``learning_rate_decay``: a scalar that Learn keeps across steps, rewrites and uses as a
  factor of a product, whose magnitude falls (non-increasing on >= 95 % of steps) to at
  most half its first value over training;
* ``normalisation``: a norm or standard-deviation op in Learn (gradient or weight
  normalisation);
* ``weight_averaging``: a sum or difference in Learn of two different parameters of the
  same kind that Learn keeps across steps and updates (a running average of weights);
* ``weight_statistic``: a mean, norm or standard deviation of a kept parameter computed in
  Learn (the paper's multi-class adaptation uses the weights' mean in the learning rate).

These are syntactic rules with a dynamic check for decay: a technique found is a candidate to
read in the printed program, and "not found" means no instruction has that shape.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from evojax_zero.evaluate import analysis
from evojax_zero.program.ops import OP_SPECS, Kind, Op
from evojax_zero.program.programs import Program, ProgramSpec, instruction_to_text, to_lists
from evojax_zero.program.tasks import ACCURACY, MULTICLASS_ACCURACY, Tasks

TECHNIQUES = ("noise_injection", "learning_rate_decay", "normalisation", "weight_averaging",
              "weight_statistic")
RANDOM_OPS = frozenset(range(Op.SCALAR_UNIFORM_SET, Op.MATRIX_GAUSSIAN_SET + 1))
NORM_OPS = frozenset({Op.VECTOR_NORM, Op.MATRIX_NORM, Op.MATRIX_COLUMN_NORM, Op.MATRIX_ROW_NORM,
                      Op.MATRIX_ROW_ST_DEV, Op.VECTOR_ST_DEV, Op.MATRIX_ST_DEV})
STAT_OPS = NORM_OPS | {Op.VECTOR_MEAN, Op.MATRIX_MEAN, Op.MATRIX_ROW_MEAN}
PRODUCT_OPS = frozenset({Op.SCALAR_PRODUCT, Op.SCALAR_DIVISION, Op.SCALAR_VECTOR_PRODUCT,
                         Op.SCALAR_MATRIX_PRODUCT})
SUM_OPS = frozenset({Op.VECTOR_SUM, Op.VECTOR_DIFF, Op.MATRIX_SUM, Op.MATRIX_DIFF})
_INPUTS = {(Kind.SCALAR, 0), (Kind.VECTOR, 0)}  # label and features: set before each call
_PREFIX = {Kind.SCALAR: "s", Kind.VECTOR: "v", Kind.MATRIX: "m"}


def _operands(row):
    s = OP_SPECS[int(row[0])]
    reads = [(k, int(a)) for k, a in ((s.in1, row[1]), (s.in2, row[2])) if k != Kind.NONE]
    write = (s.out, int(row[3])) if s.out != Kind.NONE else None
    return s.op, reads, write


def _live_rows(program: Program, multiclass: bool) -> dict[str, list[list]]:
    keep = analysis.live_instructions(program, multiclass)
    lists = to_lists(program)
    return {fn: [r for r, k in zip(lists[fn], keep[fn], strict=True) if k] for fn in lists}


def learn_state(learn_rows: list[list], predict_rows: list[list] = ()) -> set:
    """Addresses Learn keeps across steps: read (their value from before the call) and
    written by live Learn instructions, and not rewritten by Predict in between; the label
    and features excluded."""
    predict_writes = {w for r in predict_rows for w in [_operands(r)[2]] if w is not None}
    deps: dict = {}
    used, written = set(), set()
    for row in learn_rows:
        op, reads, write = _operands(row)
        src = set()
        for a in reads:
            src |= deps.get(a, {a})
        if write is not None and op in (Op.VECTOR_CONST_SET, Op.MATRIX_CONST_SET):
            src |= deps.get(write, {write})
        used |= src
        if write is not None:
            deps[write] = src
            written.add(write)
    return (used & written) - _INPUTS - predict_writes


def _name(addr) -> str:
    return f"{_PREFIX[addr[0]]}{addr[1]}"


def detect(program: Program, spec: ProgramSpec, task: Tasks | None = None,
           key: jax.Array | None = None) -> dict[str, list[str]]:
    """``{technique: [evidence, ...]}`` for every name in :data:`TECHNIQUES` (an empty list:
    not found). ``task`` (the first task of a batch is used) enables the dynamic check of
    learning-rate decay; without it a decay candidate is reported as unchecked. A
    multi-class ``task`` selects the vector output branch (predictions in ``v2``)."""
    multiclass = task is not None and task.eval_type == MULTICLASS_ACCURACY
    rows = _live_rows(program, multiclass)
    found: dict[str, list[str]] = {t: [] for t in TECHNIQUES}
    for fn in ("predict", "learn"):
        for r in rows[fn]:
            if int(r[0]) in RANDOM_OPS:
                found["noise_injection"].append(f"{fn}: {instruction_to_text(r)}")
    state = learn_state(rows["learn"], rows["predict"])
    candidates = set()
    for r in rows["learn"]:
        op, reads, write = _operands(r)
        text = f"learn: {instruction_to_text(r)}"
        if op in NORM_OPS:
            found["normalisation"].append(text)
        if op in STAT_OPS and any(a in state for a in reads):
            found["weight_statistic"].append(text)
        if op in SUM_OPS and len(reads) == 2 and reads[0] != reads[1] \
                and all(a in state for a in reads):
            found["weight_averaging"].append(text)
        if op in PRODUCT_OPS:
            candidates |= {a for a in reads if a[0] == Kind.SCALAR and a in state}
    if candidates:
        if task is None:
            found["learning_rate_decay"] = [f"{_name(a)} (unchecked: no task given)"
                                            for a in sorted(candidates)]
        else:
            traj = scalar_trajectories(program, spec, task, sorted(c[1] for c in candidates),
                                       key)
            for addr, values in traj.items():
                if decays(values):
                    found["learning_rate_decay"].append(
                        f"s{addr}: {values[0]:.3g} after the first step -> {values[-1]:.3g} "
                        f"after {len(values)} steps")
    return found


def decays(values: np.ndarray, factor: float = 0.5, monotone: float = 0.95) -> bool:
    """|values| ends at most ``factor`` x its first value and never rises on at least
    ``monotone`` of the steps."""
    a = np.abs(np.asarray(values, np.float64))
    if len(a) < 3 or not np.all(np.isfinite(a)) or a[0] == 0:
        return False
    return bool(a[-1] <= factor * a[0] and np.mean(np.diff(a) <= 0) >= monotone)


def scalar_trajectories(program: Program, spec: ProgramSpec, task: Tasks, addrs,
                        key: jax.Array | None = None) -> dict[int, np.ndarray]:
    """Scalars ``addrs`` after every Learn while the program trains on the first task of
    ``task`` (every epoch, in the task's example order)."""
    K = task.num_classes if task.eval_type == MULTICLASS_ACCURACY else 0
    init, predict, learn = analysis.export(program, spec, K)
    key = jax.random.key(0) if key is None else key
    order = np.asarray(task.epoch_order[0]).reshape(-1)
    xs = jnp.asarray(task.train_x[0])[order]
    ys = jnp.asarray(task.train_y[0])[order]
    keys = jax.random.split(key, len(order) + 1)
    idx = jnp.asarray(list(addrs), jnp.int32)
    sigmoid = task.eval_type == ACCURACY

    def step(mem, inp):
        x, y, k = inp
        k1, k2 = jax.random.split(k)
        mem, p = predict(mem, x, k1)
        if sigmoid:  # accuracy tasks train on sigmoid(s1), as the evaluator does
            mem = mem.replace(s=mem.s.at[1].set(jax.nn.sigmoid(mem.s[1])))
        if K:  # multi-class: the softmax is written into v2 before Learn
            mem = mem.replace(v=mem.v.at[2].set(p))
        mem = learn(mem, x, y, k2)
        return mem, mem.s[idx]

    _, out = jax.lax.scan(step, init(keys[0]), (xs, ys, keys[1:]))
    out = np.asarray(out)
    return {int(a): out[:, i] for i, a in enumerate(addrs)}


def summary(found: dict[str, list[str]]) -> str:
    """One line: the techniques found, or ``none``."""
    names = [t for t in TECHNIQUES if found.get(t)]
    return ", ".join(names) if names else "none"
