"""The reference's experiment protocol, presets and outputs (contract sections 4-5).

An experiment = one regularized-evolution search on the search tasks until its train-step
budget is used (checked between generations); its best program is scored on the
selection tasks (MEAN, no FEC) and the best over experiments is kept. Experiments repeat
until the selection fitness exceeds ``sufficient_fitness`` or ``max_experiments`` is
reached (0 = unlimited); the winner is scored once on the final tasks.

Three lines::

    from evojax_zero import experiment
    result = experiment.run(experiment.preset("demo", population_size=100), seed=0)
    print(result.best_text)
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import sys
import time
from collections.abc import Sequence

import jax
import numpy as np

from evojax_zero import algorithms, analysis, tasks
from evojax_zero.checkpoint import Checkpointer, cache_from_json, cache_to_json
from evojax_zero.distributed import to_host
from evojax_zero.evaluator import EvalConfig, Evaluator
from evojax_zero.fec import FECConfig
from evojax_zero.mutation import MutationConfig
from evojax_zero.program import Program, ProgramSpec, from_lists, to_lists, to_text
from evojax_zero.search import Search, SearchConfig, progress_line

DIGITS_HELD_OUT = ((0, 5), (0, 9), (1, 8), (2, 9), (3, 5), (3, 6), (3, 8), (4, 6), (8, 9))
TASK_KINDS = ("linear", "teacher", "digits")


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """How to build a batch of tasks (seeds None = the reference's defaults)."""

    kind: str = "linear"
    num_tasks: int = 10
    num_train: int = 100
    num_valid: int = 100
    feature_size: int = 4
    param_seeds: tuple | None = None
    data_seeds: tuple | None = None
    held_out: bool = False  # digits: use the held-out pairs (else the others)

    def __post_init__(self):
        if self.kind not in TASK_KINDS:
            raise ValueError(f"TaskSpec.kind must be one of {TASK_KINDS}, got {self.kind!r}")

    def build(self, rng: np.random.Generator | None = None) -> tasks.Tasks:
        """Tasks; with ``rng`` the seeds are redrawn (``--randomize_task_seeds``)."""
        ps, ds = self.param_seeds, self.data_seeds
        if rng is not None:
            ps = tuple(int(s) for s in rng.integers(1, 2**31 - 1, self.num_tasks))
            ds = tuple(int(s) for s in rng.integers(1, 2**31 - 1, self.num_tasks))
        if self.kind == "linear":
            return tasks.linear_regression(self.num_tasks, self.feature_size, self.num_train,
                                           self.num_valid, 1, ps, ds)
        if self.kind == "teacher":
            return tasks.teacher_regression(self.num_tasks, self.feature_size, self.num_train,
                                            self.num_valid, 1, ps, ds)
        pairs, seeds = self.digit_pairs(ds)
        return tasks.projected_binary(pairs, seeds, self.feature_size)

    def digit_pairs(self, data_seeds=None) -> tuple[list, list]:
        """digits: the (pos, neg) pair and split/projection seed of every task."""
        ds = self.data_seeds if data_seeds is None else data_seeds
        pairs_pool = [p for p in tasks.all_digit_pairs()
                      if (tuple(sorted(p)) in DIGITS_HELD_OUT) == self.held_out]
        seeds = tasks.task_seeds(self.num_tasks, ds, (0,))
        pick = np.random.default_rng(seeds[0] + 856572777)
        pairs = [pairs_pool[i] for i in pick.integers(0, len(pairs_pool), self.num_tasks)]
        return pairs, [s % 100 for s in seeds]

    def build_with_test(self):
        """digits: ``(tasks, [(test_x, test_y), ...])`` with the held-back test split."""
        if self.kind != "digits":
            raise ValueError("build_with_test is for digits tasks")
        pairs, seeds = self.digit_pairs()
        return tasks.projected_binary(pairs, seeds, self.feature_size, return_test=True)


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    """A search plus the reference's experiment protocol."""

    name: str
    search: SearchConfig
    search_tasks: TaskSpec
    select_tasks: TaskSpec
    final_tasks: TaskSpec
    max_train_steps: int = 200_000_000
    sufficient_fitness: float = 0.9999
    max_experiments: int = 1
    randomize_task_seeds: bool = False
    progress_every: int = 10000

    def __post_init__(self):
        for n in ("max_train_steps", "max_experiments", "progress_every"):
            v = getattr(self, n)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"ExperimentConfig.{n} must be an int >= 0, got {v!r}")


# ---------------------------------------------------------------------------------------
# Presets
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
        import yaml

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


# ---------------------------------------------------------------------------------------
# Running
# ---------------------------------------------------------------------------------------


@dataclasses.dataclass
class Result:
    best: Program
    best_text: str
    simplified: Program
    simplified_text: str
    search_fitness: float
    select_fitness: float
    final_fitness: float
    individuals: int
    train_steps: int
    experiments: int
    seconds: float
    history: list  # (individuals, seconds, mean, best) per generation
    fec_hit_rate: float | None
    first_solved_seconds: float | None = None
    final_population_fitness: list | None = None


def evaluate(spec: ProgramSpec, program: Program, t: tasks.Tasks, key=None,
             backend: str = "auto") -> float:
    """MEAN fitness of one program on tasks (no FEC, no budget)."""
    ev = _evaluator(spec, backend)
    prog = jax.tree.map(lambda x: x[None], program)
    return float(ev(prog, t, jax.random.key(0) if key is None else key)[0])


@functools.lru_cache(maxsize=8)
def _evaluator(spec: ProgramSpec, backend: str) -> Evaluator:
    """One Evaluator (and its compiled code) per spec: select/final/simplify scoring of
    every experiment reuses it."""
    return Evaluator(spec, EvalConfig(), backend)


def _make_mesh(num_devices: int | None):
    from evojax_zero.distributed import population_mesh

    return population_mesh(num_devices)


def run(config: ExperimentConfig, seed: int = 0, *, out_dir: str | None = None,
        checkpoint_dir: str | None = None, checkpoint_every: int = 1,
        num_devices: int | None = None, progress: bool = True, log=None,
        stop_after_generations: int | None = None) -> Result:
    """Run experiments until sufficient selection fitness or max_experiments.

    ``checkpoint_dir`` saves after every ``checkpoint_every`` generations and resumes
    from the latest checkpoint there. ``out_dir`` receives log.txt, best.txt,
    simplified.txt and fitness.png. ``num_devices`` shards the population.
    """
    from tqdm.auto import tqdm

    c = config
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
    logf = open(os.path.join(out_dir, "log.txt"), "a") if out_dir else None  # noqa: SIM115

    def emit(line):
        if log is not None:
            log(line)
        elif not progress:
            pass
        else:
            tqdm.write(line, file=sys.stdout)
        if logf:
            logf.write(line + "\n")
            logf.flush()

    spec = c.search.spec
    mesh = _make_mesh(num_devices)
    ckpt = Checkpointer(checkpoint_dir) if checkpoint_dir else None
    host = {"experiment": 0, "best_lists": None, "best_select": -1.0, "best_search": 0.0,
            "history": [], "total_individuals": 0, "total_train_steps": 0, "seconds": 0.0,
            "done_experiment": False, "solved_seconds": None}
    t0 = time.time()
    state = search = None
    generations_run = 0
    resumed = False
    if ckpt is not None and ckpt.latest_step() is not None:
        host = ckpt.restore_host()
        resumed = not host["fresh"]
        t0 = time.time() - host["seconds"]
    while True:
        exp = host["experiment"]
        if c.max_experiments and exp >= c.max_experiments:
            break
        rng = np.random.default_rng([seed, exp]) if c.randomize_task_seeds else None
        search_tasks = c.search_tasks.build(rng)
        select_tasks = c.select_tasks.build(rng)
        search = Search(c.search, search_tasks, mesh)
        key = jax.random.fold_in(jax.random.key(seed), exp)
        if resumed:
            state, host = ckpt.restore(search.abstract_state(key))
            state = search.place(state)
            counters = host["counters"]
            search.counters.individuals = counters["individuals"]
            search.counters.train_steps = counters["train_steps"]
            search.counters.fec_hits = counters["fec_hits"]
            search.counters.fec_lookups = counters["fec_lookups"]
            if search.cache is not None and host.get("cache"):
                search.cache.load_arrays(cache_from_json(host["cache"]))
            t0 = time.time() - host["seconds"]
            resumed = False
        else:
            state = search.init(key)
            emit(progress_line(search.counters.individuals, time.time() - t0,
                               search.stats(state)))
        bar = tqdm(total=c.max_train_steps, disable=not progress, unit="step",
                   desc=f"{c.name} exp {exp}", initial=min(search.counters.train_steps,
                                                           c.max_train_steps))
        last_progress = search.counters.individuals
        while search.counters.train_steps < c.max_train_steps:
            before = search.counters.train_steps
            ts = time.time()
            state = search.generation(state)
            jax.block_until_ready(state.evolution.fitness)
            dt = time.time() - ts
            stats = search.stats(state)
            now = time.time() - t0
            host["history"].append([host["total_individuals"] + search.counters.individuals,
                                    now, stats["mean"], stats["best"]])
            if stats["best"] >= c.sufficient_fitness and host["solved_seconds"] is None:
                host["solved_seconds"] = now
            bar.update(min(search.counters.train_steps, c.max_train_steps) - min(
                before, c.max_train_steps))
            bar.set_postfix(indiv_s=f"{c.search.population_size / max(dt, 1e-9):.0f}",
                            best=f"{stats['best']:.6f}")
            if search.counters.individuals >= last_progress + c.progress_every:
                last_progress = search.counters.individuals
                emit(progress_line(search.counters.individuals, now, stats))
            generations_run += 1
            if ckpt and generations_run % checkpoint_every == 0:
                _save(ckpt, state, search, host, t0)
            if stop_after_generations is not None and generations_run >= stop_after_generations:
                bar.close()
                raise _Stopped()
        bar.close()
        best, search_fit = search.best(state)
        select_fit = evaluate(spec, best, select_tasks, backend=c.search.backend)
        emit(f"Experiment {exp}: search fitness={search_fit:.6f}, "
             f"select fitness={select_fit:.6f}")
        host["total_individuals"] += search.counters.individuals
        host["total_train_steps"] += search.counters.train_steps
        if select_fit > host["best_select"]:
            host["best_select"], host["best_search"] = select_fit, search_fit
            host["best_lists"] = to_lists(best)
        host["experiment"] = exp + 1
        if ckpt:
            _save(ckpt, state, search, host, t0, new_experiment=True)
        if select_fit > c.sufficient_fitness:
            break
    if ckpt:
        ckpt.close()
    best = from_lists(spec, **host["best_lists"])
    final_tasks = c.final_tasks.build(None)
    final_fit = evaluate(spec, best, final_tasks, backend=c.search.backend)
    simplified, _ = analysis.simplify_verified(
        best, spec, lambda p: evaluate(spec, p, select_tasks, backend=c.search.backend))
    hits = search.counters.fec_hits if search else 0
    lookups = search.counters.fec_lookups if search else 0
    res = Result(best, to_text(best), simplified, to_text(simplified), host["best_search"],
                 host["best_select"], final_fit, host["total_individuals"],
                 host["total_train_steps"], host["experiment"], time.time() - t0,
                 host["history"], hits / lookups if lookups else None, host["solved_seconds"],
                 to_host(state.evolution.fitness).tolist() if state is not None else None)
    emit(f"Final evaluation fitness (on unseen data) = {final_fit:.6f}")
    emit("Algorithm found:\n" + res.best_text)
    emit("Simplified (dead code removed, same fitness):\n" + res.simplified_text)
    if out_dir:
        for fname, text in (("best.txt", res.best_text), ("simplified.txt", res.simplified_text)):
            with open(os.path.join(out_dir, fname), "w") as f:
                f.write(text)
        plot_history(res.history, os.path.join(out_dir, "fitness.png"), c.name)
        with open(os.path.join(out_dir, "result.json"), "w") as f:
            json.dump({fl.name: getattr(res, fl.name) for fl in dataclasses.fields(res)
                       if fl.name not in ("best", "simplified")}, f)
    if logf:
        logf.close()
    return res


class _Stopped(Exception):
    """Raised by ``stop_after_generations`` (tests of interrupted runs)."""


def _save(ckpt, state, search, host, t0, new_experiment=False):
    host = dict(host)
    host["seconds"] = time.time() - t0
    counters = search.counters
    host["counters"] = {"individuals": counters.individuals,
                        "train_steps": counters.train_steps,
                        "fec_hits": counters.fec_hits, "fec_lookups": counters.fec_lookups}
    if new_experiment:
        host["counters"] = {"individuals": 0, "train_steps": 0, "fec_hits": 0,
                            "fec_lookups": 0}
        host["cache"] = None
        host["fresh"] = True
    else:
        host["fresh"] = False
        host["cache"] = cache_to_json(search.cache.state_arrays()) if search.cache else None
    step = len(host["history"]) * 2 + (1 if new_experiment else 0)
    ckpt.save(step, state, host)


def plot_history(history: Sequence, path: str, title: str = "") -> None:
    """Best and mean population fitness against individuals, saved as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    h = np.asarray(history, float).reshape(-1, 4)
    fig, ax = plt.subplots(figsize=(6, 4))
    if len(h):
        ax.plot(h[:, 0], h[:, 3], label="best")
        ax.plot(h[:, 0], h[:, 2], label="population mean")
    ax.set_xlabel("individuals")
    ax.set_ylabel("search fitness")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def time_to_solution_hint(result: Result) -> float | None:
    return result.first_solved_seconds if result.first_solved_seconds is not None else math.nan
