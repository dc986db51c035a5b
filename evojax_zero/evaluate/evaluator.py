"""Score a population of programs on a batch of tasks in one jitted, vmapped call.

Per (program, task), exactly as the reference executor: memory wiped, Setup once, then
per epoch ``Train(min(N, remaining))`` followed by ``Validate()``; the fitness is the best
validation fitness over epochs. A train step sets ``v0 <- x, s0 <- 0``, runs Predict
(for accuracy tasks ``s1 <- sigmoid(s1)`` in memory), stops early if ``|y - s1|`` is NaN or
exceeds ``max_abs_error``, then sets ``v0 <- x, s0 <- y`` and runs Learn. Memory persists
across examples, epochs and validation. An early stop in the first epoch gives fitness 0;
in a later epoch, the best fitness so far. Multi-class tasks use the vector output branch
instead of ``s0``/``s1`` (label one-hot in ``v1``, prediction softmax in ``v2``; see
:mod:`evojax_zero.evaluate.multiclass`).

Example::

    ev = Evaluator(spec, EvalConfig())
    fitness = ev(programs, tasks, jax.random.key(0))   # float[P]
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
from flax import struct

from evojax_zero import native
from evojax_zero.evaluate import multiclass
from evojax_zero.evaluate.interpreter import FunctionRunner, Memory, sigmoid, zero_memory
from evojax_zero.native import cuda
from evojax_zero.program.fitness import flip_and_squash
from evojax_zero.program.programs import Program, ProgramSpec, check_structure, validate
from evojax_zero.program.tasks import (
    ACCURACY,
    EVAL_TYPES,
    LABELS_VECTOR_ADDRESS,
    MULTICLASS_ACCURACY,
    PREDICTIONS_VECTOR_ADDRESS,
    Tasks,
    check_num_classes,
)

COMBINE_MODES = ("mean", "median")
BACKENDS = ("auto", "xla", "native", "cuda")


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    """How programs are trained and scored on each task.

    num_train_examples: train steps requested per task (None: all ``N_train * epochs``).
    num_valid_examples: validate only the first k examples (None: all). The fitness
        divisor stays the task's full validation count, as in the reference.
    max_abs_error: errors above this stop training early (exactly equal is accepted).
    combine: how per-task fitnesses combine, "mean" or "median".
    """

    num_train_examples: int | None = None
    num_valid_examples: int | None = None
    max_abs_error: float = 100.0
    combine: str = "mean"

    def __post_init__(self):
        for name in ("num_train_examples", "num_valid_examples"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise ValueError(f"EvalConfig.{name} must be None or an int >= 1, got {v!r}")
        if not (isinstance(self.max_abs_error, int | float) and self.max_abs_error > 0):
            raise ValueError(f"EvalConfig.max_abs_error must be > 0, got {self.max_abs_error!r}")
        if self.combine not in COMBINE_MODES:
            raise ValueError(f"EvalConfig.combine must be one of {COMBINE_MODES}, "
                             f"got {self.combine!r}")


@struct.dataclass
class Trace:
    """Per (program, task) details of an evaluation; see docs/evaluator_api.md."""

    fitness: jax.Array  # [P, T]
    epoch_fitness: jax.Array  # [P, T, E']
    train_error: jax.Array  # [P, T, n]
    train_prediction: jax.Array  # [P, T, n]
    valid_error: jax.Array  # [P, T, Nv']
    valid_prediction: jax.Array  # [P, T, Nv']
    stopped: jax.Array  # bool[P, T]
    train_steps: jax.Array  # int32[P, T]: train steps executed (a stopping step counts)


def epoch_schedule(num_train: int, num_epochs: int, requested: int | None) -> list[int]:
    """Steps trained in each epoch: ``min(N, remaining)`` until the total is used."""
    total = num_train * num_epochs if requested is None else min(requested, num_train * num_epochs)
    return [min(num_train, total - e * num_train) for e in range(math.ceil(total / num_train))]


def _check_tasks(tasks, spec: ProgramSpec) -> None:
    """Types and shapes of a Tasks batch (values are checked where data enter:
    ``tasks.from_arrays``)."""
    if not isinstance(tasks, Tasks):
        raise ValueError(f"tasks must be a tasks.Tasks (e.g. from tasks.from_arrays), got "
                         f"{type(tasks).__name__}")
    if tasks.eval_type not in EVAL_TYPES:
        raise ValueError(f"tasks.eval_type must be one of {EVAL_TYPES}, "
                         f"got {tasks.eval_type!r}")
    tx, ty, vx, vy, order = (tasks.train_x, tasks.train_y, tasks.valid_x, tasks.valid_y,
                             tasks.epoch_order)
    if tx.ndim != 3 or vx.ndim != 3:
        raise ValueError(f"tasks.train_x/valid_x must be [T, N, F], got {tx.shape}, {vx.shape}")
    T, N, F = tx.shape
    want = {"train_y": (ty.shape, (T, N)), "valid_x": (vx.shape, (T, vx.shape[1], F)),
            "valid_y": (vy.shape, (T, vx.shape[1])),
            "epoch_order": (order.shape, (T, order.shape[1] if order.ndim == 3 else -1, N))}
    for name, (got, need) in want.items():
        if tuple(got) != need:
            raise ValueError(f"tasks.{name} has shape {tuple(got)}, expected {need} to match "
                             f"train_x {tx.shape}; fix: build tasks with tasks.from_arrays")
    if min(T, N, vx.shape[1], order.shape[1]) == 0:
        raise ValueError(f"tasks are empty (train_x {tx.shape}, valid_x {vx.shape}, "
                         f"epoch_order {order.shape}); fix: at least one task, example and "
                         f"epoch")
    if F != spec.feature_size:
        raise ValueError(f"tasks have feature size {F}; the spec's feature_size is "
                         f"{spec.feature_size}")
    if tasks.eval_type == MULTICLASS_ACCURACY:
        check_num_classes(tasks.num_classes, F)
        need = PREDICTIONS_VECTOR_ADDRESS + 1
        if spec.num_vectors < need:
            raise ValueError(f"multi-class tasks need spec.num_vectors >= {need} (v0 features, "
                             f"v{LABELS_VECTOR_ADDRESS} label, v{PREDICTIONS_VECTOR_ADDRESS} "
                             f"prediction), got num_vectors={spec.num_vectors}; fix: "
                             f"ProgramSpec(num_vectors={need}, ...) or more")


class Evaluator:
    """Jitted evaluation of programs (leading axis P) on tasks (leading axis T)."""

    def __init__(self, spec: ProgramSpec, config: EvalConfig | None = None,
                 backend: str = "auto"):
        if not isinstance(spec, ProgramSpec):
            raise ValueError(f"spec must be a ProgramSpec, got {type(spec).__name__}")
        config = EvalConfig() if config is None else config
        if not isinstance(config, EvalConfig):
            raise ValueError(f"config must be an EvalConfig, got {type(config).__name__}")
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        self.spec = spec
        self.config = config
        self.backend = self._resolve_backend(backend)
        self._runners = {fn: FunctionRunner(spec, fn) for fn in ("setup", "predict", "learn")}
        self._per_task = jax.jit(lambda p, t, k: self._evaluate(p, t, k, record=False).fitness)
        self._trace = jax.jit(lambda p, t, k: self._evaluate(p, t, k, record=True))
        self._combined = jax.jit(lambda p, t, k: self._combine(
            self._evaluate(p, t, k, record=False).fitness))

    @staticmethod
    def _resolve_backend(backend: str) -> str:
        if backend == "xla":
            return "xla"
        if backend == "cuda":
            # The CUDA kernel is opt-in: "auto" does not pick it until it has been validated
            # on GPU hardware (docs/evaluator.md).
            if not cuda.available():
                raise ValueError(f"backend='cuda' is unavailable: {cuda.why_unavailable()}")
            return "cuda"
        native_ok = native.available()
        if backend == "native":
            if not native_ok:
                reason = native.why_unavailable()
                raise ValueError(f"backend='native' is unavailable: {reason}")
            return "native"
        return "native" if native_ok and jax.default_backend() == "cpu" else "xla"

    # -- public API ---------------------------------------------------------------------

    def __call__(self, programs: Program, tasks: Tasks, key: jax.Array) -> jax.Array:
        """Fitness per program, combined over tasks (mean or median): float[P]."""
        self._check(programs, tasks)
        return self._combined(programs, tasks, self._keys(key, programs))

    def per_task(self, programs: Program, tasks: Tasks, key: jax.Array) -> jax.Array:
        """Fitness per program and task: float[P, T]."""
        self._check(programs, tasks)
        return self._per_task(programs, tasks, self._keys(key, programs))

    def trace(self, programs: Program, tasks: Tasks, key: jax.Array) -> Trace:
        """Fitness plus predictions, errors and early-stop flags."""
        self._check(programs, tasks)
        return self._trace(programs, tasks, self._keys(key, programs))

    def combine(self, per_task: jax.Array) -> jax.Array:
        """Combine a [P, T] fitness array over tasks with the configured mode."""
        return self._combine(per_task)

    # -- internals ----------------------------------------------------------------------

    def _combine(self, per_task):
        if self.config.combine == "median":
            # The reference's nth_element at n // 2: the upper median for even counts.
            return jnp.sort(per_task, axis=-1)[..., per_task.shape[-1] // 2]
        # Mean as a left-to-right sum then one division (the reference's order), written as
        # elementwise adds so the result never depends on how XLA fuses or vectorises it.
        total = per_task[..., 0]
        for t in range(1, per_task.shape[-1]):
            total = total + per_task[..., t]
        return total / per_task.shape[-1]

    def _check(self, programs: Program, tasks: Tasks) -> None:
        """The boundary: types and shapes always; program values (ops, addresses, sizes,
        index fractions: ``program.validate``, vectorised) when the programs are concrete,
        i.e. once per public call from Python, not when traced inside the search's jit."""
        batch = check_structure(self.spec, programs)
        if len(batch) != 1:
            raise ValueError("programs must have exactly one leading population axis; got "
                             f"batch shape {batch} (use program.stack)")
        if batch[0] == 0:
            raise ValueError("programs: the population is empty (P=0); fix: pass at least "
                             "one program")
        _check_tasks(tasks, self.spec)
        leaves = jax.tree.leaves(programs)
        if not any(isinstance(x, jax.core.Tracer) or not getattr(x, "is_fully_addressable", True)
                   for x in leaves):
            validate(self.spec, programs)

    @staticmethod
    def _keys(key, programs: Program) -> jax.Array:
        P = programs.batch_shape[0]
        dtype = getattr(key, "dtype", None)
        if dtype is not None and jnp.issubdtype(dtype, jax.dtypes.prng_key):
            pass
        elif dtype is not None and jnp.issubdtype(dtype, jnp.integer) \
                and key.shape[-1:] == (2,):
            key = jax.random.wrap_key_data(jnp.asarray(key, jnp.uint32))  # legacy raw keys
        else:
            raise ValueError(f"key must be a typed PRNG key, got {type(key).__name__} {key!r}; "
                             f"fix: pass jax.random.key(seed) (or {P} keys from "
                             f"jax.random.split)")
        if key.shape == ():
            return jax.random.split(key, P)
        if key.shape != (P,):
            raise ValueError(f"key must be one key or an array of {P} keys, got shape {key.shape}")
        return key

    def _evaluate(self, programs: Program, tasks: Tasks, keys: jax.Array, record: bool) -> Trace:
        if self.backend in ("native", "cuda"):
            kernel = native if self.backend == "native" else cuda
            if record:
                return Trace(**kernel.trace(self.spec, self.config, programs, tasks, keys))
            fitness = kernel.evaluate(self.spec, self.config, programs, tasks, keys)
            return Trace(fitness, *([None] * 7))
        dtype = programs.setup.data.dtype
        task_arrays = (tasks.train_x.astype(dtype), tasks.train_y.astype(dtype),
                       tasks.valid_x.astype(dtype), tasks.valid_y.astype(dtype),
                       tasks.epoch_order)

        def one_program(program, key):
            decoded = {fn: r.decode(program.function(fn)) for fn, r in self._runners.items()}
            task_keys = jax.vmap(lambda t: jax.random.fold_in(key, t))(
                jnp.arange(tasks.num_tasks))
            return jax.vmap(
                lambda tx, ty, vx, vy, order, k: self._execute(
                    decoded, tx, ty, vx, vy, order, k, tasks.eval_type, record,
                    tasks.num_classes)
            )(*task_arrays, task_keys)

        return jax.vmap(one_program)(programs, keys)

    def _execute(self, decoded, train_x, train_y, valid_x, valid_y, order, key,
                 eval_type: str, record: bool, num_classes: int = 0) -> Trace:
        """One program on one task."""
        spec, cfg = self.spec, self.config
        dtype = train_x.dtype
        setup, predict, learn = (self._runners[f] for f in ("setup", "predict", "learn"))
        max_err = jnp.asarray(cfg.max_abs_error, dtype)
        accuracy = eval_type == ACCURACY
        vector_out = eval_type == MULTICLASS_ACCURACY  # the vector output branch
        lab, pre = LABELS_VECTOR_ADDRESS, PREDICTIONS_VECTOR_ADDRESS
        F = spec.feature_size
        n_valid_total = valid_x.shape[0]
        n_valid_run = n_valid_total if cfg.num_valid_examples is None else min(
            cfg.num_valid_examples, n_valid_total)
        schedule = epoch_schedule(train_x.shape[0], order.shape[0], cfg.num_train_examples)

        def sub(k, i):
            return None if k is None else jax.random.fold_in(k, i)

        needs_key = any(r.uses_random for r in self._runners.values())
        key = key if needs_key else None
        mem = setup.run(decoded["setup"], zero_memory(spec, dtype), sub(key, 0))

        def set_inputs(mem: Memory, x, label):
            if vector_out:  # v1 <- one-hot label (zeros when hidden); s0 stays 0
                vec = jnp.zeros((F,), dtype) if label is None else \
                    multiclass.label_vector(label, num_classes, F, dtype)
                return mem.replace(v=mem.v.at[0].set(x).at[lab].set(vec),
                                   s=mem.s.at[0].set(jnp.zeros((), dtype)))
            label = jnp.zeros((), dtype) if label is None else label
            return mem.replace(v=mem.v.at[0].set(x), s=mem.s.at[0].set(label))

        def train_step(carry, xs):
            mem, stopped, steps = carry
            x, y, step_key = xs
            mem = set_inputs(mem, x, None)
            mem = predict.run(decoded["predict"], mem, sub(step_key, 0))
            if vector_out:
                p = multiclass.truncating_softmax(mem.v[pre], num_classes)
                mem = mem.replace(v=mem.v.at[pre].set(p))  # written back, as sigmoid(s1)
                pred = multiclass.argmax(p).astype(dtype)
                err = multiclass.train_error(
                    multiclass.label_vector(y, num_classes, F, dtype), p)
            else:
                if accuracy:
                    mem = mem.replace(s=mem.s.at[1].set(sigmoid(mem.s[1])))
                pred = mem.s[1]
                err = jnp.abs(y - pred)
            bad = jnp.isnan(err) | (err > max_err)
            mem = set_inputs(mem, x, y)
            mem = learn.run(decoded["learn"], mem, sub(step_key, 1))
            nan = jnp.asarray(jnp.nan, dtype)
            # As the reference: the prediction of every step run (the stopping one included),
            # the error only of steps that passed the early-stop check.
            out = (jnp.where(stopped | bad, nan, err), jnp.where(stopped, nan, pred)) \
                if record else None
            steps = steps + jnp.where(stopped, 0, 1).astype(jnp.int32)
            return (mem, stopped | bad, steps), out

        def valid_step(carry, xs):
            # The reference returns from validation at the first bad example: from then on
            # Predict no longer runs, so memory stays as it was (it matters for later epochs).
            old, loss, bad = carry
            x, y, step_key = xs
            mem = set_inputs(old, x, None)
            mem = predict.run(decoded["predict"], mem, step_key)
            mem = jax.tree.map(lambda a, b: jnp.where(bad, a, b), old, mem)
            logit = mem.s[1]
            if vector_out:
                p = multiclass.truncating_softmax(mem.v[pre], num_classes)
                logit = multiclass.argmax(p).astype(dtype)  # recorded: the predicted class
                wrong = jnp.where(logit == y, 0.0, 1.0).astype(dtype)
                error = jnp.where(((p > 1.0) | (p < 0.0)).any(), jnp.asarray(jnp.inf, dtype),
                                  wrong)
                loss = loss + error
            elif accuracy:
                p = sigmoid(logit)
                wrong = jnp.where((y > 0.5) == (p > 0.5), 0.0, 1.0).astype(dtype)
                error = jnp.where((p > 1.0) | (p < 0.0), jnp.asarray(jnp.inf, dtype), wrong)
                loss = loss + error
            else:
                error = y - logit
                loss = loss + error * error
            abs_err = jnp.abs(error)
            bad_now = jnp.isnan(abs_err) | (abs_err > max_err)
            nan = jnp.asarray(jnp.nan, dtype)
            out = (jnp.where(bad | bad_now, nan, abs_err), jnp.where(bad, nan, logit)) \
                if record else None
            return (mem, loss, bad | bad_now), out

        def step_keys(k, n):
            if k is None:
                return None
            return jax.vmap(lambda j: jax.random.fold_in(k, j))(jnp.arange(n))

        stopped = jnp.zeros((), bool)
        steps = jnp.zeros((), jnp.int32)
        best = jnp.zeros((), dtype)
        epoch_fits, first = [], {}
        for e, n_steps in enumerate(schedule):
            idx = order[e, :n_steps]
            (mem, stopped_now, steps), tr = jax.lax.scan(
                train_step, (mem, stopped, steps),
                (train_x[idx], train_y[idx], step_keys(sub(key, 1 + 2 * e), n_steps)))
            (mem, loss, vbad), va = jax.lax.scan(
                valid_step, (mem, jnp.zeros((), dtype), jnp.zeros((), bool)),
                (valid_x[:n_valid_run], valid_y[:n_valid_run],
                 step_keys(sub(key, 2 + 2 * e), n_valid_run)))
            if accuracy or vector_out:
                fit = 1.0 - loss / n_valid_total
            else:
                fit = flip_and_squash(jnp.sqrt(loss / n_valid_total))
            fit = jnp.where(vbad | stopped_now, 0.0, fit).astype(dtype)
            best = jnp.maximum(best, fit)
            stopped = stopped_now
            epoch_fits.append(fit)
            if e == 0 and record:  # no validation is recorded after a training stop
                first = {"train": tr, "valid": tuple(
                    jnp.where(stopped_now, jnp.nan, a) for a in va)}
        if not record:
            return Trace(best, None, None, None, None, None, stopped, steps)
        return Trace(
            fitness=best, epoch_fitness=jnp.stack(epoch_fits),
            train_error=first["train"][0], train_prediction=first["train"][1],
            valid_error=first["valid"][0], valid_prediction=first["valid"][1],
            stopped=stopped, train_steps=steps,
        )
