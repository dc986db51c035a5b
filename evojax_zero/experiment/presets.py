"""The reference's demo / linear / nonlinear configurations, the projected-digits
baseline, the paper's adaptation regimes (few_examples, fast_training and their control;
docs/adaptation.md) and sweep files (JSON or YAML) that list presets, seeds and overrides."""

from __future__ import annotations

import dataclasses
import difflib
import json
import os

import yaml

from evojax_zero.experiment import datasets
from evojax_zero.experiment.config import (
    OPTION_DEFAULTS,
    ExperimentConfig,
    TaskSpec,
    check_seed,
    search_options,
)
from evojax_zero.experiment.overrides import SCHEMA, ConfigError, check
from evojax_zero.experiment.regimes import REGIMES, MulticlassTaskSpec, RegimeTaskSpec
from evojax_zero.program.programs import ProgramSpec
from evojax_zero.search import initial as algorithms
from evojax_zero.search.fec import FECConfig
from evojax_zero.search.loop import SearchConfig
from evojax_zero.search.mutation import MutationConfig

# ---------------------------------------------------------------------------------------

DEMO_OPS = ("SCALAR_CONST_SET", "VECTOR_INNER_PRODUCT", "SCALAR_DIFF", "SCALAR_PRODUCT",
            "SCALAR_VECTOR_PRODUCT", "VECTOR_SUM")
ADAPTATION_PRESETS = tuple(REGIMES)  # adaptation_control, few_examples, fast_training, multiclass
PRESETS = ("demo", "linear", "nonlinear", "digits", *ADAPTATION_PRESETS)
OVERRIDES = tuple(SCHEMA)  # the keys ``preset`` accepts; types and bounds in overrides.SCHEMA

# The preset's value of every override key (batch_size is capped at population_size).
_COMMON = {"tournament_size": 10, "progress_every": 10000, "backend": "auto",
           **OPTION_DEFAULTS}  # hurdle_* / islands_*: off
PRESET_DEFAULTS = {
    "demo": {"population_size": 1000, "batch_size": 100, "max_train_steps": 200_000_000,
             "max_experiments": 0, "sufficient_fitness": 0.9999, "fec": True,
             "search_num_tasks": 10, "select_num_tasks": 100, "final_num_tasks": 100,
             "search_num_train": 100, "select_num_train": 1000, "final_num_train": 1000,
             "mutate_prob": 0.9},
    "linear": {"population_size": 1000, "batch_size": 100, "max_train_steps": 100_000_000,
               "max_experiments": 1, "sufficient_fitness": 0.9999, "fec": True,
               "search_num_tasks": 10, "select_num_tasks": 100, "final_num_tasks": 100,
               "search_num_train": 100, "select_num_train": 10000, "final_num_train": 10000,
               "mutate_prob": 0.9},
    "nonlinear": {"population_size": 1000, "batch_size": 100, "max_train_steps": 100_000_000,
                  "max_experiments": 1, "sufficient_fitness": 0.9999, "fec": False,
                  "search_num_tasks": 1, "select_num_tasks": 1, "final_num_tasks": 1,
                  "search_num_train": 1000, "select_num_train": 1000, "final_num_train": 1000,
                  "mutate_prob": 1.0},
    "digits": {"population_size": 100, "batch_size": 10, "max_train_steps": 20_000_000,
               "max_experiments": 1, "sufficient_fitness": 1.0, "fec": False,
               "search_num_tasks": 10, "select_num_tasks": 10, "final_num_tasks": 100,
               "search_num_train": None, "select_num_train": None, "final_num_train": None,
               "mutate_prob": 0.9},
}
# The adaptation regimes (Real et al. 2020, Sec. 4.3) on projected digits pairs, starting from
# the hand-written two-layer net; {which}_num_train = training examples each task keeps.
for _name, _r in REGIMES.items():
    PRESET_DEFAULTS[_name] = {
        "population_size": 100, "batch_size": 10, "max_train_steps": 100_000_000,
        "max_experiments": 1, "sufficient_fitness": 1.0, "fec": False,
        "search_num_tasks": 10, "select_num_tasks": 10, "final_num_tasks": 100,
        "search_num_train": _r.num_train, "select_num_train": _r.num_train,
        "final_num_train": _r.num_train, "mutate_prob": 0.9}
for _d in PRESET_DEFAULTS.values():
    _d.update(_COMMON)

# The adaptation presets' search space: every op in every function (the paper's Sec. 4.2-4.3
# space, so noise, normalisation and schedules can appear), memory with spare room next to
# the two-layer net's S5 V9 M2, and no mutation that re-randomizes a whole function (a
# search that starts from the hand-written net keeps it and edits it).
ADAPTATION_OPS = tuple(range(1, 65))
ADAPTATION_MEMORY = (8, 12, 3, 16)  # S, V, M, F
ADAPTATION_MAX_SIZES = (10, 16, 26)  # setup, predict, learn
ADAPTATION_MUTATIONS = (0, 1, 4, 5)  # alter param, randomize instruction, insert, remove


def preset_defaults(name: str) -> dict:
    """The value of every override key in preset ``name`` (None: does not apply)."""
    _check_name(name)
    return {k: PRESET_DEFAULTS[name][k] for k in SCHEMA}


def _check_name(name) -> None:
    if name not in PRESETS:
        near = difflib.get_close_matches(str(name), PRESETS, n=1)
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        raise ConfigError(f"unknown preset {name!r}{hint}; presets: {', '.join(PRESETS)}")


def _settings(name: str, overrides: dict) -> dict:
    """Preset defaults with the checked overrides applied, plus cross-key checks."""
    o = check(overrides)
    d = PRESET_DEFAULTS[name]
    for which in ("search", "select", "final"):
        if f"{which}_num_train" in o and d[f"{which}_num_train"] is None:
            raise ConfigError(f"override {which}_num_train does not apply to the {name} preset "
                              f"(its train split comes from the dataset); fix: drop it")
    v = {**d, **o}
    if "batch_size" not in o:
        v["batch_size"] = min(d["batch_size"], v["population_size"])
    P, B = v["population_size"], v["batch_size"]
    if B > P or P % B:
        fit = max(b for b in range(1, min(B, P) + 1) if P % b == 0)
        raise ConfigError(f"override batch_size: must divide population_size ({P}), got {B}; "
                          f"fix: e.g. batch_size={fit}")
    if v["fec"] and d["search_num_train"] is not None \
            and 0 < v["search_num_train"] < FECConfig().num_train_examples:
        raise ConfigError(f"override search_num_train: FEC pre-runs "
                          f"{FECConfig().num_train_examples} train examples, got "
                          f"search_num_train={v['search_num_train']}; fix: search_num_train >= "
                          f"{FECConfig().num_train_examples} or fec=false")
    if v["max_experiments"] == 0 and v["sufficient_fitness"] >= 1.0:
        raise ConfigError("override sufficient_fitness: with max_experiments=0 (until "
                          "sufficient) the run stops only when the selection fitness exceeds "
                          f"sufficient_fitness, which {v['sufficient_fitness']} never is; fix: "
                          "sufficient_fitness < 1 or max_experiments >= 1")
    return v


def preset(name: str, **overrides) -> ExperimentConfig:
    """The reference's demo / linear / nonlinear configs and a digits-pairs baseline.

    Overrides (all optional, typed and checked by ``experiment.overrides.SCHEMA``):
    population_size, tournament_size, batch_size (children per step; 1 = the reference),
    max_train_steps (per experiment), max_experiments, sufficient_fitness, fec (bool),
    progress_every, backend, mutate_prob and {search,select,final}_num_tasks / _num_train.
    A bad key or value raises :class:`ConfigError` naming it.
    """
    _check_name(name)
    v = _settings(name, overrides)
    fec = FECConfig() if v["fec"] else None
    mp = v["mutate_prob"]
    if name == "demo":
        spec = ProgramSpec(4, 3, 1, 4, DEMO_OPS, DEMO_OPS, DEMO_OPS, 10, 2, 8)
        mut = MutationConfig(DEMO_OPS, DEMO_OPS, DEMO_OPS, mutate_prob=mp)
        sizes, init = (10, 2, 8), "random"
        st = TaskSpec("linear", 10, 100, 100)
        sel = TaskSpec("linear", 100, 1000, 100)
        fin = TaskSpec("linear", 100, 1000, 100, param_seeds=(2000000,), data_seeds=(1000000,))
        rand = True
    elif name == "linear":
        spec = ProgramSpec(4, 3, 1, 4, (56,), (27,), (2, 3, 18, 23), 5, 1, 4)
        mut = MutationConfig((56,), (27,), (2, 3, 18, 23), mutate_prob=mp)
        sizes, init = (5, 1, 4), "random"
        st = TaskSpec("linear", 10, 100, 100)
        sel = TaskSpec("linear", 100, 10000, 100)
        fin = sel
        rand = False
    elif name == "nonlinear":
        nn = algorithms.ops_used(algorithms.neural_net_lists())
        spec = ProgramSpec(5, 9, 2, 4, nn["setup"], nn["predict"], nn["learn"], 6, 5, 11)
        mut = MutationConfig((63, 64), (), (), mutation_types=(0, 4, 5, 6),
                             mutate_prob=mp, setup_size_min=6,
                             setup_size_max=7, predict_size_min=3, predict_size_max=4,
                             learn_size_min=9, learn_size_max=10)
        sizes, init = (2, 1, 4), "integration_test_damaged_neural_net"
        st = TaskSpec("teacher", 1, 1000, 100)
        sel = TaskSpec("teacher", 1, 1000, 100, param_seeds=(9000,), data_seeds=(19000,))
        fin = sel
        rand = False
    elif name in REGIMES:  # the paper's adaptation regimes, from the two-layer net
        S, V, M, F = ADAPTATION_MEMORY
        ops = ADAPTATION_OPS
        spec = ProgramSpec(S, V, M, F, ops, ops, ops, *ADAPTATION_MAX_SIZES)
        mut = MutationConfig(ops, ops, ops, mutation_types=ADAPTATION_MUTATIONS,
                             mutate_prob=mp, setup_size_min=1,
                             setup_size_max=ADAPTATION_MAX_SIZES[0] + 1, predict_size_min=1,
                             predict_size_max=ADAPTATION_MAX_SIZES[1] + 1, learn_size_min=1,
                             learn_size_max=ADAPTATION_MAX_SIZES[2] + 1)
        sizes, init = (3, 5, 11), "neural_net"
        TS = RegimeTaskSpec
        if name == "multiclass":  # all ten classes, from the multi-class two-layer net
            sizes, init, TS = (3, 4, 11), "multiclass_neural_net", MulticlassTaskSpec
        epochs = REGIMES[name].num_epochs
        st = TS(num_tasks=10, num_epochs=epochs, held_out=False)
        sel = TS(num_tasks=10, num_epochs=epochs, data_seeds=(1000,), held_out=True)
        fin = TS(num_tasks=100, num_epochs=epochs, data_seeds=(2000,), held_out=True)
        rand = True
    else:  # digits: the reference's run_baseline.sh on projected digits pairs
        setup = (56, 62, 59, 63, 60, 64, 61)
        predict = (1, 31, 48, 27, 23)
        learn = (1, 2, 3, 18, 23, 16, 25, 28, 39)
        spec = ProgramSpec(5, 9, 2, 16, setup, predict, learn, 6, 10, 22)
        mut = MutationConfig(setup, predict, learn, mutation_types=(0, 2, 4, 5),
                             mutate_prob=mp, setup_size_min=1,
                             setup_size_max=7, predict_size_min=1, predict_size_max=11,
                             learn_size_min=1, learn_size_max=23)
        sizes, init = (1, 1, 1), "no_op"
        st = TaskSpec("digits", 10, 0, 0, 16, held_out=False)
        sel = TaskSpec("digits", 10, 0, 0, 16, data_seeds=(1000,), held_out=True)
        fin = TaskSpec("digits", 100, 0, 0, 16, data_seeds=(2000,), held_out=True)
        rand = True
    specs = {}
    for which, ts in (("search", st), ("select", sel), ("final", fin)):
        ch = {"num_tasks": v[f"{which}_num_tasks"]}
        if v[f"{which}_num_train"] is not None:
            ch["num_train"] = v[f"{which}_num_train"]
        specs[which] = dataclasses.replace(ts, **ch)
    search = SearchConfig(spec, mut, v["population_size"], v["tournament_size"],
                          v["batch_size"], init, sizes, fec, backend=v["backend"])
    return ExperimentConfig(
        name, search, specs["search"], specs["select"], specs["final"], v["max_train_steps"],
        v["sufficient_fitness"], v["max_experiments"], rand, v["progress_every"],
        **search_options(v))


def adaptation_preset(name: str, dataset: str = "digits", **overrides) -> ExperimentConfig:
    """An adaptation preset (``few_examples``, ``fast_training``, ``adaptation_control``) on
    ``dataset`` (``digits``, ``mnist`` or ``fashion_mnist``; see ``experiment.datasets``);
    overrides as :func:`preset`."""
    if name not in REGIMES:
        raise ConfigError(f"adaptation_preset: name must be one of {ADAPTATION_PRESETS}, got "
                          f"{name!r}")
    try:
        datasets.check_dataset(dataset)
    except ValueError as e:
        raise ConfigError(f"adaptation_preset: {e}; fix: e.g. dataset='mnist'") from None
    c = preset(name, **overrides)
    return dataclasses.replace(
        c, **{f: dataclasses.replace(getattr(c, f), dataset=dataset)
              for f in ("search_tasks", "select_tasks", "final_tasks")})


_RUN_KEYS = ("preset", "seed", "seeds", "overrides")


def load_config(path: str, overrides: dict | None = None,
                seed: int | None = None) -> list[tuple[ExperimentConfig, int]]:
    """A JSON or YAML sweep file -> list of (config, seed).

    Format: ``{"preset": "demo", "seeds": [0, 1], "overrides": {...}}`` or
    ``{"runs": [{"preset": ..., "seed": ..., "overrides": {...}}, ...]}``. ``overrides``
    (e.g. the CLI's ``--set``) apply on top of every run's own; ``seed`` replaces every
    run's seeds. Errors (no such file, bad YAML/JSON, unknown keys, bad values) raise
    :class:`ConfigError` naming the file, the run and the key.
    """
    if not isinstance(path, str | os.PathLike):
        raise ConfigError(f"config path must be a str, got {type(path).__name__}")
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ConfigError(f"config file {path!r}: no such file; fix: check the path, or give a "
                          f"preset name ({', '.join(PRESETS)})")
    if os.path.isdir(path):
        raise ConfigError(f"config file {path!r} is a directory; fix: give a .json/.yaml file")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    doc = _parse(path, text)
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: the top level must be a mapping with 'preset' (or 'runs'), "
                          f"got {type(doc).__name__}; fix: e.g. {{\"preset\": \"demo\", "
                          f"\"seeds\": [0, 1]}}")
    if "runs" in doc:
        if set(doc) != {"runs"}:
            raise ConfigError(f"{path}: with 'runs' the top level takes no other keys, got "
                              f"{sorted(set(doc) - {'runs'})}; fix: move them into each run")
        runs = doc["runs"]
        if not isinstance(runs, list) or not runs:
            raise ConfigError(f"{path}: 'runs' must be a non-empty list of runs")
    else:
        runs = [doc]
    out = []
    for i, r in enumerate(runs):
        where = f"{path}: run {i}" if "runs" in doc else path
        out.extend(_one_run(where, r, overrides or {}, seed))
    return out


def _parse(path: str, text: str):
    if path.endswith((".yaml", ".yml")):
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            tab = "; YAML does not allow tabs for indentation: replace them with spaces" \
                if "\t" in text else ""
            problem = getattr(e, "problem", None) or str(e).splitlines()[0]
            raise ConfigError(f"{path}: not valid YAML{at}: {problem}{tab}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path}: not valid JSON at line {e.lineno}, column {e.colno}: "
                          f"{e.msg} (files not ending in .yaml/.yml are read as JSON)") from None


def _one_run(where: str, r, extra: dict, seed) -> list:
    if not isinstance(r, dict):
        raise ConfigError(f"{where}: a run must be a mapping with 'preset', got "
                          f"{type(r).__name__}")
    bad = sorted(set(r) - set(_RUN_KEYS))
    if bad:
        near = difflib.get_close_matches(bad[0], _RUN_KEYS, n=1)
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        raise ConfigError(f"{where}: unknown key {bad[0]!r}{hint}; a run takes "
                          f"{', '.join(_RUN_KEYS)} (settings go under 'overrides')")
    if "preset" not in r:
        raise ConfigError(f"{where}: every run needs 'preset' (one of {', '.join(PRESETS)})")
    if "seed" in r and "seeds" in r:
        raise ConfigError(f"{where}: give 'seed' or 'seeds', not both")
    ov = r.get("overrides", {}) or {}
    if not isinstance(ov, dict):
        raise ConfigError(f"{where}: 'overrides' must be a mapping of key: value, got "
                          f"{type(ov).__name__}")
    seeds = r["seeds"] if "seeds" in r else [r.get("seed", 0)]
    if not isinstance(seeds, list) or not seeds:
        raise ConfigError(f"{where}: 'seeds' must be a non-empty list of ints, got {seeds!r}")
    if seed is not None:
        seeds = [seed]
    for s in seeds:
        check_seed(s, f"{where}: seed")
    try:
        _check_name(r["preset"])
        check(ov)
        config = preset(r["preset"], **{**ov, **extra})
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from None
    return [(config, int(s)) for s in seeds]
