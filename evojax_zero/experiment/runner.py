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
import os
import sys
import time

import jax
import numpy as np
from tqdm.auto import tqdm

from evojax_zero.evaluate import analysis
from evojax_zero.evaluate.evaluator import EvalConfig, Evaluator
from evojax_zero.experiment.checkpoint import Checkpointer, cache_from_json, cache_to_json
from evojax_zero.experiment.config import ExperimentConfig
from evojax_zero.experiment.plots import plot_history
from evojax_zero.program import tasks
from evojax_zero.program.programs import Program, ProgramSpec, from_lists, to_lists, to_text
from evojax_zero.search.distributed import population_mesh, to_host
from evojax_zero.search.loop import Search, progress_line

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


def run(config: ExperimentConfig, seed: int = 0, *, out_dir: str | None = None,
        checkpoint_dir: str | None = None, checkpoint_every: int = 1,
        num_devices: int | None = None, progress: bool = True, log=None,
        stop_after_generations: int | None = None) -> Result:
    """Run experiments until sufficient selection fitness or max_experiments.

    ``checkpoint_dir`` saves after every ``checkpoint_every`` generations and resumes
    from the latest checkpoint there. ``out_dir`` receives log.txt, best.txt,
    simplified.txt and fitness.png. ``num_devices`` shards the population.
    """
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
    mesh = population_mesh(num_devices)
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
                raise RunInterrupted()
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


class RunInterrupted(Exception):
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
