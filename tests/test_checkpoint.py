"""Kill -9 at any moment, resume: same final population and best program."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

ARGS = ["run", "demo", "--seed", "3", "--set", "population_size=20", "--set", "batch_size=10",
        "--set", "max_train_steps=330000", "--set", "max_experiments=1",
        "--set", "select_num_tasks=3", "--set", "final_num_tasks=3", "--no-progress"]


def _run(out, ckpt, kill_after_steps=None, timeout=600):
    cmd = [sys.executable, "-m", "evojax_zero", *ARGS, "--out", out]
    if ckpt:
        cmd += ["--checkpoint-dir", ckpt]
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if kill_after_steps is None:
        out_text, _ = proc.communicate(timeout=timeout)
        assert proc.returncode == 0, out_text.decode()[-3000:]
        return
    deadline = time.time() + timeout
    while time.time() < deadline:
        steps = [d for d in os.listdir(ckpt) if d.isdigit()] if os.path.isdir(ckpt) else []
        if len(steps) and max(map(int, steps)) >= kill_after_steps:
            break
        if proc.poll() is not None:
            pytest.fail("run finished before it could be killed")
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


@pytest.mark.slow
def test_kill9_and_resume_matches_uninterrupted(tmp_path):
    ref, cut = str(tmp_path / "ref"), str(tmp_path / "cut")
    ckpt = str(tmp_path / "ckpt")
    _run(ref, None)
    _run(cut, ckpt, kill_after_steps=4)  # killed after a few generations were saved
    _run(cut, ckpt)  # resumes from the last checkpoint
    a = json.load(open(os.path.join(ref, "result.json")))
    b = json.load(open(os.path.join(cut, "result.json")))
    assert a["final_population_fitness"] == b["final_population_fitness"]
    assert a["best_text"] == b["best_text"]
    assert a["individuals"] == b["individuals"] and a["train_steps"] == b["train_steps"]


def test_interrupted_and_resumed_twice_matches_uninterrupted(tmp_path):
    """Fast, in-process: stop mid-experiment 0, resume, stop in experiment 1, resume; the
    final population, best program and counters equal an uninterrupted run's (demo
    preset, so the FEC cache is checkpointed too)."""
    from evojax_zero import experiment

    cfg = experiment.preset("demo", population_size=20, batch_size=10, max_train_steps=60000,
                            max_experiments=2, sufficient_fitness=2.0, select_num_tasks=3,
                            final_num_tasks=3)
    quiet = {"progress": False, "log": lambda s: None}
    ref = experiment.run(cfg, 3, **quiet)
    ckpt = str(tmp_path / "ckpt")
    for stop in (2, 4):
        with pytest.raises(experiment.RunInterrupted):
            experiment.run(cfg, 3, checkpoint_dir=ckpt, stop_after_generations=stop, **quiet)
    res = experiment.run(cfg, 3, checkpoint_dir=ckpt, **quiet)
    assert res.experiments == ref.experiments == 2
    assert res.final_population_fitness == ref.final_population_fitness
    assert res.best_text == ref.best_text and res.select_fitness == ref.select_fitness
    assert res.individuals == ref.individuals and res.train_steps == ref.train_steps
    assert res.fec_hit_rate == ref.fec_hit_rate
