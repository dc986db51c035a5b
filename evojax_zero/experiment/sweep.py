"""A sweep (seeds x presets, from a sweep file) as a queue that survives a kill.

Each (config, seed) of the sweep is one job, named ``NNN_<preset>_s<seed>`` by its position.
A job runs :func:`experiment.run` with ``out_dir`` and ``checkpoint_dir`` under
``<out>/runs/<name>/``, so a kill in the middle of a job resumes it from its last
checkpoint; a finished job writes ``<out>/runs/<name>/done.json`` atomically (write, then
rename). Running the sweep again skips every job with a ``done.json`` and runs the rest.
At the end ``summary.csv``, ``summary.md`` and ``summary.png`` gather every finished job.

    from evojax_zero.experiment import sweep
    rows = sweep.run_sweep("sweep.json", "out/sweep1")
"""

from __future__ import annotations

import csv
import json
import os

import matplotlib
import numpy as np

from evojax_zero.experiment.config import ExperimentConfig
from evojax_zero.experiment.presets import load_config
from evojax_zero.experiment.runner import run

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

COLUMNS = ("job", "preset", "seed", "search_fitness", "select_fitness", "final_fitness",
           "individuals", "train_steps", "experiments", "seconds", "first_solved_seconds",
           "islands", "hurdle_stopped", "hurdle_train_steps_avoided")
_RESULT_COLUMNS = COLUMNS[3:11]  # Result attributes of the same name


def job_names(jobs: list[tuple[ExperimentConfig, int]]) -> list[str]:
    return [f"{i:03d}_{c.name}_s{s}" for i, (c, s) in enumerate(jobs)]


def run_sweep(sweep, out_dir: str, *, run_fn=run, checkpoint_seconds: float | None = 30.0,
              log=print) -> list[dict]:
    """Run every unfinished job of ``sweep`` (a sweep-file path or a list of (config, seed))
    in order, then write the summary; returns the summary rows (one per job, in order)."""
    jobs = load_config(sweep) if isinstance(sweep, str | os.PathLike) else list(sweep)
    if not jobs:
        raise ValueError("the sweep has no jobs; fix: give at least one preset and seed")
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise ValueError(f"sweep out_dir {out_dir!r} is a file; pass a directory")
    names = job_names(jobs)
    for (config, seed), name in zip(jobs, names, strict=True):
        job_dir = os.path.join(out_dir, "runs", name)
        done = os.path.join(job_dir, "done.json")
        if os.path.exists(done):
            log(f"{name}: finished before, skipped")
            continue
        log(f"{name}: running")
        res = run_fn(config, seed, out_dir=job_dir, checkpoint_dir=os.path.join(job_dir, "ckpt"),
                     checkpoint_seconds=checkpoint_seconds, progress=False, log=lambda s: None)
        row = summary_row(name, config, seed, res)
        tmp = done + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(row, f)
        os.replace(tmp, done)
    rows = []
    for name in names:
        with open(os.path.join(out_dir, "runs", name, "done.json"), encoding="utf-8") as f:
            rows.append(json.load(f))
    write_summary(rows, out_dir)
    return rows


def summary_row(name: str, config: ExperimentConfig, seed: int, res) -> dict:
    """One job's row: its result, island count and what its hurdle saved (None: off)."""
    h = getattr(res, "hurdle_counters", None)
    return {"job": name, "preset": config.name, "seed": seed,
            **{k: getattr(res, k, None) for k in _RESULT_COLUMNS},
            "islands": config.islands.num_islands if config.islands is not None else 1,
            "hurdle_stopped": None if h is None else h["stopped"],
            "hurdle_train_steps_avoided": None if h is None else h["train_steps_avoided"]}


def write_summary(rows: list[dict], out_dir: str) -> None:
    """summary.csv, summary.md (one table) and summary.png (final fitness per job)."""
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "summary.csv"), "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS, restval="")
        w.writeheader()
        w.writerows(rows)

    def fmt(v):
        if v is None:
            return "-"
        return f"{v:.4f}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(fmt(r.get(c)) for c in COLUMNS) + " |" for r in rows]
    with open(os.path.join(out_dir, "summary.md"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    fig, ax = plt.subplots(figsize=(max(4, 0.6 * len(rows)), 3.5))
    x = np.arange(len(rows))
    ax.bar(x, [r["final_fitness"] for r in rows])
    ax.set_xticks(x, [r["job"] for r in rows], rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("final fitness")
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, "summary.png"), dpi=100)
    plt.close(fig)
