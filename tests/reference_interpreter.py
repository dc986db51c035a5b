"""A plain, readable NumPy interpreter of AutoML-Zero programs, used only by tests.

Written from the contract (/work/shared/AUTOML_ZERO_REFERENCE.md, sections 1-3 and 7), not
from ``evojax_zero/evaluator.py``. It runs ONE program on ONE task with plain Python loops:

* memory (``S`` scalars, ``V`` vectors of size F, ``M`` F x F matrices) is wiped to zero, Setup
  runs once, and memory then persists over all train steps, epochs and validation examples;
* per epoch: train steps (v0 <- x, s0 <- 0, Predict, sigmoid written into s1 for accuracy tasks,
  early stop if |y - s1| is NaN or > max_abs_error, v0 <- x, s0 <- y, Learn), then validation
  (Predict only, s0 = 0);
* fitness = max over epochs of the validation fitness; an early stop in the first epoch gives 0,
  in a later epoch the best fitness so far.
* multi-class tasks (eval type ``multiclass_accuracy``, K = ``num_classes``; the vector output
  branch, docs/evaluator.md "Multi-class tasks"): labels are class indices; v1 <- 0 before
  Predict and v1 <- one-hot label before Learn (s0 stays 0); in training v2 <- softmax of its
  first K entries (zeros after), written back, error sum_k |onehot_k - p_k|; in validation an
  example is correct when the last index of the maximum of that softmax is the label.

``dtype`` selects float64 (the reference) or float32 (to compare with a float32 evaluator).
``sum_order`` selects how reductions (dot, norm, mean, matrix products, std) are summed:
"sequential" (left to right) or "pairwise" (a balanced tree). The reference sums in Eigen's SIMD
order; running both orders tells a test whether a program is sensitive to summation order.

Random ops (59-64) call an injectable ``sampler`` except in their deterministic cases, which are
exact: uniform with f0 >= f1 returns f0 (abseil's rule for an empty interval) and gaussian with
stdev 0 returns the mean.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import numpy as np

from evojax_zero.program.ops import Op

MINUS_TWO_OVER_PI = -0.63661977236758138243
RMS_ERROR = "rms_error"
ACCURACY = "accuracy"
MULTICLASS = "multiclass_accuracy"


# ---------------------------------------------------------------------------------------------
# Random sampling (injectable)
# ---------------------------------------------------------------------------------------------


class NumpySampler:
    """Default sampler: numpy's Generator. Only called for non-degenerate random ops."""

    def __init__(self, seed: int = 0):
        self.rng = np.random.default_rng(seed)
        self.calls: list[tuple] = []

    def uniform(self, low: float, high: float, shape: tuple[int, ...]) -> np.ndarray:
        self.calls.append(("uniform", low, high, shape))
        return self.rng.uniform(low, high, size=shape)

    def gaussian(self, mean: float, stdev: float, shape: tuple[int, ...]) -> np.ndarray:
        self.calls.append(("gaussian", mean, stdev, shape))
        return mean + stdev * self.rng.standard_normal(size=shape)


class ForbiddenSampler:
    """A sampler that fails: for programs whose random ops must all be deterministic."""

    def uniform(self, low, high, shape):
        raise AssertionError(f"uniform({low}, {high}) would need a random draw")

    def gaussian(self, mean, stdev, shape):
        raise AssertionError(f"gaussian({mean}, {stdev}) would need a random draw")


# ---------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Result:
    """Fitness of one program on one task plus the evaluator's ``Trace`` quantities."""

    fitness: float
    epoch_fitness: np.ndarray  # [E'] validation fitness per epoch run (0 where not reached)
    train_error: np.ndarray  # [n] |y - s1| of the first epoch's steps that reached Learn
    train_prediction: np.ndarray  # [n] s1 after Predict (after sigmoid for accuracy;
    #                                    the predicted class for multi-class tasks)
    valid_error: np.ndarray  # [Nv'] recorded |error| of the first epoch's validation
    valid_prediction: np.ndarray  # [Nv'] raw s1 after Predict in the first validation
    #                                    (the predicted class for multi-class tasks)
    stopped: bool  # training stopped early in some epoch
    num_train_steps: int  # train steps started (the stopping step included)


# ---------------------------------------------------------------------------------------------
# Summation helpers
# ---------------------------------------------------------------------------------------------


def _sum(values, order: str, dtype):
    """Sum a 1-D sequence in the requested order, accumulating in ``dtype``."""
    values = [dtype(v) for v in values]
    if order == "sequential":
        total = dtype(0.0)
        for v in values:
            total = dtype(total + v)
        return total
    if order == "pairwise":
        while len(values) > 1:
            nxt = []
            for i in range(0, len(values) - 1, 2):
                nxt.append(dtype(values[i] + values[i + 1]))
            if len(values) % 2:
                nxt.append(values[-1])
            values = nxt
        return values[0] if values else dtype(0.0)
    raise ValueError(f"unknown sum order {order!r}")


# ---------------------------------------------------------------------------------------------
# The interpreter
# ---------------------------------------------------------------------------------------------


class Memory:
    def __init__(self, num_scalars, num_vectors, num_matrices, F, dtype):
        self.s = np.zeros(num_scalars, dtype)
        self.v = np.zeros((num_vectors, F), dtype)
        self.m = np.zeros((num_matrices, F, F), dtype)


def _scalar_min(a, b):
    return b if b < a else a  # std::min


def _scalar_max(a, b):
    return b if a < b else a  # std::max


def _matrix_min(a, b):
    return a if a < b else b  # the reference's explicit loop


def _matrix_max(a, b):
    return a if a > b else b


def const_set_index(f, F: int) -> int:
    """``(int)(F * f)`` computed in float32 (F and the stored data are float32)."""
    index = int(np.float32(F) * np.float32(f))
    if not 0 <= index < F:
        raise ValueError(f"const-set index fraction {f!r} gives index {index} outside [0, {F})")
    return index


class Interpreter:
    """Executes instructions on a Memory. Every op computes from its inputs before writing."""

    def __init__(self, mem: Memory, F: int, dtype, sum_order: str, sampler):
        self.mem = mem
        self.F = F
        self.dtype = dtype
        self.order = sum_order
        self.sampler = sampler

    # -- reductions -------------------------------------------------------------------------
    def sum(self, values):
        return _sum(list(np.ravel(values)), self.order, self.dtype)

    def dot(self, a, b):
        return self.sum([self.dtype(x * y) for x, y in zip(a, b, strict=True)])

    def norm(self, a):
        return self.dtype(np.sqrt(self.dot(a, a)))

    def mean(self, a):
        a = np.ravel(a)
        return self.dtype(self.sum(a) / self.dtype(a.size))

    def std(self, a):
        a = np.ravel(a)
        mean = self.mean(a)
        second = self.dtype(self.dot(a, a) / self.dtype(a.size))
        return self.dtype(np.sqrt(self.dtype(second - self.dtype(mean * mean))))  # no clamping

    def matvec(self, m, v):
        return np.array([self.dot(m[i], v) for i in range(self.F)], self.dtype)

    def matmul(self, a, b):
        out = np.zeros((self.F, self.F), self.dtype)
        for i in range(self.F):
            for j in range(self.F):
                out[i, j] = self.dot(a[i, :], b[:, j])
        return out

    # -- one instruction --------------------------------------------------------------------
    def execute(self, instr) -> None:
        with np.errstate(all="ignore"):
            self._execute(instr)

    def _execute(self, instr) -> None:
        op, in1, in2, out, act, f0, f1, f2 = (list(instr) + [0.0] * 8)[:8]
        op = Op(int(op))
        s, v, m = self.mem.s, self.mem.v, self.mem.m
        d = self.dtype
        F = self.F
        O = Op

        # Scalar arithmetic (inputs are read into locals before the output is written).
        if op == O.NO_OP:
            return
        elif op == O.SCALAR_SUM:
            s[out] = d(s[in1] + s[in2])
        elif op == O.SCALAR_DIFF:
            s[out] = d(s[in1] - s[in2])
        elif op == O.SCALAR_PRODUCT:
            s[out] = d(s[in1] * s[in2])
        elif op == O.SCALAR_DIVISION:
            s[out] = d(s[in1] / s[in2])
        elif op == O.SCALAR_ABS:
            s[out] = np.abs(s[in1])
        elif op == O.SCALAR_RECIPROCAL:
            s[out] = d(d(1.0) / s[in1])
        elif op == O.SCALAR_SIN:
            s[out] = np.sin(s[in1])
        elif op == O.SCALAR_COS:
            s[out] = np.cos(s[in1])
        elif op == O.SCALAR_TAN:
            s[out] = np.tan(s[in1])
        elif op == O.SCALAR_ARCSIN:
            s[out] = np.arcsin(s[in1])
        elif op == O.SCALAR_ARCCOS:
            s[out] = np.arccos(s[in1])
        elif op == O.SCALAR_ARCTAN:
            s[out] = np.arctan(s[in1])
        elif op == O.SCALAR_EXP:
            s[out] = np.exp(s[in1])
        elif op == O.SCALAR_LOG:
            s[out] = np.log(s[in1])
        # Heaviside: scalar uses >= 0, vector and matrix use > 0; NaN -> 0 in all three.
        elif op == O.SCALAR_HEAVYSIDE:
            s[out] = 1.0 if s[in1] >= 0.0 else 0.0
        elif op == O.VECTOR_HEAVYSIDE:
            v[out] = [1.0 if x > 0.0 else 0.0 for x in v[in1]]
        elif op == O.MATRIX_HEAVYSIDE:
            m[out] = [[1.0 if x > 0.0 else 0.0 for x in row] for row in m[in1]]
        # Vector and matrix arithmetic.
        elif op == O.SCALAR_VECTOR_PRODUCT:
            v[out] = v[in2] * s[in1]
        elif op == O.SCALAR_BROADCAST:
            v[out] = np.full(F, s[in1], d)
        elif op == O.VECTOR_RECIPROCAL:
            v[out] = d(1.0) / v[in1]
        elif op == O.VECTOR_NORM:
            s[out] = self.norm(v[in1])
        elif op == O.VECTOR_ABS:
            v[out] = np.abs(v[in1])
        elif op == O.VECTOR_SUM:
            v[out] = v[in1] + v[in2]
        elif op == O.VECTOR_DIFF:
            v[out] = v[in1] - v[in2]
        elif op == O.VECTOR_PRODUCT:
            v[out] = v[in1] * v[in2]
        elif op == O.VECTOR_DIVISION:
            v[out] = v[in1] / v[in2]
        elif op == O.VECTOR_INNER_PRODUCT:
            s[out] = self.dot(v[in1], v[in2])
        elif op == O.VECTOR_OUTER_PRODUCT:
            a, b = v[in1].copy(), v[in2].copy()
            m[out] = [[a[i] * b[j] for j in range(F)] for i in range(F)]
        elif op == O.SCALAR_MATRIX_PRODUCT:
            m[out] = m[in2] * s[in1]
        elif op == O.MATRIX_RECIPROCAL:
            m[out] = d(1.0) / m[in1]
        elif op == O.MATRIX_VECTOR_PRODUCT:
            v[out] = self.matvec(m[in1].copy(), v[in2].copy())
        elif op == O.VECTOR_COLUMN_BROADCAST:  # M[i][j] = v[i]
            a = v[in1].copy()
            m[out] = [[a[i] for _ in range(F)] for i in range(F)]
        elif op == O.VECTOR_ROW_BROADCAST:  # M[i][j] = v[j]
            a = v[in1].copy()
            m[out] = [[a[j] for j in range(F)] for _ in range(F)]
        elif op == O.MATRIX_NORM:
            s[out] = self.norm(m[in1].ravel())
        elif op == O.MATRIX_COLUMN_NORM:
            a = m[in1].copy()
            v[out] = [self.norm(a[:, j]) for j in range(F)]
        elif op == O.MATRIX_ROW_NORM:
            a = m[in1].copy()
            v[out] = [self.norm(a[i, :]) for i in range(F)]
        elif op == O.MATRIX_TRANSPOSE:
            m[out] = m[in1].T.copy()
        elif op == O.MATRIX_ABS:
            m[out] = np.abs(m[in1])
        elif op == O.MATRIX_SUM:
            m[out] = m[in1] + m[in2]
        elif op == O.MATRIX_DIFF:
            m[out] = m[in1] - m[in2]
        elif op == O.MATRIX_PRODUCT:
            m[out] = m[in1] * m[in2]
        elif op == O.MATRIX_DIVISION:
            m[out] = m[in1] / m[in2]
        elif op == O.MATRIX_MATRIX_PRODUCT:
            m[out] = self.matmul(m[in1].copy(), m[in2].copy())
        # Min / max: scalar and vector follow std::min/std::max, matrix the explicit loop.
        elif op == O.SCALAR_MIN:
            s[out] = _scalar_min(s[in1], s[in2])
        elif op == O.VECTOR_MIN:
            a, b = v[in1].copy(), v[in2].copy()
            v[out] = [_scalar_min(x, y) for x, y in zip(a, b, strict=True)]
        elif op == O.MATRIX_MIN:
            a, b = m[in1].ravel().copy(), m[in2].ravel().copy()
            m[out] = np.array([_matrix_min(x, y) for x, y in zip(a, b, strict=True)],
                              d).reshape(F, F)
        elif op == O.SCALAR_MAX:
            s[out] = _scalar_max(s[in1], s[in2])
        elif op == O.VECTOR_MAX:
            a, b = v[in1].copy(), v[in2].copy()
            v[out] = [_scalar_max(x, y) for x, y in zip(a, b, strict=True)]
        elif op == O.MATRIX_MAX:
            a, b = m[in1].ravel().copy(), m[in2].ravel().copy()
            m[out] = np.array([_matrix_max(x, y) for x, y in zip(a, b, strict=True)],
                              d).reshape(F, F)
        # Statistics.
        elif op == O.VECTOR_MEAN:
            s[out] = self.mean(v[in1])
        elif op == O.MATRIX_MEAN:
            s[out] = self.mean(m[in1])
        elif op == O.MATRIX_ROW_MEAN:
            a = m[in1].copy()
            v[out] = [self.mean(a[i]) for i in range(F)]
        elif op == O.MATRIX_ROW_ST_DEV:
            a = m[in1].copy()
            v[out] = [self.std(a[i]) for i in range(F)]
        elif op == O.VECTOR_ST_DEV:
            s[out] = self.std(v[in1])
        elif op == O.MATRIX_ST_DEV:
            s[out] = self.std(m[in1])
        # Constant sets: stored data values are float32; activation_data is a double.
        elif op == O.SCALAR_CONST_SET:
            s[out] = d(act)
        elif op == O.VECTOR_CONST_SET:
            v[out][const_set_index(f0, F)] = d(np.float32(f1))
        elif op == O.MATRIX_CONST_SET:
            m[out][const_set_index(f0, F), const_set_index(f1, F)] = d(np.float32(f2))
        # Random sets.
        elif op in (O.SCALAR_UNIFORM_SET, O.VECTOR_UNIFORM_SET, O.MATRIX_UNIFORM_SET):
            shape = {O.SCALAR_UNIFORM_SET: (), O.VECTOR_UNIFORM_SET: (F,),
                     O.MATRIX_UNIFORM_SET: (F, F)}[op]
            low, high = float(np.float32(f0)), float(np.float32(f1))
            if low >= high:  # abseil returns `low` for an empty open interval
                value = np.full(shape, low, d)
            else:
                value = np.asarray(self.sampler.uniform(low, high, shape), d).reshape(shape)
            self._write(op, out, value)
        elif op in (O.SCALAR_GAUSSIAN_SET, O.VECTOR_GAUSSIAN_SET, O.MATRIX_GAUSSIAN_SET):
            shape = {O.SCALAR_GAUSSIAN_SET: (), O.VECTOR_GAUSSIAN_SET: (F,),
                     O.MATRIX_GAUSSIAN_SET: (F, F)}[op]
            mean, stdev = float(np.float32(f0)), float(np.float32(f1))
            if stdev == 0.0:
                value = np.full(shape, mean, d)
            else:
                value = np.asarray(self.sampler.gaussian(mean, stdev, shape), d).reshape(shape)
            self._write(op, out, value)
        else:
            raise ValueError(f"unsupported op {op!r}")

    def _write(self, op, out, value):
        if op in (Op.SCALAR_UNIFORM_SET, Op.SCALAR_GAUSSIAN_SET):
            self.mem.s[out] = value
        elif op in (Op.VECTOR_UNIFORM_SET, Op.VECTOR_GAUSSIAN_SET):
            self.mem.v[out] = value
        else:
            self.mem.m[out] = value

    def run_function(self, instructions) -> None:
        for instr in instructions:
            self.execute(instr)


def sigmoid(x, dtype=np.float64):
    x = dtype(x)
    with np.errstate(over="ignore"):
        return dtype(dtype(1.0) / dtype(dtype(1.0) + np.exp(-x)))


def softmax_first(v, num_classes: int, dtype, sum_order: str = "sequential"):
    """Softmax of ``v[:K]`` shifted by its max, zeros after (the reference's
    TruncatingSoftmax); all NaN when a logit is NaN or +inf."""
    v = np.asarray(v, dtype)
    head = [dtype(a) for a in v[:num_classes]]
    top = head[0]
    for a in head[1:]:
        top = a if (math.isnan(a) or a > top) else top
    with np.errstate(all="ignore"):
        e = [dtype(np.exp(dtype(a - top))) for a in head]
        total = _sum(e, sum_order, dtype)
        p = [dtype(a / total) for a in e]
    return np.array(p + [dtype(0.0)] * (len(v) - num_classes), dtype)


def last_argmax(p) -> int:
    """The reference's Argmax: start at 0, move to every k with p[k] >= the best so far (so
    ties go to the last index; NaN never compares true)."""
    best, top = 0, -math.inf
    for k, a in enumerate(p):
        if a >= top:
            best, top = k, a
    return best


def one_hot(label: float, num_classes: int, F: int, dtype) -> np.ndarray:
    out = np.zeros(F, dtype)
    if 0 <= label < num_classes:
        out[int(label)] = 1.0
    return out


def flip_and_squash(r: float) -> float:
    if math.isnan(r) or math.isinf(r):
        return 0.0
    return 1.0 + MINUS_TWO_OVER_PI * math.atan(r)


def _as_lists(program) -> dict:
    if isinstance(program, dict):
        return {fn: [list(i) for i in program.get(fn, [])] for fn in ("setup", "predict", "learn")}
    from evojax_zero.program.programs import to_lists

    return to_lists(program)


def _get(task, name):
    return task[name] if isinstance(task, dict) else getattr(task, name)


def task_arrays(tasks, t: int) -> dict:
    """Task ``t`` of a ``Tasks`` batch as a dict of float64 numpy arrays."""
    return dict(
        train_x=np.asarray(tasks.train_x[t], np.float64),
        train_y=np.asarray(tasks.train_y[t], np.float64),
        valid_x=np.asarray(tasks.valid_x[t], np.float64),
        valid_y=np.asarray(tasks.valid_y[t], np.float64),
        epoch_order=np.asarray(tasks.epoch_order[t], np.int64),
        eval_type=tasks.eval_type,
        num_classes=tasks.num_classes,
    )


def run(program, task, num_scalars: int, num_vectors: int, num_matrices: int, *,
        num_train_examples: int | None = None, num_valid_examples: int | None = None,
        max_abs_error: float = 100.0, sampler=None, dtype=np.float64,
        sum_order: str = "sequential") -> Result:
    """Execute ``program`` (to_lists dict or Program) on ``task`` (dict or object with
    train_x [N,F], train_y [N], valid_x [Nv,F], valid_y [Nv], epoch_order [E,N], eval_type)."""
    lists = _as_lists(program)
    d = dtype
    train_x = np.asarray(_get(task, "train_x"), np.float64).astype(d)
    train_y = np.asarray(_get(task, "train_y"), np.float64).astype(d)
    valid_x = np.asarray(_get(task, "valid_x"), np.float64).astype(d)
    valid_y = np.asarray(_get(task, "valid_y"), np.float64).astype(d)
    epoch_order = np.asarray(_get(task, "epoch_order"), np.int64)
    eval_type = _get(task, "eval_type")
    if eval_type not in (RMS_ERROR, ACCURACY, MULTICLASS):
        raise ValueError(f"unknown eval_type {eval_type!r}")
    K = int(_get(task, "num_classes")) if eval_type == MULTICLASS else 0
    N, F = train_x.shape
    Nv = valid_x.shape[0]
    E = epoch_order.shape[0]
    sampler = NumpySampler(0) if sampler is None else sampler

    # Executor constructor: wipe memory, run Setup once.
    mem = Memory(num_scalars, num_vectors, num_matrices, F, d)
    interp = Interpreter(mem, F, d, sum_order, sampler)
    interp.run_function(lists["setup"])

    n_train = N * E if num_train_examples is None else min(int(num_train_examples), N * E)
    n_valid = Nv if num_valid_examples is None else min(int(num_valid_examples), Nv)
    num_epochs_run = -(-n_train // N)  # ceil
    first_steps = min(N, n_train)
    train_error = np.full(first_steps, np.nan)
    train_prediction = np.full(first_steps, np.nan)
    valid_error = np.full(n_valid, np.nan)
    valid_prediction = np.full(n_valid, np.nan)
    epoch_fitness = np.zeros(num_epochs_run)
    best = 0.0
    stopped = False
    steps_done = 0

    with np.errstate(all="ignore"):
        remaining = n_train
        epoch = 0
        while remaining > 0:
            steps = min(N, remaining)
            record = epoch == 0
            # ---- training ----
            ok = True
            for step in range(steps):
                i = int(epoch_order[epoch, step])
                x, y = train_x[i], train_y[i]
                steps_done += 1
                mem.v[0] = x
                mem.s[0] = 0.0
                if K:
                    mem.v[1] = 0.0  # the label vector is hidden from Predict
                interp.run_function(lists["predict"])
                if K:
                    p = softmax_first(mem.v[2], K, d, sum_order)
                    mem.v[2] = p  # written back into memory
                    pred = d(last_argmax(p))
                    err = _sum(np.abs(one_hot(y, K, F, d) - p), sum_order, d)
                else:
                    if eval_type == ACCURACY:
                        mem.s[1] = sigmoid(mem.s[1], d)  # written back into memory
                    pred = mem.s[1]
                    err = d(np.abs(d(y - pred)))
                if record:
                    train_prediction[step] = pred
                if math.isnan(err) or err > max_abs_error:
                    ok = False
                    break
                if record:
                    train_error[step] = err
                mem.v[0] = x
                if K:
                    mem.s[0] = 0.0
                    mem.v[1] = one_hot(y, K, F, d)
                else:
                    mem.s[0] = y
                interp.run_function(lists["learn"])
            if not ok:
                stopped = True
                if epoch == 0:
                    best = 0.0
                break
            remaining -= steps
            # ---- validation (Predict only; memory persists) ----
            loss = d(0.0)
            fitness = None
            for k in range(n_valid):
                x, y = valid_x[k], valid_y[k]
                mem.v[0] = x
                mem.s[0] = 0.0
                if K:
                    mem.v[1] = 0.0
                interp.run_function(lists["predict"])
                logit = mem.s[1]
                if K:
                    p = softmax_first(mem.v[2], K, d, sum_order)
                    logit = d(last_argmax(p))  # recorded: the predicted class
                if record:
                    valid_prediction[k] = logit
                if K:
                    e = math.inf if ((p > 1.0) | (p < 0.0)).any() else float(logit != y)
                    loss = d(loss + d(e))
                elif eval_type == RMS_ERROR:
                    e = d(y - logit)
                    loss = d(loss + d(e * e))
                else:
                    p = sigmoid(logit, d)
                    if p > 1.0 or p < 0.0:
                        e = math.inf
                    else:
                        e = 0.0 if (y > 0.5) == (p > 0.5) else 1.0
                    loss = d(loss + d(e))
                abs_e = abs(float(e))
                if math.isnan(abs_e) or abs_e > max_abs_error:
                    fitness = 0.0
                    break
                if record:
                    valid_error[k] = abs_e
            if fitness is None:
                mean_loss = float(loss) / float(Nv)  # divisor: the task's full valid count
                if eval_type == RMS_ERROR:
                    fitness = flip_and_squash(math.sqrt(mean_loss))
                else:
                    fitness = 1.0 - mean_loss
            epoch_fitness[epoch] = fitness
            best = max(fitness, best)
            epoch += 1

    return Result(
        fitness=float(best), epoch_fitness=epoch_fitness, train_error=train_error,
        train_prediction=train_prediction, valid_error=valid_error,
        valid_prediction=valid_prediction, stopped=stopped, num_train_steps=steps_done,
    )


def combine(fitnesses, mode: str = "mean") -> float:
    """Combine per-task fitnesses as the reference's evaluator does.

    MEAN is the plain average; MEDIAN is ``nth_element`` at index ``n // 2`` of the values,
    i.e. the upper median for an even count (no averaging of the two middle values).
    """
    values = [float(f) for f in fitnesses]
    if mode == "mean":
        total = 0.0
        for f in values:
            total += f
        return total / len(values)
    if mode == "median":
        return sorted(values)[len(values) // 2]
    raise ValueError(f"unknown combination mode {mode!r}")


def make_task(train_y, valid_y, train_x=None, valid_x=None, F=4, epoch_order=None,
              eval_type="rms_error", num_classes=0):
    """One task as a dict of float64 numpy arrays (the interpreter's input)."""
    train_y = np.asarray(train_y, np.float64)
    valid_y = np.asarray(valid_y, np.float64)
    N, Nv = len(train_y), len(valid_y)
    train_x = np.zeros((N, F)) if train_x is None else np.asarray(train_x, np.float64)
    valid_x = np.zeros((Nv, F)) if valid_x is None else np.asarray(valid_x, np.float64)
    epoch_order = [list(range(N))] if epoch_order is None else epoch_order
    return dict(train_x=train_x, train_y=train_y, valid_x=valid_x, valid_y=valid_y,
                epoch_order=np.asarray(epoch_order, np.int64), eval_type=eval_type,
                num_classes=num_classes)


# The reference's LINEAR_ALGORITHM (SGD on linear regression) as instruction lists.
LINEAR_ALGORITHM = {
    "setup": [[Op.SCALAR_CONST_SET, 0, 0, 2, 0.01]],  # s2 = 0.01 (learning rate)
    "predict": [[Op.VECTOR_INNER_PRODUCT, 1, 0, 1]],  # s1 = dot(v1, v0)
    "learn": [[Op.SCALAR_DIFF, 0, 1, 3],  # s3 = s0 - s1
              [Op.SCALAR_PRODUCT, 2, 3, 3],  # s3 = s2 * s3
              [Op.SCALAR_VECTOR_PRODUCT, 3, 0, 2],  # v2 = s3 * v0
              [Op.VECTOR_SUM, 1, 2, 1]],  # v1 = v1 + v2
}


def tournament_children(key, pop, fit, cfg, mutate_batch):
    """One ask of the search, written out from its definition on host arrays: B tournaments
    of T draws with replacement (first best wins), each winner mutated with its own key.
    Keys as the search documents them: ``key, k_ask, k_eval = split(key, 3)``,
    ``k_sel, k_mut = split(k_ask)``. Returns ``(key, k_eval, children)``."""
    P, T, B = cfg.population_size, cfg.tournament_size, cfg.batch_size
    key, k_ask, k_eval = jax.random.split(key, 3)
    k_sel, k_mut = jax.random.split(k_ask)
    draws = np.asarray(jax.random.randint(k_sel, (B, T), 0, P))
    winners = np.array([row[np.argmax(fit[row])] for row in draws])
    children = mutate_batch(jax.random.split(k_mut, B),
                            jax.tree.map(lambda x, w=winners: x[w], pop))
    return key, k_eval, children

