"""Bad input through the Python API (issue 11): one row per case, table-driven.

Each row calls the API with one bad value and checks the exception type and that the message
names the field (and, where there is one, the allowed values or the fix). The CLI's rows are
in test_cli_bad_input.py; docs/errors.md lists what is checked where and counts the rows.
"""

from __future__ import annotations

import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from evojax_zero import native
from evojax_zero.evaluate.evaluator import Evaluator
from evojax_zero.experiment import overrides, presets
from evojax_zero.experiment.config import ExperimentConfig, TaskSpec, check_run
from evojax_zero.experiment.overrides import ConfigError
from evojax_zero.experiment.runner import evaluate, run
from evojax_zero.program import programs as P
from evojax_zero.program import tasks as T

# --- fixtures shared by the rows ---------------------------------------------------------

SPEC = P.ProgramSpec(4, 3, 1, 4, setup_ops=(56, 57), predict_ops=(27,),
                     learn_ops=(2, 3, 18, 23), max_setup_size=3, max_predict_size=1,
                     max_learn_size=4)
GOOD = P.from_lists(SPEC, setup=[[56, 0, 0, 1, 0.5], [57, 0, 0, 1, 0, 0.25, 1.0]],
                    predict=[[27, 1, 0, 1]], learn=[[2, 0, 1, 2], [18, 2, 0, 1]])
POP = P.stack([GOOD] * 4)
TASKS = T.linear_regression(2, 4, 8, 8)
X, Y = np.zeros((6, 4)), np.zeros(6)


def _backends():
    out = ["xla"]
    try:
        if native.available():
            out.append("native")
    except Exception:  # a broken native build: the XLA rows still run
        pass
    return out


BACKENDS = _backends()


def _set(pop, fn, field, fix):
    """``pop`` with ``fn.field`` replaced by ``fix(array)``."""
    f = pop.function(fn)
    return pop.replace(**{fn: f.replace(**{field: fix(getattr(f, field))})})


def _write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def _with(a, idx, value):
    a = np.array(a, np.float64)
    a[idx] = value
    return a


# --- the table ---------------------------------------------------------------------------
# (id, call, exception, words the message must contain). ``call`` takes tmp_path.

CONFIG_ROWS = [
    ("fec-string-no", lambda d: presets.preset("demo", fec="no"), ConfigError,
     ["fec", "true or false", "fec=False"]),
    ("fec-int", lambda d: presets.preset("demo", fec=0), ConfigError, ["fec"]),
    ("population-float", lambda d: presets.preset("demo", population_size=20.9), ConfigError,
     ["population_size", "an int", "20.9", "whole number"]),
    ("population-integral-float", lambda d: presets.preset("demo", population_size=20.0),
     ConfigError, ["population_size", "whole number"]),
    ("population-bool", lambda d: presets.preset("demo", population_size=True), ConfigError,
     ["population_size"]),
    ("population-string", lambda d: presets.preset("demo", population_size="20"), ConfigError,
     ["population_size", "number"]),
    ("population-zero", lambda d: presets.preset("demo", population_size=0), ConfigError,
     ["population_size", ">= 1"]),
    ("batch-not-dividing", lambda d: presets.preset("demo", population_size=100, batch_size=30),
     ConfigError, ["batch_size", "divide", "population_size", "batch_size=25"]),
    ("batch-over-population", lambda d: presets.preset("demo", population_size=10,
                                                        batch_size=20),
     ConfigError, ["batch_size", "divide"]),
    ("backend-gpu", lambda d: presets.preset("demo", backend="gpu"), ConfigError,
     ["backend", "auto, xla, native, cuda", "cuda"]),
    ("search-num-tasks-zero", lambda d: presets.preset("demo", search_num_tasks=0), ConfigError,
     ["search_num_tasks", ">= 1"]),
    ("select-num-tasks-negative", lambda d: presets.preset("linear", select_num_tasks=-1),
     ConfigError, ["select_num_tasks", ">= 1"]),
    ("final-num-train-float", lambda d: presets.preset("linear", final_num_train=2.5),
     ConfigError, ["final_num_train", "whole number"]),
    ("mutate-prob-above-1", lambda d: presets.preset("demo", mutate_prob=1.5), ConfigError,
     ["mutate_prob", "[0, 1]"]),
    ("mutate-prob-nan", lambda d: presets.preset("demo", mutate_prob=float("nan")),
     ConfigError, ["mutate_prob", "[0, 1]"]),
    ("sufficient-fitness-inf", lambda d: presets.preset("linear", sufficient_fitness=np.inf),
     ConfigError, ["sufficient_fitness"]),
    ("max-experiments-negative", lambda d: presets.preset("linear", max_experiments=-1),
     ConfigError, ["max_experiments", ">= 0"]),
    ("max-train-steps-zero", lambda d: presets.preset("linear", max_train_steps=0),
     ConfigError, ["max_train_steps", ">= 1"]),
    ("tournament-zero", lambda d: presets.preset("linear", tournament_size=0), ConfigError,
     ["tournament_size", ">= 1"]),
    ("progress-every-zero", lambda d: presets.preset("linear", progress_every=0), ConfigError,
     ["progress_every", ">= 1"]),
    ("unknown-override", lambda d: presets.preset("demo", populaton_size=3), ConfigError,
     ["populaton_size", "did you mean 'population_size'", "allowed keys"]),
    ("unknown-preset", lambda d: presets.preset("dmeo"), ConfigError,
     ["dmeo", "did you mean 'demo'", "linear, nonlinear"]),
    ("num-train-for-digits", lambda d: presets.preset("digits", search_num_train=5),
     ConfigError, ["search_num_train", "digits", "drop it"]),
    ("num-train-below-fec-prerun", lambda d: presets.preset("demo", search_num_train=5),
     ConfigError, ["search_num_train", "FEC", "fec=false"]),
    ("never-stops", lambda d: presets.preset("demo", sufficient_fitness=1.0), ConfigError,
     ["sufficient_fitness", "max_experiments"]),
    ("hurdle-tasks-not-below-search-tasks", lambda d: presets.preset("demo", hurdle_tasks=10),
     ConfigError, ["hurdle_tasks", "[1, 9]", "search_num_tasks=10", "fix"]),
    ("hurdle-tasks-negative", lambda d: presets.preset("demo", hurdle_tasks=-1), ConfigError,
     ["hurdle_tasks", ">= 0"]),
    ("hurdle-kind-unknown", lambda d: presets.preset("demo", hurdle_kind="median"),
     ConfigError, ["hurdle_kind", "percentile, mean, threshold", "did you mean 'mean'"]),
    ("hurdle-percentile-above-100", lambda d: presets.preset("demo", hurdle_percentile=150.0),
     ConfigError, ["hurdle_percentile", "[0, 100]"]),
    ("hurdle-threshold-nan", lambda d: presets.preset("demo", hurdle_threshold=float("nan")),
     ConfigError, ["hurdle_threshold", "a number"]),
    ("islands-count-zero", lambda d: presets.preset("demo", **{"islands.count": 0}),
     ConfigError, ["islands_count", ">= 1"]),
    ("islands-migration-negative", lambda d: presets.preset(
        "demo", islands_migration_every=-1), ConfigError, ["islands_migration_every", ">= 0"]),
    ("islands-migrants-over-population", lambda d: presets.preset(
        "linear", population_size=10, batch_size=10, islands_count=2, islands_migrants=11),
     ConfigError, ["islands_migrants", "[0, 10]", "population_size"]),
    ("islands-key-typo", lambda d: presets.preset("demo", **{"islands.migrate_every": 2}),
     ConfigError, ["islands.migrate_every", "did you mean 'islands_migration_every'"]),
]

FILE_ROWS = [
    ("config-missing", lambda d: presets.load_config(str(d / "nope.yaml")), ConfigError,
     ["nope.yaml", "no such file"]),
    ("config-directory", lambda d: presets.load_config(str(d)), ConfigError, ["directory"]),
    ("yaml-tab", lambda d: presets.load_config(_write(
        d, "t.yaml", "preset: demo\noverrides:\n\tpopulation_size: 20\n")), ConfigError,
     ["t.yaml", "line 3", "tabs", "spaces"]),
    ("json-syntax", lambda d: presets.load_config(_write(d, "s.json", '{"preset": "demo",}')),
     ConfigError, ["s.json", "JSON", "line 1"]),
    ("run-key-typo", lambda d: presets.load_config(_write(
        d, "k.json", '{"preset": "demo", "overides": {}}')), ConfigError,
     ["overides", "did you mean 'overrides'"]),
    ("file-override-typo", lambda d: presets.load_config(_write(
        d, "o.json", '{"preset": "demo", "overrides": {"populaton_size": 3}}')), ConfigError,
     ["o.json", "populaton_size", "population_size"]),
    ("file-override-bad-bool", lambda d: presets.load_config(_write(
        d, "b.yaml", "preset: demo\noverrides: {fec: maybe}\n")), ConfigError,
     ["b.yaml", "fec", "true or false"]),
    ("file-override-float-int", lambda d: presets.load_config(_write(
        d, "f.json", '{"runs": [{"preset": "demo"}, {"preset": "linear", '
                     '"overrides": {"population_size": 20.9}}]}')), ConfigError,
     ["run 1", "population_size", "whole number"]),
    ("file-top-level-list", lambda d: presets.load_config(_write(d, "l.json", "[1, 2]")),
     ConfigError, ["top level", "mapping"]),
    ("file-no-preset", lambda d: presets.load_config(_write(d, "n.json", '{"seeds": [0]}')),
     ConfigError, ["preset", "demo"]),
    ("file-unknown-preset", lambda d: presets.load_config(_write(
        d, "u.json", '{"preset": "cifar"}')), ConfigError, ["cifar", "presets"]),
    ("file-negative-seed", lambda d: presets.load_config(_write(
        d, "ns.json", '{"preset": "demo", "seeds": [0, -1]}')), ConfigError, ["seed", "-1"]),
    ("file-seed-and-seeds", lambda d: presets.load_config(_write(
        d, "ss.json", '{"preset": "demo", "seed": 0, "seeds": [1]}')), ConfigError,
     ["seed", "seeds"]),
    ("file-runs-plus-keys", lambda d: presets.load_config(_write(
        d, "r.json", '{"runs": [{"preset": "demo"}], "seeds": [1]}')), ConfigError,
     ["runs", "seeds"]),
    ("file-overrides-not-mapping", lambda d: presets.load_config(_write(
        d, "m.json", '{"preset": "demo", "overrides": [1]}')), ConfigError,
     ["overrides", "mapping"]),
    ("cli-override-on-file", lambda d: presets.load_config(_write(
        d, "c.json", '{"preset": "demo"}'), {"fec": "no"}), ConfigError, ["fec"]),
]

_SMALL = presets.preset("linear", population_size=20, batch_size=10)
_ISLANDS = presets.preset("linear", population_size=20, batch_size=10, islands_count=4)


def _many_devices():
    return jax.device_count() + 1


RUN_ROWS = [
    ("seed-negative", lambda d: check_run(_SMALL, -1), ConfigError,
     ["seed", "[0, 4294967295]"]),
    ("seed-too-big", lambda d: check_run(_SMALL, 2**40), ConfigError, ["seed"]),
    ("seed-float", lambda d: check_run(_SMALL, 1.5), ConfigError, ["seed"]),
    ("islands-devices-not-dividing", lambda d: check_run(_ISLANDS, 0, num_devices=3),
     ConfigError, ["num_devices 3", "islands_count (4)", "divisible", "[1, 2, 4]"]),
    ("checkpoint-every-zero", lambda d: check_run(_SMALL, 0, checkpoint_every=0), ConfigError,
     ["checkpoint_every", ">= 1"]),
    ("checkpoint-every-float", lambda d: check_run(_SMALL, 0, checkpoint_every=2.5),
     ConfigError, ["checkpoint_every", ">= 1"]),
    ("checkpoint-seconds-negative", lambda d: check_run(_SMALL, 0, checkpoint_seconds=-1),
     ConfigError, ["checkpoint_seconds", "> 0"]),
    ("out-dir-is-a-file", lambda d: check_run(_SMALL, 0, out_dir=_write(d, "f", "")),
     ConfigError, ["out_dir", "not a directory"]),
    ("checkpoint-dir-under-a-file", lambda d: check_run(
        _SMALL, 0, checkpoint_dir=_write(d, "g", "") + "/ck"), ConfigError,
     ["checkpoint_dir", "is a file"]),
    ("devices-more-than-present", lambda d: check_run(
        presets.preset("linear", population_size=4 * _many_devices(), batch_size=1), 0,
        num_devices=_many_devices()), ConfigError,
     ["num_devices", "XLA_FLAGS=--xla_force_host_platform_device_count=", "GPU"]),
    ("devices-not-dividing", lambda d: check_run(_SMALL, 0, num_devices=3), ConfigError,
     ["num_devices", "population_size", "divisible", "[1, 2, 4, 5, 10]"]),
    ("devices-zero", lambda d: check_run(_SMALL, 0, num_devices=0), ConfigError,
     ["num_devices", ">= 1"]),
    ("config-not-a-config", lambda d: check_run({"preset": "demo"}, 0), ConfigError,
     ["ExperimentConfig"]),
    # experiment.run() calls check_run first: nothing is built or written before the error
    ("run-seed-negative", lambda d: run(_SMALL, -1, progress=False), ConfigError,
     ["seed", "[0, 4294967295]"]),
    ("run-devices-not-dividing", lambda d: run(_SMALL, 0, num_devices=3, progress=False),
     ConfigError, ["num_devices", "divisible"]),
    ("run-out-dir-is-a-file", lambda d: run(_SMALL, 0, out_dir=_write(d, "h", ""),
                                            progress=False),
     ConfigError, ["out_dir", "not a directory"]),
]

DATA_ROWS = [
    ("nan-train-x", lambda d: T.from_arrays(_with(X, (2, 1), np.nan), Y, X, Y), ValueError,
     ["train_x", "non-finite", "nan", "(2, 1)"]),
    ("inf-valid-y", lambda d: T.from_arrays(X, Y, X, _with(Y, 3, np.inf)), ValueError,
     ["valid_y", "non-finite", "inf"]),
    ("neg-inf-train-y", lambda d: T.from_arrays(X, _with(Y, 0, -np.inf), X, Y), ValueError,
     ["train_y", "-inf"]),
    ("nan-valid-x-batched", lambda d: T.from_arrays(
        np.zeros((2, 6, 4)), np.zeros((2, 6)), _with(np.zeros((2, 6, 4)), (1, 0, 0), np.nan),
        np.zeros((2, 6))), ValueError, ["valid_x", "(1, 0, 0)"]),
    ("empty-train", lambda d: T.from_arrays(np.zeros((0, 4)), np.zeros(0), X, Y), ValueError,
     ["train_x", "empty"]),
    ("empty-valid", lambda d: T.from_arrays(X, Y, np.zeros((0, 4)), np.zeros(0)), ValueError,
     ["valid_x", "empty"]),
    ("no-features", lambda d: T.from_arrays(np.zeros((6, 0)), Y, np.zeros((6, 0)), Y),
     ValueError, ["train_x", "empty"]),
    ("no-tasks", lambda d: T.from_arrays(np.zeros((0, 6, 4)), np.zeros((0, 6)),
                                         np.zeros((0, 6, 4)), np.zeros((0, 6))),
     ValueError, ["train_x", "empty"]),
    ("x-one-dimensional", lambda d: T.from_arrays(np.zeros(6), Y, X, Y), ValueError,
     ["train_x", "[N, F]"]),
    ("y-column-vector", lambda d: T.from_arrays(X, np.zeros((6, 1)), X, Y), ValueError,
     ["train_y", "[N]", "reshape(-1)"]),
    ("y-wrong-length", lambda d: T.from_arrays(X, np.zeros(5), X, Y), ValueError,
     ["train_y", "labels"]),
    ("valid-x-other-rank", lambda d: T.from_arrays(X, Y, np.zeros((1, 6, 4)), Y), ValueError,
     ["valid_x", "[N, F]"]),
    ("feature-mismatch", lambda d: T.from_arrays(X, Y, np.zeros((6, 2)), Y), ValueError,
     ["train_x", "valid_x", "features"]),
    ("string-dtype", lambda d: T.from_arrays(X.astype(str), Y, X, Y), ValueError,
     ["train_x", "real numbers"]),
    ("complex-dtype", lambda d: T.from_arrays(X, Y, X + 1j, Y), ValueError,
     ["valid_x", "real numbers", "complex"]),
    ("ragged-list", lambda d: T.from_arrays([[1.0, 2.0], [3.0]], Y, X, Y), ValueError,
     ["train_x", "cannot be read"]),
    ("accuracy-labels", lambda d: T.from_arrays(X, _with(Y, 1, 2.0), X, Y, eval_type="accuracy"),
     ValueError, ["train_y", "{0, 1}", "2.0"]),
    ("feature-size-3", lambda d: T.from_arrays(np.zeros((6, 3)), Y, np.zeros((6, 3)), Y),
     ValueError, ["feature_size", "(2, 4, 8, 16, 32)"]),
    ("eval-type", lambda d: T.from_arrays(X, Y, X, Y, eval_type="mse"), ValueError,
     ["eval_type", "rms_error"]),
    ("epochs-zero", lambda d: T.from_arrays(X, Y, X, Y, num_epochs=0), ValueError,
     ["num_epochs", ">= 1"]),
    ("epoch-order-not-permutation", lambda d: T.from_arrays(
        X, Y, X, Y, epoch_order=np.zeros((1, 6), np.int32)), ValueError,
     ["epoch_order", "permutations"]),
    ("data-seed-negative", lambda d: T.from_arrays(X, Y, X, Y, data_seed=-1), ValueError,
     ["data_seed", ">= 0"]),
    ("linear-no-tasks", lambda d: T.linear_regression(0), ValueError, ["num_tasks", ">= 1"]),
    ("taskspec-no-tasks", lambda d: TaskSpec("linear", num_tasks=0), ValueError,
     ["TaskSpec.num_tasks", ">= 1"]),
    ("taskspec-feature-size", lambda d: TaskSpec("linear", feature_size=3), ValueError,
     ["TaskSpec.feature_size", "(2, 4, 8, 16, 32)"]),
    ("taskspec-seeds", lambda d: TaskSpec("linear", param_seeds=(1.5,)), ValueError,
     ["TaskSpec.param_seeds", "ints"]),
    ("experiment-config-nan", lambda d: ExperimentConfig(
        "x", _SMALL.search, _SMALL.search_tasks, _SMALL.select_tasks, _SMALL.final_tasks,
        sufficient_fitness=float("nan")), ValueError, ["sufficient_fitness", "finite"]),
    ("evaluate-int-key", lambda d: evaluate(SPEC, GOOD, TASKS, key=0, backend="xla"),
     ValueError, ["key", "jax.random.key"]),
]

PROGRAM_ROWS = [
    ("from-text-bytes", lambda d: P.from_text(SPEC, b"def Setup():\n"), ValueError,
     ["text", "bytes", "decode"]),
    ("from-text-none", lambda d: P.from_text(SPEC, None), ValueError, ["text", "str"]),
    ("from-text-spec", lambda d: P.from_text("spec", "def Setup():\n"), ValueError,
     ["spec", "ProgramSpec"]),
    ("from-lists-spec", lambda d: P.from_lists(None), ValueError, ["spec", "ProgramSpec"]),
    ("validate-op-99", lambda d: P.validate(SPEC, _set(POP, "learn", "op",
                                                       lambda a: a.at[2, 1].set(99))),
     ValueError, ["program 2", "learn", "op 99", "0-64"]),
    ("validate-nan-fraction", lambda d: P.validate(SPEC, _set(
        GOOD, "setup", "data", lambda a: a.at[1, 1].set(jnp.nan))), ValueError,
     ["Setup instruction 1", "f0", "[0, 1)"]),
]

# Raw program tensors at the Evaluator's boundary: (id, bad programs, words).
EVAL_PROGRAM_ROWS = [
    ("op-99", _set(POP, "learn", "op", lambda a: a.at[1, 0].set(99)),
     ["program 1", "learn", "op 99"]),
    ("op-not-in-spec", _set(POP, "learn", "op", lambda a: a.at[0, 0].set(1)),
     ["SCALAR_SUM", "not allowed in Learn", "allowed"]),
    ("op-negative", _set(POP, "predict", "op", lambda a: a.at[3, 0].set(-1)),
     ["program 3", "predict", "unknown op -1"]),
    ("in1-out-of-range", _set(POP, "learn", "addr", lambda a: a.at[2, 0, 0].set(7)),
     ["program 2", "in1 address s7", "[0, 4)"]),
    ("in2-negative", _set(POP, "predict", "addr", lambda a: a.at[0, 0, 1].set(-3)),
     ["in2 address v-3", "[0, 3)"]),
    ("out-address-zero", _set(POP, "learn", "addr", lambda a: a.at[0, 0, 2].set(0)),
     ["out address s0", "[1, 4)"]),
    ("size-minus-2", _set(POP, "learn", "size", lambda a: a.at[1].set(-2)),
     ["program 1", "learn", "size -2", "[0, 4]"]),
    ("size-too-big", _set(POP, "setup", "size", lambda a: a.at[0].set(9)),
     ["setup", "size 9", "[0, 3]"]),
    ("padding-not-noop", _set(POP, "learn", "op", lambda a: a.at[0, 3].set(2)),
     ["learn instruction 3", "padding must be NO_OP"]),
    ("index-fraction-1", _set(POP, "setup", "data", lambda a: a.at[0, 1, 1].set(1.0)),
     ["VECTOR_CONST_SET", "f0", "[0, 1)"]),
    ("op-float-dtype", _set(POP, "learn", "op", lambda a: a.astype(jnp.float32)),
     ["programs.learn.op", "int dtype", "float32"]),
    ("data-int-dtype", _set(POP, "learn", "data", lambda a: a.astype(jnp.int32)),
     ["programs.learn.data", "float dtype"]),
    ("addr-wrong-shape", _set(POP, "learn", "addr", lambda a: a[..., :2]),
     ["programs.learn.addr", "shape", "max_learn_size=4"]),
    ("spec-mismatch", P.stack([P.from_lists(SPEC.replace(max_learn_size=6),
                                            learn=[[2, 0, 1, 2]])] * 2),
     ["programs.learn.op", "max_learn_size=4"]),
    ("size-batch-mismatch", _set(POP, "predict", "size", lambda a: a[:2]),
     ["programs.predict.size", "batch shape"]),
    ("unbatched", GOOD, ["one leading population axis", "program.stack"]),
    ("population-of-0", jax.tree.map(lambda a: a[:0], POP), ["empty", "P=0"]),
    ("not-a-program", {"setup": None}, ["Program", "dict"]),
]

EVAL_OTHER_ROWS = [
    ("int-key", lambda ev: ev(POP, TASKS, 0), ["key", "typed PRNG key", "jax.random.key"]),
    ("float-key", lambda ev: ev(POP, TASKS, jnp.zeros(2)), ["key", "jax.random.key"]),
    ("key-count", lambda ev: ev(POP, TASKS, jax.random.split(jax.random.key(0), 3)),
     ["key", "4 keys", "(3,)"]),
    ("tasks-not-tasks", lambda ev: ev(POP, {"x": 1}, jax.random.key(0)),
     ["tasks", "Tasks", "dict"]),
    ("tasks-feature-size", lambda ev: ev(POP, T.linear_regression(1, 8, 4, 4),
                                         jax.random.key(0)),
     ["feature size 8", "feature_size is 4"]),
    ("tasks-empty", lambda ev: ev(POP, TASKS[0:0], jax.random.key(0)), ["tasks", "empty"]),
    ("per-task-op-99", lambda ev: ev.per_task(
        _set(POP, "learn", "op", lambda a: a.at[0, 0].set(99)), TASKS, jax.random.key(0)),
     ["op 99"]),
    ("trace-size", lambda ev: ev.trace(
        _set(POP, "learn", "size", lambda a: a.at[0].set(-2)), TASKS, jax.random.key(0)),
     ["size -2"]),
]

TABLE = CONFIG_ROWS + FILE_ROWS + RUN_ROWS + DATA_ROWS + PROGRAM_ROWS
NUM_CASES = len(TABLE) + len(EVAL_PROGRAM_ROWS) + len(EVAL_OTHER_ROWS)


def _expect(call, exc, words):
    with pytest.raises(exc) as info:
        call()
    msg = str(info.value)
    missing = [w for w in words if w not in msg]
    assert not missing, f"message lacks {missing}: {msg}"
    return msg


@pytest.mark.parametrize("case", TABLE, ids=[r[0] for r in TABLE])
def test_bad_input_is_named(case, tmp_path):
    _, call, exc, words = case
    _expect(lambda: call(tmp_path), exc, words)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", EVAL_PROGRAM_ROWS, ids=[r[0] for r in EVAL_PROGRAM_ROWS])
def test_evaluator_rejects_bad_program_tensors(case, backend):
    _, bad, words = case
    ev = Evaluator(SPEC, backend=backend)
    msgs = [_expect(lambda f=f: f(bad, TASKS, jax.random.key(0)), ValueError, words)
            for f in (ev, ev.per_task, ev.trace)]
    assert len(set(msgs)) == 1  # the same check for every entry point


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", EVAL_OTHER_ROWS, ids=[r[0] for r in EVAL_OTHER_ROWS])
def test_evaluator_rejects_bad_arguments(case, backend):
    _, call, words = case
    _expect(lambda: call(Evaluator(SPEC, backend=backend)), ValueError, words)


def test_case_count_is_documented():
    """docs/errors.md states how many rows this suite holds."""
    text = (pathlib.Path(__file__).parents[1] / "docs" / "errors.md").read_text()
    assert f"{NUM_CASES} Python API cases" in text


# --- what the good paths mean ------------------------------------------------------------


def test_overrides_mean_what_they_say():
    assert presets.preset("demo", fec=False).search.fec is None
    assert presets.preset("nonlinear", fec=True).search.fec is not None
    assert overrides.parse_cli(["fec=no"]) == {"fec": False}
    assert overrides.parse_cli(["fec=Off", "fec=YES"]) == {"fec": True}  # later wins
    got = overrides.parse_cli(["population_size=1_000", "mutate_prob=0.5", "backend=xla"])
    assert got == {"population_size": 1000, "mutate_prob": 0.5, "backend": "xla"}
    assert type(got["population_size"]) is int
    # numpy scalars are ints/floats too; the batch default is capped at population_size
    cfg = presets.preset("demo", population_size=np.int64(40), mutate_prob=np.float32(0.5))
    assert cfg.search.population_size == 40 and cfg.search.batch_size == 40
    assert cfg.search.mutation.mutate_prob == 0.5


def test_schema_matches_the_presets():
    """Every key has a default in every preset, and the defaults are what preset() builds."""
    for name in presets.PRESETS:
        d = presets.preset_defaults(name)
        assert set(d) == set(overrides.SCHEMA) == set(presets.OVERRIDES)
        cfg = presets.preset(name)
        assert cfg.search.population_size == d["population_size"]
        assert cfg.search.batch_size == d["batch_size"]
        assert (cfg.search.fec is not None) == d["fec"]
        assert cfg.max_train_steps == d["max_train_steps"]
        assert cfg.search.mutation.mutate_prob == d["mutate_prob"]
        assert cfg.final_tasks.num_tasks == d["final_num_tasks"]
    # the reference's numbers (run_demo.sh / the integration tests), written out by hand
    demo = presets.preset("demo")
    assert (demo.search.population_size, demo.search.tournament_size, demo.max_experiments,
            demo.search_tasks.num_tasks, demo.select_tasks.num_train) == (1000, 10, 0, 10, 1000)


def test_sweep_file_takes_cli_overrides_and_seed(tmp_path):
    path = _write(tmp_path, "s.json", json.dumps(
        {"runs": [{"preset": "linear", "seeds": [0, 1], "overrides": {"population_size": 20}},
                  {"preset": "nonlinear", "seed": 3}]}))
    runs = presets.load_config(path, {"population_size": 10, "batch_size": 5})
    assert [(c.name, s) for c, s in runs] == [("linear", 0), ("linear", 1), ("nonlinear", 3)]
    assert {(c.search.population_size, c.search.batch_size) for c, _ in runs} == {(10, 5)}
    runs = presets.load_config(path, seed=7)
    assert [(c.name, s) for c, s in runs] == [("linear", 7), ("nonlinear", 7)]
    assert runs[0][0].search.population_size == 20


def test_good_inputs_pass_the_boundary():
    """The checks do not reject what the library itself produces."""
    P.validate(SPEC, POP)
    ev = Evaluator(SPEC, backend="xla")
    f = ev(POP, TASKS, jax.random.key(0))
    assert f.shape == (4,) and bool(jnp.isfinite(f).all())
    raw = jax.random.key_data(jax.random.key(0))  # legacy raw uint32 keys still work
    assert np.array_equal(ev(POP, TASKS, raw), f)
    t = T.from_arrays(np.arange(24.0).reshape(6, 4), np.arange(6), X, Y, epoch_order=[
        [5, 4, 3, 2, 1, 0]])
    assert t.num_train == 6 and t.epoch_order.tolist() == [[[5, 4, 3, 2, 1, 0]]]


def test_traced_programs_skip_the_value_check():
    """Inside jit (the search's generation) only shapes and dtypes are checked: the value
    check needs concrete programs and runs once per public call."""
    ev = Evaluator(SPEC, backend="xla")
    bad = _set(POP, "learn", "op", lambda a: a.at[0, 0].set(99))
    out = jax.jit(lambda p: ev.per_task(p, TASKS, jax.random.key(0)))(bad)
    assert out.shape == (4, 2)
    with pytest.raises(ValueError, match="int dtype"):
        jax.jit(lambda p: ev.per_task(p, TASKS, jax.random.key(0)))(
            _set(POP, "learn", "op", lambda a: a.astype(jnp.float32)))
