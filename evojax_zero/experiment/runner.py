"""The reference's experiment protocol, presets and outputs (contract sections 4-5).

An experiment = one regularized-evolution search on the search tasks until its train-step
budget is used (checked between generations); its best program is scored on the
selection tasks (MEAN, no FEC) and the best over experiments is kept. Experiments repeat
until the selection fitness exceeds ``sufficient_fitness`` or ``max_experiments`` is
reached (0 = unlimited); the winner is scored once on the final tasks. The search is the
one the config asks for (:func:`make_search`): plain, through a hurdle, or islands (with or
without a hurdle); the log and the result add what the hurdle saved and each island's
best and mean fitness.

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

import jax
import numpy as np
from tqdm.auto import tqdm

from evojax_zero.evaluate import analysis
from evojax_zero.evaluate.evaluator import EvalConfig, Evaluator
from evojax_zero.experiment.checkpoint import Checkpointer, run_identity
from evojax_zero.experiment.config import ExperimentConfig, check_run
from evojax_zero.experiment.plots import plot_history
from evojax_zero.experiment.state import RunState
from evojax_zero.program import tasks
from evojax_zero.program.programs import Program, ProgramSpec, from_lists, to_lists, to_text
from evojax_zero.search.distributed import population_mesh, to_host
from evojax_zero.search.hurdles import HurdleCounters, HurdleSearch
from evojax_zero.search.islands import IslandSearch, abstract_island_state
from evojax_zero.search.loop import Search, abstract_state, progress_line

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
    first_solved_cpu_seconds: float | None = None  # this process's CPU-s (all threads)
    hurdle_counters: dict | None = None  # HurdleCounters summed over experiments (hurdles on)
    island_stats: list | None = None  # last experiment: {"best", "mean"} per island


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


def make_search(config: ExperimentConfig, search_tasks: tasks.Tasks, mesh=None) -> Search:
    """The search ``config`` asks for: :class:`IslandSearch` (islands, with or without a
    hurdle), :class:`HurdleSearch` or a plain :class:`Search`."""
    c = config
    if c.islands is not None:
        return IslandSearch(c.search, search_tasks, c.islands, mesh, hurdle=c.hurdle)
    if c.hurdle is not None:
        return HurdleSearch(c.search, search_tasks, c.hurdle, mesh)
    return Search(c.search, search_tasks, mesh)


def _abstract_state(config: ExperimentConfig):
    if config.islands is not None:
        return abstract_island_state(config.search, config.islands)
    return abstract_state(config.search)


def _add_counters(a: dict | None, b: HurdleCounters | None) -> dict | None:
    if b is None:
        return a
    return {k: (a or {}).get(k, 0) + v for k, v in b.to_dict().items()}


def _option_lines(search, state) -> list[str]:
    """Progress of the hurdles and islands, one line each (none when off)."""
    lines = []
    hc = getattr(search, "hurdle_counters", None)
    if hc is not None:
        lines.append(f"hurdle: stopped {hc.stopped} of {hc.children} children, "
                     f"train steps saved {hc.train_steps_avoided}")
    if isinstance(search, IslandSearch):
        st = search.island_stats(state)
        lines.append("islands: best " + " ".join(f"{s['best']:.6f}" for s in st)
                     + "; mean " + " ".join(f"{s['mean']:.6f}" for s in st))
    return lines


def run(config: ExperimentConfig, seed: int = 0, *, out_dir: str | None = None,
        checkpoint_dir: str | None = None, checkpoint_every: int | None = None,
        checkpoint_seconds: float | None = 60.0, num_devices: int | None = None,
        progress: bool = True, log=None, stop_after_generations: int | None = None) -> Result:
    """Run experiments until sufficient selection fitness or max_experiments.

    ``checkpoint_dir`` saves the run there every ``checkpoint_every`` generations and/or
    every ``checkpoint_seconds`` seconds (whichever comes first; None = not by that
    measure), after every experiment and once finished, and resumes from the newest intact
    step there: a finished run returns its saved result without searching again; a
    checkpoint of another run (seed or any config field) is refused with a ``ValueError``.
    ``out_dir`` receives log.txt, best.txt, simplified.txt, fitness.png and result.json.
    ``num_devices`` shards the population (with islands: the islands).
    """
    check_run(config, seed, out_dir=out_dir, checkpoint_dir=checkpoint_dir,  # docs/errors.md
              checkpoint_every=checkpoint_every, checkpoint_seconds=checkpoint_seconds,
              num_devices=num_devices)
    _check_schedule(checkpoint_every, checkpoint_seconds)
    c = config
    spec = c.search.spec
    mesh = population_mesh(num_devices)
    ckpt = Checkpointer(checkpoint_dir, run_identity(c, seed)) if checkpoint_dir else None
    rs = None
    if ckpt is not None:
        rs = ckpt.restore(_abstract_state(c),
                          c.search.fec.cache_size if c.search.fec is not None else None)
    rs = rs or RunState()
    emit, close_log = _logger(out_dir, log, progress)
    t0 = time.time() - rs.seconds
    cpu0 = time.process_time() - (rs.cpu_seconds or 0.0)
    if rs.result is not None:
        emit(f"{checkpoint_dir} holds this run, finished; its saved result:")
        res = _result(spec, rs)
        _report(res, emit, out_dir, c.name)
        close_log()
        if ckpt:
            ckpt.close()
        return res

    def save():
        if ckpt is not None:
            rs.seconds = time.time() - t0
            rs.cpu_seconds = time.process_time() - cpu0
            ckpt.save(rs)

    schedule = _Schedule(checkpoint_every, checkpoint_seconds)
    generations_run = 0
    while not rs.done:
        exp = rs.experiment
        search_tasks, select_tasks = _experiment_tasks(c, seed, exp)
        search = make_search(c, search_tasks, mesh)
        if rs.in_experiment:  # resumed mid-experiment
            state = search.place(rs.search)
            search.counters = rs.counters
            search.load_cache(rs.cache)
            if c.hurdle is not None:
                search.hurdle_counters = HurdleCounters.from_dict(rs.hurdle_counters)
        else:
            state = search.init(jax.random.fold_in(jax.random.key(seed), exp))
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
            rs.history.append([rs.total_individuals + search.counters.individuals, now,
                               stats["mean"], stats["best"]])
            if stats["best"] >= c.sufficient_fitness and rs.solved_seconds is None:
                rs.solved_seconds = now
                rs.solved_cpu_seconds = time.process_time() - cpu0
            bar.update(min(search.counters.train_steps, c.max_train_steps) - min(
                before, c.max_train_steps))
            per_gen = c.search.population_size * (c.islands.num_islands if c.islands else 1)
            bar.set_postfix(indiv_s=f"{per_gen / max(dt, 1e-9):.0f}",
                            best=f"{stats['best']:.6f}")
            if search.counters.individuals >= last_progress + c.progress_every:
                last_progress = search.counters.individuals
                emit(progress_line(search.counters.individuals, now, stats))
                for line in _option_lines(search, state):
                    emit(line)
            generations_run += 1
            if schedule.due():
                rs.in_experiment, rs.search, rs.counters = True, state, search.counters
                rs.cache = search.cache_arrays()
                rs.hurdle_counters = _hurdle_dict(search)
                save()
            if stop_after_generations is not None and generations_run >= stop_after_generations:
                bar.close()
                close_log()
                if ckpt:
                    ckpt.close()
                raise RunInterrupted()
        bar.close()
        best, search_fit = search.best(state)
        select_fit = evaluate(spec, best, select_tasks, backend=c.search.backend)
        emit(f"Experiment {exp}: search fitness={search_fit:.6f}, "
             f"select fitness={select_fit:.6f}")
        for line in _option_lines(search, state):
            emit(line)
        rs.total_individuals += search.counters.individuals
        rs.total_train_steps += search.counters.train_steps
        if select_fit > rs.best_select:
            rs.best_select, rs.best_search = select_fit, search_fit
            rs.best_lists = to_lists(best)
        rs.experiment = exp + 1
        rs.in_experiment, rs.search, rs.cache = False, None, None
        rs.counters = search.counters
        rs.hurdle_counters = _hurdle_dict(search)
        rs.hurdle_totals = _add_counters(rs.hurdle_totals, getattr(search, "hurdle_counters",
                                                                    None))
        rs.island_stats = (search.island_stats(state) if isinstance(search, IslandSearch)
                           else None)
        rs.last_population_fitness = to_host(state.evolution.fitness).tolist()
        rs.done = bool(select_fit > c.sufficient_fitness
                       or (c.max_experiments and rs.experiment >= c.max_experiments))
        save()
    # Finish: score the winner once on the final tasks; simplify it on the last
    # experiment's selection tasks.
    best = from_lists(spec, **rs.best_lists)
    final_fit = evaluate(spec, best, c.final_tasks.build(None), backend=c.search.backend)
    _, select_tasks = _experiment_tasks(c, seed, rs.experiment - 1)
    simplified, _ = analysis.simplify_verified(
        best, spec, lambda p: evaluate(spec, p, select_tasks, backend=c.search.backend))
    rs.result = {"final_fitness": final_fit, "simplified_lists": to_lists(simplified),
                 "seconds": time.time() - t0}
    save()
    if ckpt:
        ckpt.close()
    res = _result(spec, rs)
    _report(res, emit, out_dir, c.name)
    close_log()
    return res


def _hurdle_dict(search) -> dict | None:
    hc = getattr(search, "hurdle_counters", None)
    return None if hc is None else hc.to_dict()


class RunInterrupted(Exception):
    """Raised by ``stop_after_generations`` (tests of interrupted runs)."""


def _check_schedule(every, seconds) -> None:
    if every is not None and (isinstance(every, bool) or not isinstance(every, int)
                              or every < 1):
        raise ValueError(f"checkpoint_every must be an int >= 1 (generations between saves) "
                         f"or None, got {every!r}; e.g. checkpoint_every=10")
    if seconds is not None and (isinstance(seconds, bool)
                                or not isinstance(seconds, int | float)
                                or not math.isfinite(seconds) or seconds <= 0):
        raise ValueError(f"checkpoint_seconds must be a number > 0 or None, got {seconds!r}; "
                         "e.g. checkpoint_seconds=60")


class _Schedule:
    """Save after ``every`` generations or ``seconds`` seconds, whichever comes first."""

    def __init__(self, every: int | None, seconds: float | None):
        self.every, self.seconds = every, seconds
        self._reset()

    def _reset(self) -> None:
        self.generations, self.since = 0, time.time()

    def due(self) -> bool:
        self.generations += 1
        if (self.every is not None and self.generations >= self.every) or (
                self.seconds is not None and time.time() - self.since >= self.seconds):
            self._reset()
            return True
        return False


def _experiment_tasks(c: ExperimentConfig, seed: int, exp: int):
    """The search and selection tasks of experiment ``exp`` (redrawn per experiment with
    ``randomize_task_seeds``)."""
    rng = np.random.default_rng([seed, exp]) if c.randomize_task_seeds else None
    return c.search_tasks.build(rng), c.select_tasks.build(rng)


def _logger(out_dir, log, progress):
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
    logf = open(os.path.join(out_dir, "log.txt"), "a") if out_dir else None  # noqa: SIM115

    def emit(line):
        if log is not None:
            log(line)
        elif progress:
            tqdm.write(line, file=sys.stdout)
        if logf:
            logf.write(line + "\n")
            logf.flush()

    def close():
        if logf:
            logf.close()

    return emit, close


def _result(spec: ProgramSpec, rs: RunState) -> Result:
    best = from_lists(spec, **rs.best_lists)
    simplified = from_lists(spec, **rs.result["simplified_lists"])
    return Result(best, to_text(best), simplified, to_text(simplified), rs.best_search,
                  rs.best_select, rs.result["final_fitness"], rs.total_individuals,
                  rs.total_train_steps, rs.experiment, rs.result["seconds"], rs.history,
                  rs.counters.fec_hit_rate, rs.solved_seconds, rs.last_population_fitness,
                  rs.solved_cpu_seconds, rs.hurdle_totals, rs.island_stats)


def _report(res: Result, emit, out_dir: str | None, name: str) -> None:
    if res.hurdle_counters is not None:
        h = res.hurdle_counters
        emit(f"Hurdle: stopped {h['stopped']} of {h['children']} children, "
             f"{h['train_steps_avoided']} train steps saved")
    if res.island_stats is not None:
        emit("Islands (last experiment): " + ", ".join(
            f"{i}: best {s['best']:.6f} mean {s['mean']:.6f}"
            for i, s in enumerate(res.island_stats)))
    emit(f"Final evaluation fitness (on unseen data) = {res.final_fitness:.6f}")
    emit("Algorithm found:\n" + res.best_text)
    emit("Simplified (dead code removed, same fitness):\n" + res.simplified_text)
    if out_dir:
        for fname, text in (("best.txt", res.best_text), ("simplified.txt", res.simplified_text)):
            with open(os.path.join(out_dir, fname), "w") as f:
                f.write(text)
        plot_history(res.history, os.path.join(out_dir, "fitness.png"), name)
        with open(os.path.join(out_dir, "result.json"), "w") as f:
            json.dump({fl.name: getattr(res, fl.name) for fl in dataclasses.fields(res)
                       if fl.name not in ("best", "simplified")}, f)
