"""Reading evolved programs: dead-code elimination and export to plain JAX functions.

``multiclass=True`` / ``num_classes=K`` select the vector output branch of multi-class tasks
(prediction ``v2``, label vector ``v1``; docs/evaluator.md "Multi-class tasks") instead of
the scalars ``s1`` / ``s0``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from evojax_zero.evaluate import multiclass as mc
from evojax_zero.evaluate.interpreter import FunctionRunner, zero_memory
from evojax_zero.program.ops import OP_SPECS, Kind, Op
from evojax_zero.program.programs import FUNCTION_NAMES, Program, ProgramSpec, from_lists, to_lists
from evojax_zero.program.tasks import LABELS_VECTOR_ADDRESS, PREDICTIONS_VECTOR_ADDRESS

_BOUNDARY_KILLED = {(Kind.SCALAR, 0), (Kind.VECTOR, 0)}  # s0, v0 are set before Predict/Learn
# Multi-class tasks also set the label vector v1 before Predict (zeros) and Learn (one-hot).
_BOUNDARY_KILLED_MC = _BOUNDARY_KILLED | {(Kind.VECTOR, LABELS_VECTOR_ADDRESS)}
_PARTIAL_WRITES = {Op.VECTOR_CONST_SET, Op.MATRIX_CONST_SET}  # write one entry only


def _reads_writes(row):
    s = OP_SPECS[int(row[0])]
    reads = {(k, int(a)) for k, a in ((s.in1, row[1]), (s.in2, row[2])) if k != Kind.NONE}
    write = (s.out, int(row[3])) if s.out != Kind.NONE else None
    if write is not None and s.op in _PARTIAL_WRITES:
        reads.add(write)  # read-modify-write
    return reads, write


def _backward(rows, live_out):
    """Liveness backwards through one function: (live_in, keep flags)."""
    live = set(live_out)
    keep = [False] * len(rows)
    for i in range(len(rows) - 1, -1, -1):
        reads, write = _reads_writes(rows[i])
        if write is not None and write in live:
            keep[i] = True
            if OP_SPECS[int(rows[i][0])].op not in _PARTIAL_WRITES:
                live.discard(write)
            live |= reads
    return live, keep


def live_instructions(program: Program, multiclass: bool = False) -> dict[str, list[bool]]:
    """Which instructions can affect a prediction (fixpoint over the train loop:
    Setup -> (Predict -> Learn)* with validation Predicts; s0/v0 are reset each time, and
    v1 too for multi-class tasks, whose prediction is v2 instead of s1)."""
    lists = to_lists(program)
    if multiclass:
        pred_out = {(Kind.VECTOR, PREDICTIONS_VECTOR_ADDRESS)}
        killed = _BOUNDARY_KILLED_MC
    else:
        pred_out = {(Kind.SCALAR, 1)}
        killed = _BOUNDARY_KILLED
    live_in_predict: set = set()
    live_in_learn: set = set()
    while True:
        end_learn = live_in_predict - killed
        new_learn, _ = _backward(lists["learn"], end_learn)
        end_predict = pred_out | (new_learn - killed) | (live_in_predict - killed)
        new_predict, _ = _backward(lists["predict"], end_predict)
        if new_predict == live_in_predict and new_learn == live_in_learn:
            break
        live_in_predict, live_in_learn = new_predict, new_learn
    _, keep_learn = _backward(lists["learn"], live_in_predict - killed)
    _, keep_predict = _backward(lists["predict"], end_predict)
    _, keep_setup = _backward(lists["setup"], live_in_predict - killed)
    return {"setup": keep_setup, "predict": keep_predict, "learn": keep_learn}


def simplify(program: Program, spec: ProgramSpec, compact: bool = True,
             multiclass: bool = False) -> Program:
    """Dead instructions removed (``compact``) or replaced by NO_OP (positions kept, so
    random ops draw the same numbers). Check the fitness with :func:`same_fitness`."""
    keep = live_instructions(program, multiclass)
    lists = to_lists(program)
    out = {}
    for fn in FUNCTION_NAMES:
        rows = lists[fn]
        if compact:
            out[fn] = [r for r, k in zip(rows, keep[fn], strict=True) if k]
        else:
            out[fn] = [r if k else [0, 0, 0, 0] for r, k in zip(rows, keep[fn], strict=True)]
    return from_lists(spec, **out)


def simplify_verified(program: Program, spec: ProgramSpec, evaluate,
                      multiclass: bool | None = None) -> tuple[Program, float]:
    """Simplify and keep the version whose fitness (``evaluate(program) -> float``) equals
    the original's: compacted if possible, else NO_OP-replaced, else the original.
    ``multiclass=None`` tries the scalar output branch, then the vector one (multi-class
    tasks); the fitness check keeps only a simplification that scores the same."""
    ref = evaluate(program)
    branches = (False, True) if multiclass is None else (multiclass,)
    for branch in branches:
        for compact in (True, False):
            cand = simplify(program, spec, compact, branch)
            f = evaluate(cand)
            if f == ref or abs(f - ref) <= 1e-6 * max(1.0, abs(ref)):
                return cand, f
    return program, ref


def export(program: Program, spec: ProgramSpec, num_classes: int = 0):
    """The program as plain JAX functions on an explicit memory pytree.

    Returns ``(init, predict, learn)``: ``mem = init(key)``;
    ``mem, y_hat = predict(mem, x, key)``; ``mem = learn(mem, x, y, key)``. Keys feed the
    random ops only (pass ``None`` when the program has none). All three are jitted.

    ``num_classes = K > 0``: the multi-class branch. ``predict`` zeroes ``v1`` and returns the
    class probabilities (the truncating softmax of ``v2``, ``[F]``) without writing them
    back; ``learn`` takes a class index ``y`` and sets ``v1`` to its one-hot vector. In
    training the evaluator writes the probabilities into ``v2`` before Learn:
    ``mem = mem.replace(v=mem.v.at[2].set(p))`` (as :func:`fit_predict` does).
    """
    dtype = program.setup.data.dtype
    F = spec.feature_size
    runners = {fn: FunctionRunner(spec, fn) for fn in FUNCTION_NAMES}
    dec = {fn: runners[fn].decode(program.function(fn)) for fn in FUNCTION_NAMES}
    lab, pre = LABELS_VECTOR_ADDRESS, PREDICTIONS_VECTOR_ADDRESS

    def _key(key):
        return key if any(r.uses_random for r in runners.values()) else None

    @jax.jit
    def init(key=None):
        return runners["setup"].run(dec["setup"], zero_memory(spec, dtype), _key(key))

    @jax.jit
    def predict(mem, x, key=None):
        mem = mem.replace(v=mem.v.at[0].set(jnp.asarray(x, dtype)),
                          s=mem.s.at[0].set(jnp.zeros((), dtype)))
        if num_classes:
            mem = mem.replace(v=mem.v.at[lab].set(jnp.zeros((F,), dtype)))
        mem = runners["predict"].run(dec["predict"], mem, _key(key))
        if num_classes:
            return mem, mc.truncating_softmax(mem.v[pre], num_classes)
        return mem, mem.s[1]

    @jax.jit
    def learn(mem, x, y, key=None):
        y = jnp.asarray(y, dtype)
        if num_classes:
            mem = mem.replace(v=mem.v.at[0].set(jnp.asarray(x, dtype)).at[lab].set(
                mc.label_vector(y, num_classes, F, dtype)), s=mem.s.at[0].set(jnp.zeros((), dtype)))
        else:
            mem = mem.replace(v=mem.v.at[0].set(jnp.asarray(x, dtype)), s=mem.s.at[0].set(y))
        return runners["learn"].run(dec["learn"], mem, _key(key))

    return init, predict, learn


def fit_predict(program: Program, spec: ProgramSpec, train_x, train_y, test_x,
                key=None, num_classes: int = 0) -> np.ndarray:
    """Convenience: train the exported program on (train_x, train_y) one example at a
    time, then predict ``test_x`` (memory persists, as in the reference). With
    ``num_classes = K > 0`` (multi-class), returns the predicted classes (the evaluator's
    rule: last index of the maximum probability)."""
    init, predict, learn = export(program, spec, num_classes)
    key = jax.random.key(0) if key is None else key
    mem = init(key)

    def train_step(mem, xy):
        x, y = xy
        mem, p = predict(mem, x, key)
        if num_classes:  # the softmax is written back before Learn, as in training
            mem = mem.replace(v=mem.v.at[PREDICTIONS_VECTOR_ADDRESS].set(p))
        return learn(mem, x, y, key), None

    mem, _ = jax.lax.scan(train_step, mem, (jnp.asarray(train_x), jnp.asarray(train_y)))
    _, preds = jax.lax.scan(lambda m, x: predict(m, x, key), mem, jnp.asarray(test_x))
    if num_classes:
        preds = mc.argmax(preds)
    return np.asarray(preds)
