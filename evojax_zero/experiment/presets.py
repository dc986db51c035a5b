"""The reference's demo / linear / nonlinear configurations, the projected-digits
baseline, and sweep files (JSON or YAML) that list presets, seeds and overrides."""

from __future__ import annotations

import dataclasses
import json

import yaml

from evojax_zero.experiment.config import ExperimentConfig, TaskSpec
from evojax_zero.program.programs import ProgramSpec
from evojax_zero.search import initial as algorithms
from evojax_zero.search.fec import FECConfig
from evojax_zero.search.loop import SearchConfig
from evojax_zero.search.mutation import MutationConfig

# ---------------------------------------------------------------------------------------

DEMO_OPS = ("SCALAR_CONST_SET", "VECTOR_INNER_PRODUCT", "SCALAR_DIFF", "SCALAR_PRODUCT",
            "SCALAR_VECTOR_PRODUCT", "VECTOR_SUM")
PRESETS = ("demo", "linear", "nonlinear", "digits")
OVERRIDES = ("population_size", "tournament_size", "batch_size", "max_train_steps",
             "max_experiments", "sufficient_fitness", "fec", "progress_every",
             "search_num_tasks", "select_num_tasks", "final_num_tasks", "backend",
             "search_num_train", "select_num_train", "final_num_train", "mutate_prob")


def preset(name: str, **overrides) -> ExperimentConfig:
    """The reference's demo / linear / nonlinear configs and a digits-pairs baseline.

    Overrides (all optional): population_size, tournament_size, batch_size (children per
    step; 1 = the reference), max_train_steps (per experiment), max_experiments,
    sufficient_fitness, fec (bool), progress_every, backend, mutate_prob and
    {search,select,final}_num_tasks / _num_train.
    """
    bad = sorted(set(overrides) - set(OVERRIDES))
    if bad:
        raise ValueError(f"unknown preset overrides {bad}; allowed: {list(OVERRIDES)}")
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; allowed: {list(PRESETS)}")
    o = dict(overrides)
    fec = FECConfig() if o.pop("fec", name in ("demo", "linear")) else None
    if name == "demo":
        spec = ProgramSpec(4, 3, 1, 4, DEMO_OPS, DEMO_OPS, DEMO_OPS, 10, 2, 8)
        mut = MutationConfig(DEMO_OPS, DEMO_OPS, DEMO_OPS, mutate_prob=o.pop("mutate_prob", 0.9))
        sizes, init, P, B = (10, 2, 8), "random", 1000, 100
        st = TaskSpec("linear", 10, 100, 100)
        sel = TaskSpec("linear", 100, 1000, 100)
        fin = TaskSpec("linear", 100, 1000, 100, param_seeds=(2000000,), data_seeds=(1000000,))
        budget, suff, max_exp, rand = 200_000_000, 0.9999, 0, True
    elif name == "linear":
        spec = ProgramSpec(4, 3, 1, 4, (56,), (27,), (2, 3, 18, 23), 5, 1, 4)
        mut = MutationConfig((56,), (27,), (2, 3, 18, 23), mutate_prob=o.pop("mutate_prob", 0.9))
        sizes, init, P, B = (5, 1, 4), "random", 1000, 100
        st = TaskSpec("linear", 10, 100, 100)
        sel = TaskSpec("linear", 100, 10000, 100)
        fin = sel
        budget, suff, max_exp, rand = 100_000_000, 0.9999, 1, False
    elif name == "nonlinear":
        nn = algorithms.ops_used(algorithms.neural_net_lists())
        spec = ProgramSpec(5, 9, 2, 4, nn["setup"], nn["predict"], nn["learn"], 6, 5, 11)
        mut = MutationConfig((63, 64), (), (), mutation_types=(0, 4, 5, 6),
                             mutate_prob=o.pop("mutate_prob", 1.0), setup_size_min=6,
                             setup_size_max=7, predict_size_min=3, predict_size_max=4,
                             learn_size_min=9, learn_size_max=10)
        sizes, init, P, B = (2, 1, 4), "integration_test_damaged_neural_net", 1000, 100
        st = TaskSpec("teacher", 1, 1000, 100)
        sel = TaskSpec("teacher", 1, 1000, 100, param_seeds=(9000,), data_seeds=(19000,))
        fin = sel
        budget, suff, max_exp, rand = 100_000_000, 0.9999, 1, False
    else:  # digits: the reference's run_baseline.sh on projected digits pairs
        setup = (56, 62, 59, 63, 60, 64, 61)
        predict = (1, 31, 48, 27, 23)
        learn = (1, 2, 3, 18, 23, 16, 25, 28, 39)
        spec = ProgramSpec(5, 9, 2, 16, setup, predict, learn, 6, 10, 22)
        mut = MutationConfig(setup, predict, learn, mutation_types=(0, 2, 4, 5),
                             mutate_prob=o.pop("mutate_prob", 0.9), setup_size_min=1,
                             setup_size_max=7, predict_size_min=1, predict_size_max=11,
                             learn_size_min=1, learn_size_max=23)
        sizes, init, P, B = (1, 1, 1), "no_op", 100, 10
        st = TaskSpec("digits", 10, 0, 0, 16, held_out=False)
        sel = TaskSpec("digits", 10, 0, 0, 16, data_seeds=(1000,), held_out=True)
        fin = TaskSpec("digits", 100, 0, 0, 16, data_seeds=(2000,), held_out=True)
        budget, suff, max_exp, rand = 20_000_000, 1.0, 1, True
    for which, ts in (("search", st), ("select", sel), ("final", fin)):
        ch = {}
        if f"{which}_num_tasks" in o:
            ch["num_tasks"] = int(o.pop(f"{which}_num_tasks"))
        if f"{which}_num_train" in o:
            ch["num_train"] = int(o.pop(f"{which}_num_train"))
        ts = dataclasses.replace(ts, **ch)
        if which == "search":
            st = ts
        elif which == "select":
            sel = ts
        else:
            fin = ts
    P = int(o.pop("population_size", P))
    B = int(o.pop("batch_size", min(B, P)))
    search = SearchConfig(spec, mut, P, int(o.pop("tournament_size", 10)), B, init, sizes,
                          fec, backend=o.pop("backend", "auto"))
    return ExperimentConfig(
        name, search, st, sel, fin, int(o.pop("max_train_steps", budget)),
        float(o.pop("sufficient_fitness", suff)), int(o.pop("max_experiments", max_exp)),
        rand, int(o.pop("progress_every", 10000)))


def load_config(path: str) -> list[tuple[ExperimentConfig, int]]:
    """A JSON or YAML sweep file -> list of (config, seed).

    Format: ``{"preset": "demo", "seeds": [0, 1], "overrides": {...}}`` or
    ``{"runs": [{"preset": ..., "seed": ..., "overrides": {...}}, ...]}``.
    """
    with open(path) as f:
        text = f.read()
    if path.endswith((".yaml", ".yml")):
        doc = yaml.safe_load(text)
    else:
        doc = json.loads(text)
    if not isinstance(doc, dict):
        raise ValueError(f"{path}: top level must be a mapping")
    runs = doc.get("runs", [doc])
    out = []
    for r in runs:
        if "preset" not in r:
            raise ValueError(f"{path}: every run needs 'preset' (one of {list(PRESETS)})")
        seeds = r.get("seeds", [r.get("seed", 0)])
        for s in seeds:
            out.append((preset(r["preset"], **r.get("overrides", {})), int(s)))
    return out
