"""The CLI's persistent compilation cache: a second run loads what the first compiled and
gets the same result; ``--compile-cache off`` writes nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

SMALL = ["linear", "--seed", "3", "--no-progress", "--set", "population_size=20",
         "--set", "batch_size=10", "--set", "max_train_steps=20000", "--set", "max_experiments=1"]


def _run(cache: str, tmp_path, name: str, home=None) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}
    if home is not None:
        env["HOME"] = str(home)
    p = subprocess.run([sys.executable, "-m", "evojax_zero", "run", *SMALL, "--compile-cache",
                        cache, "--out", str(tmp_path / name)], capture_output=True, text=True,
                       env=env, timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    out = json.loads(p.stdout.strip().splitlines()[-1])
    out.pop("seconds")
    return out


@pytest.mark.slow
def test_second_run_uses_the_cache_and_matches(tmp_path):
    cache = tmp_path / "xla"
    first = _run(str(cache), tmp_path, "a")
    entries = set(os.listdir(cache))
    assert len(entries) >= 3  # the generation, the initial and the final evaluations at least
    second = _run(str(cache), tmp_path, "b")
    assert second == first
    assert set(os.listdir(cache)) == entries  # nothing compiled anew: every program was a hit


def test_off_writes_no_cache(tmp_path):
    _run("off", tmp_path, "c", home=tmp_path)
    assert not (tmp_path / ".cache" / "evojax_zero" / "xla").exists()
    assert (tmp_path / "c" / "result.json").exists()  # the run itself happened
