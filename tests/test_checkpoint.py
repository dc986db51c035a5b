"""Checkpoints never lose work: resume continues (not restarts) and ends bit-identical to an
uninterrupted run; a finished run re-run is a no-op; a checkpoint of another run is refused
and left untouched; a corrupt newest step falls back to the previous intact one; kill -9 at
random moments (also during a save), several times, then resume: identical, every time."""

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from evojax_zero import experiment
from evojax_zero.experiment.checkpoint import Checkpointer, run_identity
from evojax_zero.experiment.state import RunState

CFG = dict(population_size=20, batch_size=10, max_train_steps=60000, max_experiments=2,
           sufficient_fitness=1.0, select_num_tasks=3, final_num_tasks=3)
QUIET = {"progress": False, "log": lambda s: None}
SEED = 3


def _cfg(**changes):
    return experiment.preset("demo", **{**CFG, **changes})


@pytest.fixture(scope="module")
def reference():
    return experiment.run(_cfg(), SEED, **QUIET)


def _same(a, b):
    assert a.final_population_fitness == b.final_population_fitness
    assert a.best_text == b.best_text and a.simplified_text == b.simplified_text
    assert (a.search_fitness, a.select_fitness, a.final_fitness) == \
        (b.search_fitness, b.select_fitness, b.final_fitness)
    assert (a.individuals, a.train_steps, a.experiments) == \
        (b.individuals, b.train_steps, b.experiments)
    assert a.fec_hit_rate == b.fec_hit_rate
    # history without the seconds column
    assert [h[:1] + h[2:] for h in a.history] == [h[:1] + h[2:] for h in b.history]


def _interrupt(ckpt, *stops):
    for stop in stops:
        with pytest.raises(experiment.RunInterrupted):
            experiment.run(_cfg(), SEED, checkpoint_dir=ckpt, checkpoint_every=1,
                           stop_after_generations=stop, **QUIET)


def _snapshot(d):
    return sorted((os.path.relpath(os.path.join(r, f), d), os.path.getsize(os.path.join(r, f)),
                   os.path.getmtime(os.path.join(r, f)))
                  for r, _, fs in os.walk(d) for f in fs)


def test_resume_continues_and_matches_uninterrupted(reference, tmp_path):
    """Stopped in experiment 0 and again later, resumed: the resumed run does only the
    remaining generations (it would hit ``stop_after_generations`` if it started over) and
    ends bit-identical to the uninterrupted run, FEC cache and counters included."""
    ckpt = str(tmp_path / "ckpt")
    total = len(reference.history)
    assert total > 8  # both experiments have several generations
    _interrupt(ckpt, 2, 4)  # 6 generations saved
    res = experiment.run(_cfg(), SEED, checkpoint_dir=ckpt, checkpoint_every=1,
                         stop_after_generations=total - 6 + 1, **QUIET)
    _same(res, reference)


def test_finished_run_rerun_is_a_noop(reference, tmp_path):
    ckpt = str(tmp_path / "ckpt")
    first = experiment.run(_cfg(), SEED, checkpoint_dir=ckpt, **QUIET)
    before = _snapshot(ckpt)
    lines = []
    again = experiment.run(_cfg(), SEED, checkpoint_dir=ckpt, stop_after_generations=1,
                           progress=False, log=lines.append)  # would raise if it searched
    _same(again, first)
    _same(again, reference)
    assert again.seconds == first.seconds  # the saved result, not a new one
    assert any("finished" in x for x in lines)
    assert _snapshot(ckpt) == before


@pytest.mark.parametrize("seed,changes,field", [
    (4, {}, "seed"),
    (SEED, {"population_size": 40}, "search.population_size"),
    (SEED, {"max_train_steps": 70000}, "max_train_steps"),
    (SEED, {"fec": False}, "search.fec"),
    (SEED, {"select_num_tasks": 4}, "select_tasks.num_tasks"),
    (SEED, {"islands_count": 2}, "islands"),
    (SEED, {"hurdle_tasks": 2}, "hurdle"),
])
def test_mismatched_resume_is_refused_and_changes_nothing(tmp_path, seed, changes, field):
    ckpt = str(tmp_path / "ckpt")
    _interrupt(ckpt, 1)
    before = _snapshot(ckpt)
    with pytest.raises(ValueError, match=f"{field} was"):
        experiment.run(_cfg(**changes), seed, checkpoint_dir=ckpt, **QUIET)
    assert _snapshot(ckpt) == before


def _corrupt_state_file(step_dir):
    files = [os.path.join(r, f) for r, _, fs in os.walk(os.path.join(step_dir, "state"))
             for f in fs]
    big = max(files, key=os.path.getsize)
    with open(big, "r+b") as f:
        f.truncate(os.path.getsize(big) // 2)


def _corrupt_meta(step_dir):
    for r, _, fs in os.walk(os.path.join(step_dir, "meta")):
        for f in fs:
            with open(os.path.join(r, f), "w") as fh:
                fh.write('{"format": 2, "ide')


def _remove_state(step_dir):
    shutil.rmtree(os.path.join(step_dir, "state"))


@pytest.mark.parametrize("corrupt", [_corrupt_state_file, _corrupt_meta, _remove_state])
def test_corrupt_latest_step_falls_back_to_previous(reference, tmp_path, corrupt):
    ckpt = str(tmp_path / "ckpt")
    _interrupt(ckpt, 3)
    steps = sorted(int(s) for s in os.listdir(ckpt) if s.isdigit())
    assert steps == [0, 1, 2]
    corrupt(os.path.join(ckpt, "2"))
    with pytest.warns(RuntimeWarning, match="resuming from step 1"):
        res = experiment.run(_cfg(), SEED, checkpoint_dir=ckpt, checkpoint_every=1,
                             stop_after_generations=len(reference.history) - 2 + 1, **QUIET)
    _same(res, reference)


def test_checkpoint_every_zero_and_bad_seconds_are_clear_errors(tmp_path):
    for kw, name in (({"checkpoint_every": 0}, "checkpoint_every"),
                     ({"checkpoint_seconds": 0}, "checkpoint_seconds"),
                     ({"checkpoint_every": None, "checkpoint_seconds": float("nan")},
                      "checkpoint_seconds")):
        with pytest.raises(ValueError, match=name):
            experiment.run(_cfg(), SEED, checkpoint_dir=str(tmp_path / "c"), **kw, **QUIET)
    assert not os.path.exists(tmp_path / "c")


# ---------------------------------------------------------------------------------------
# Fault injection: kill -9 a checkpointed CLI run at random moments, several times
# ---------------------------------------------------------------------------------------

ARGS = ["run", "demo", "--seed", "3", "--set", "population_size=20", "--set", "batch_size=10",
        "--set", "max_train_steps=150000", "--set", "max_experiments=2",
        "--set", "sufficient_fitness=1.0",
        "--set", "select_num_tasks=3", "--set", "final_num_tasks=3", "--no-progress"]


def _env(cache):
    return dict(os.environ, OPENBLAS_NUM_THREADS="1", JAX_COMPILATION_CACHE_DIR=cache,
                JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
                JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")


def _cli(out, env, ckpt=None):
    cmd = [sys.executable, "-m", "evojax_zero", *ARGS, "--out", out]
    if ckpt:
        cmd += ["--checkpoint-dir", ckpt, "--checkpoint-every", "1"]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _entries(ckpt):
    return os.listdir(ckpt) if os.path.isdir(ckpt) else []


def _kill_at(proc, ckpt, rng, during_save, timeout=900):
    """SIGKILL ``proc`` once a new step (or, with ``during_save``, an unfinished step
    directory) appears, after a random delay. Returns False if it finished first."""
    start = set(_entries(ckpt))
    delay = rng.uniform(0.0, 0.5)
    deadline = time.time() + timeout
    while time.time() < deadline:
        new = set(_entries(ckpt)) - start
        if during_save and any(not x.isdigit() for x in new):
            break  # orbax's temporary step directory: a save is in progress
        if not during_save and any(x.isdigit() for x in new):
            time.sleep(delay)
            break
        if proc.poll() is not None:
            return False
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return True


@pytest.mark.slow
def test_kill9_at_random_moments_then_resume_is_bit_identical(tmp_path):
    cache = str(tmp_path / "jax_cache")
    env = _env(cache)
    ref_out, out, ckpt = str(tmp_path / "ref"), str(tmp_path / "out"), str(tmp_path / "ckpt")
    ref = _cli(ref_out, env)
    text, _ = ref.communicate(timeout=900)
    assert ref.returncode == 0, text.decode()[-3000:]
    rng = random.Random(11)
    kills = 0
    for during_save in (False, True, False, True, False):
        if not _kill_at(_cli(out, env, ckpt), ckpt, rng, during_save):
            break
        kills += 1
    assert kills >= 3
    last = _cli(out, env, ckpt)
    text, _ = last.communicate(timeout=900)
    assert last.returncode == 0, text.decode()[-3000:]
    a = json.load(open(os.path.join(ref_out, "result.json")))
    b = json.load(open(os.path.join(out, "result.json")))
    for k in ("final_population_fitness", "best_text", "simplified_text", "search_fitness",
              "select_fitness", "final_fitness", "individuals", "train_steps", "experiments",
              "fec_hit_rate"):
        assert a[k] == b[k], k
    np.testing.assert_array_equal(np.asarray(a["history"])[:, [0, 2, 3]],
                                  np.asarray(b["history"])[:, [0, 2, 3]])


ISLANDS_HURDLE = dict(islands_count=2, islands_migration_every=2, hurdle_tasks=2,
                      max_train_steps=120000, max_experiments=1)


@pytest.mark.slow
def test_killed_island_hurdle_fec_run_resumes_bit_identically(tmp_path):
    """Islands + hurdle + FEC (demo's): stopped twice, resumed: the same populations,
    programs, counters (hurdle and FEC included) and per-island stats as without a stop;
    a resume with another island count is refused naming the field."""
    cfg = _cfg(**ISLANDS_HURDLE)
    ref = experiment.run(cfg, SEED, **QUIET)
    assert len(ref.history) >= 4 and ref.hurdle_counters["stopped"] > 0
    assert len(ref.island_stats) == 2 and ref.fec_hit_rate > 0
    ckpt = str(tmp_path / "ckpt")
    for stop in (1, 1):  # resumed at generation 1 and 2: migrations (every 2nd) in between
        with pytest.raises(experiment.RunInterrupted):
            experiment.run(cfg, SEED, checkpoint_dir=ckpt, checkpoint_every=1,
                           stop_after_generations=stop, **QUIET)
    with pytest.raises(ValueError, match="islands.num_islands was 2, this run has 3"):
        experiment.run(_cfg(**{**ISLANDS_HURDLE, "islands_count": 3}), SEED,
                       checkpoint_dir=ckpt, **QUIET)
    res = experiment.run(cfg, SEED, checkpoint_dir=ckpt, checkpoint_every=1,
                         stop_after_generations=len(ref.history) - 2 + 1, **QUIET)
    _same(res, ref)
    assert res.hurdle_counters == ref.hurdle_counters
    assert res.island_stats == ref.island_stats


def test_run_state_of_steps_written_before_hurdles_and_islands(tmp_path):
    """Steps saved before the hurdle/island/CPU fields existed still load (options off);
    an unknown field is still an error."""
    meta = RunState().meta()
    for k in ("cpu_seconds", "solved_cpu_seconds", "hurdle_counters", "hurdle_totals",
              "island_stats"):
        del meta[k]
    assert RunState.from_meta(meta) == RunState()
    with pytest.raises(ValueError, match="unknown"):
        RunState.from_meta({**meta, "bogus": 1})
    # and their identity (no hurdle / islands entries) matches a run with both off
    identity = run_identity(_cfg(), SEED)
    old = {k: v for k, v in identity.items() if k not in ("hurdle", "islands")}
    Checkpointer(str(tmp_path / "old"), old).save(RunState(experiment=1))
    assert Checkpointer(str(tmp_path / "old"), identity).restore(None, None).experiment == 1
    Checkpointer(str(tmp_path / "isl"), {**old, "islands.num_islands": "2"}).save(RunState())
    with pytest.raises(ValueError, match="islands was <absent>, this run has None"):
        Checkpointer(str(tmp_path / "isl"), identity).restore(None, None)
