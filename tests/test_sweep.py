"""Sweep queue: a killed sweep resumes without redoing finished jobs; one summary."""

import csv
import json
import os
import subprocess
import sys
import textwrap
import time

import pytest

from evojax_zero import experiment
from evojax_zero.experiment import sweep

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = {"population_size": 10, "batch_size": 10, "max_train_steps": 4000,
        "search_num_tasks": 2, "select_num_tasks": 2, "final_num_tasks": 2,
        "search_num_train": 10, "select_num_train": 10, "final_num_train": 10}

_KILLED = textwrap.dedent("""
    import sys, time
    from evojax_zero.experiment import runner, sweep
    calls = []
    def run_fn(*a, **k):
        calls.append(1)
        if len(calls) == 2:      # the second job never ends: the test kills us here
            print("SECOND", flush=True)
            time.sleep(600)
        return runner.run(*a, **k)
    sweep.run_sweep(sys.argv[1], sys.argv[2], run_fn=run_fn, log=lambda s: None)
""")


@pytest.mark.slow
def test_killed_sweep_resumes_and_skips_finished_jobs(tmp_path):
    path = tmp_path / "sweep.json"
    path.write_text(json.dumps({"preset": "linear", "seeds": [0, 1], "overrides": TINY}))
    out = tmp_path / "out"
    p = subprocess.Popen([sys.executable, "-c", _KILLED, str(path), str(out)], cwd=ROOT,
                         stdout=subprocess.PIPE, text=True)
    first_done = out / "runs" / "000_linear_s0" / "done.json"
    assert p.stdout.readline().strip() == "SECOND"  # job 0 finished, job 1 started
    p.kill()
    p.wait()
    assert first_done.exists() and not (out / "runs" / "001_linear_s1" / "done.json").exists()
    mtime = first_done.stat().st_mtime_ns
    ran = []

    def counting(config, seed, **kw):
        ran.append(seed)
        return sweep.run(config, seed, **kw)

    rows = sweep.run_sweep(str(path), str(out), run_fn=counting, log=lambda s: None)
    assert ran == [1] and first_done.stat().st_mtime_ns == mtime
    assert [r["seed"] for r in rows] == [0, 1]
    with open(out / "summary.csv") as f:
        table = list(csv.DictReader(f))
    assert [t["job"] for t in table] == ["000_linear_s0", "001_linear_s1"]
    assert (out / "summary.md").read_text().count("\n") == 4
    assert (out / "summary.png").stat().st_size > 0
    # everything finished: a third run runs nothing
    ran.clear()
    t0 = time.time()
    sweep.run_sweep(str(path), str(out), run_fn=counting, log=lambda s: None)
    assert ran == [] and time.time() - t0 < 30


def test_bad_sweep_input(tmp_path):
    with pytest.raises(ValueError, match="no jobs"):
        sweep.run_sweep([], str(tmp_path))
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(ValueError, match="is a file"):
        sweep.run_sweep([(experiment.preset("linear", **TINY), 0)], str(f))


def test_sweep_file_with_hurdles_and_islands_reaches_the_runs_and_the_summary(tmp_path):
    """Hurdle and island overrides (dotted or not) in a sweep file build the typed configs;
    the summary gets the island count and what the hurdle saved (no search runs here)."""
    path = tmp_path / "sweep.yaml"
    path.write_text("runs:\n"
                    "  - {preset: linear, seed: 0, overrides: {population_size: 20, "
                    "batch_size: 10, hurdle.tasks: 2, hurdle_kind: mean}}\n"
                    "  - {preset: linear, seed: 1, overrides: {population_size: 20, "
                    "batch_size: 10, islands_count: 4, islands.migration_every: 3}}\n")
    seen = []

    class Res:
        search_fitness = select_fitness = final_fitness = 0.5
        individuals, train_steps, experiments, seconds = 100, 1000, 1, 1.0
        first_solved_seconds = None

    def fake_run(config, seed, **kw):
        seen.append(config)
        os.makedirs(kw["out_dir"], exist_ok=True)
        r = Res()
        r.hurdle_counters = ({"children": 80, "stopped": 30, "pairs_avoided": 240,
                              "train_steps_avoided": 24000} if config.hurdle else None)
        return r

    rows = sweep.run_sweep(str(path), str(tmp_path / "out"), run_fn=fake_run, log=lambda s: None)
    h, i = seen[0].hurdle, seen[1].islands
    assert (h.num_tasks, h.percentile, seen[0].islands) == (2, "mean", None)
    assert (i.num_islands, i.migrate_every, i.num_migrants, seen[1].hurdle) == (4, 3, 1, None)
    assert [(r["islands"], r["hurdle_stopped"], r["hurdle_train_steps_avoided"])
            for r in rows] == [(1, 30, 24000), (4, None, None)]
    table = (tmp_path / "out" / "summary.md").read_text()
    assert "| 1 | 30 | 24000 |" in table and "| 4 | - | - |" in table
