"""Bad input through the command line (issue 11): one row per case, table-driven.

Each row runs ``main(argv)`` in-process (as ``python -m evojax_zero`` does) and checks
``SystemExit`` code 2, that stderr names the flag or key (and the allowed values or the fix)
and that no traceback escapes. Two rows also run the real ``python -m evojax_zero`` in a
subprocess. Nothing here starts a search: every bad input is rejected before one.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import jax
import pytest

from evojax_zero.experiment import cli, overrides

ROOT = pathlib.Path(__file__).resolve().parents[1]
MANY = max(8, jax.device_count() + 1)  # more devices than this process has

# (id, argv after "run", words stderr must contain). "{d}" is a scratch directory holding
# a file "afile", a YAML file with a tab, bad JSON and a file with an unknown key.
ROWS = [
    ("bool-not-strict", ["demo", "--set", "fec=maybe"], ["fec", "true or false", "yes/no"]),
    ("set-without-equals", ["demo", "--set", "fec"], ["--set", "KEY=VALUE"]),
    ("int-given-float", ["demo", "--set", "population_size=20.9"],
     ["population_size", "an int >= 1", "'20.9'", "whole number"]),
    ("int-given-exponent", ["demo", "--set", "max_train_steps=1e6"],
     ["max_train_steps", "whole number"]),
    ("unknown-key", ["demo", "--set", "populaton_size=3"],
     ["populaton_size", "did you mean 'population_size'", "--help"]),
    ("backend-gpu", ["demo", "--set", "backend=gpu"],
     ["backend", "auto, xla, native, cuda", "cuda"]),
    ("search-num-tasks-zero", ["demo", "--set", "search_num_tasks=0"],
     ["search_num_tasks", ">= 1"]),
    ("float-out-of-range", ["demo", "--set", "mutate_prob=2"], ["mutate_prob", "[0, 1]"]),
    ("float-nan", ["linear", "--set", "sufficient_fitness=nan"],
     ["sufficient_fitness", "[0, 1]"]),
    ("float-not-a-number", ["linear", "--set", "mutate_prob=high"],
     ["mutate_prob", "write a number"]),
    ("batch-not-dividing", ["demo", "--set", "population_size=100", "--set", "batch_size=30"],
     ["batch_size", "divide", "population_size"]),
    ("num-train-for-digits", ["digits", "--set", "search_num_train=5"],
     ["search_num_train", "digits"]),
    ("checkpoint-every-zero", ["demo", "--checkpoint-every", "0"],
     ["--checkpoint-every", ">= 1"]),
    ("checkpoint-every-negative", ["demo", "--checkpoint-every", "-5"],
     ["--checkpoint-every", ">= 1"]),
    ("checkpoint-seconds-zero", ["demo", "--checkpoint-seconds", "0"],
     ["--checkpoint-seconds", "> 0"]),
    ("checkpoint-seconds-nan", ["demo", "--checkpoint-seconds", "nan"],
     ["--checkpoint-seconds", "> 0"]),
    ("seed-negative", ["demo", "--seed", "-1"], ["--seed", "[0, 4294967295]"]),
    ("seed-too-big", ["demo", "--seed", str(2**40)], ["--seed", "[0, 4294967295]"]),
    ("seed-not-int", ["demo", "--seed", "abc"], ["--seed", "invalid int"]),
    ("seed-negative-on-sweep", ["{d}/ok.json", "--seed", "-1"], ["--seed"]),
    ("out-is-a-file", ["demo", "--out", "{d}/afile"], ["--out", "not a directory"]),
    ("checkpoint-dir-is-a-file", ["demo", "--checkpoint-dir", "{d}/afile"],
     ["--checkpoint-dir", "not a directory"]),
    ("out-under-a-file", ["demo", "--out", "{d}/afile/sub"], ["--out", "is a file"]),
    ("yaml-tab", ["{d}/tab.yaml"], ["tab.yaml", "line 4", "tabs", "spaces"]),
    ("json-syntax", ["{d}/bad.json"], ["bad.json", "JSON", "line 1"]),
    ("file-unknown-key", ["{d}/unknown.json"], ["overides", "did you mean 'overrides'"]),
    ("file-unknown-override", ["{d}/typo.yaml"], ["typo.yaml", "populaton_size"]),
    ("file-bad-value", ["{d}/badvalue.yaml"], ["badvalue.yaml", "population_size",
                                               "whole number"]),
    ("missing-config", ["{d}/missing.yaml"], ["missing.yaml", "no such file"]),
    ("missing-config-in-dir", ["{d}/nodir/x.json"], ["x.json", "no such file"]),
    ("missing-config-no-suffix", ["{d}/sweep"], ["sweep", "no such file"]),
    ("config-is-directory", ["{d}"], ["is a directory"]),
    ("unknown-preset", ["dmeo"], ["dmeo", "did you mean 'demo'", "presets"]),
    ("set-applied-to-sweep", ["{d}/ok.json", "--set", "fec=maybe"], ["--set fec", "maybe"]),
    ("set-on-sweep-unknown", ["{d}/ok.json", "--set", "popsize=2"], ["popsize"]),
    ("devices-too-many", ["linear", "--set", f"population_size={4 * MANY}", "--set",
                          "batch_size=4", "--devices", str(MANY)],
     ["--devices", f"XLA_FLAGS=--xla_force_host_platform_device_count={MANY}", "GPU"]),
    ("devices-not-dividing", ["demo", "--set", "population_size=20", "--devices", "3"],
     ["--devices 3", "population_size", "divisible", "[1, 2, 4, 5, 10]"]),
    ("devices-zero", ["demo", "--devices", "0"], ["--devices", ">= 1"]),
    ("no-target", [], ["target"]),
    ("hurdle-tasks-too-many", ["demo", "--set", "search.hurdle.tasks=10"],
     ["hurdle_tasks", "[1, 9]", "search_num_tasks"]),
    ("hurdle-percentile-range", ["demo", "--set", "hurdle.percentile=101"],
     ["hurdle_percentile", "[0, 100]"]),
    ("hurdle-kind-unknown", ["demo", "--set", "hurdle_kind=median"],
     ["hurdle_kind", "percentile, mean, threshold"]),
    ("islands-count-not-int", ["demo", "--set", "islands.count=2.5"],
     ["islands_count", "whole number"]),
    ("islands-devices-not-dividing", ["demo", "--set", "population_size=20", "--set",
                                      "islands_count=3", "--devices", "2"],
     ["--devices 2", "islands_count (3)", "divisible"]),
]
NUM_CASES = len(ROWS)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    (d / "afile").write_text("x")
    (d / "tab.yaml").write_text("preset: demo\nseeds: [0]\noverrides:\n\tpopulation_size: 20\n")
    (d / "bad.json").write_text('{"preset": "demo",}')
    (d / "unknown.json").write_text('{"preset": "demo", "overides": {}}')
    (d / "typo.yaml").write_text("preset: demo\noverrides: {populaton_size: 3}\n")
    (d / "badvalue.yaml").write_text("preset: demo\noverrides: {population_size: 20.9}\n")
    (d / "ok.json").write_text('{"preset": "linear", "seeds": [0, 1], '
                               '"overrides": {"population_size": 20, "batch_size": 10}}')
    return d


def _main(argv, capsys):
    """Run the CLI; returns (exit code, stdout, stderr)."""
    try:
        code = cli.main(argv)
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def no_runs(monkeypatch):
    """Replace the experiment runner: a bad-input row must never get as far as a run."""
    calls = []

    def fake_run(config, seed, **kw):
        calls.append((config, seed, kw))
        raise AssertionError("reached run()")

    monkeypatch.setattr(cli, "run", fake_run)
    return calls


@pytest.mark.parametrize("case", ROWS, ids=[r[0] for r in ROWS])
def test_cli_bad_input_exits_2_and_names_it(case, scratch, capsys, no_runs):
    _, argv, words = case
    argv = ["run", *(a.replace("{d}", str(scratch)) for a in argv)]
    code, _, err = _main(argv, capsys)
    assert code == 2, err
    assert "Traceback" not in err
    assert not no_runs
    missing = [w for w in words if w not in err]
    assert not missing, f"stderr lacks {missing}: {err}"


def test_case_count_is_documented():
    """docs/errors.md states how many rows this suite holds."""
    assert f"{NUM_CASES} CLI cases" in (ROOT / "docs" / "errors.md").read_text()


def test_help_lists_every_set_key_with_type_and_default(capsys):
    code, out, _ = _main(["run", "--help"], capsys)
    assert code == 0
    for o in overrides.SCHEMA.values():
        assert f"{o.name}={o.type_name.upper()}: {o.allowed()}; default" in out
    assert "fec=BOOL: true or false; default demo true, linear true, nonlinear false" in out
    assert "population_size=INT: an int >= 1; default demo 1_000" in out
    assert "--xla_force_host_platform_device_count" in out


class _Result:
    select_fitness = final_fitness = 0.5
    individuals = 1
    seconds = 0.0


def test_cli_settings_reach_the_run(scratch, capsys, monkeypatch):
    """--set fec=no turns FEC off; --set and --seed apply to a sweep file."""
    calls = []
    monkeypatch.setattr(cli, "run", lambda c, s, **kw: calls.append((c, s, kw)) or _Result())
    code, out, _ = _main(["run", "demo", "--set", "fec=no", "--set", "population_size=40",
                          "--checkpoint-every", "5", "--no-progress"], capsys)
    assert code == 0 and '"preset": "demo"' in out
    (config, seed, kw), = calls
    assert config.search.fec is None and config.search.population_size == 40 and seed == 0
    assert kw["checkpoint_every"] == 5 and kw["checkpoint_seconds"] == 60.0
    calls.clear()
    code, _, _ = _main(["run", str(scratch / "ok.json"), "--set", "population_size=10",
                        "--set", "batch_size=5", "--seed", "7"], capsys)
    assert code == 0
    assert [(c.name, c.search.population_size, c.search.batch_size, s) for c, s, _ in calls] \
        == [("linear", 10, 5, 7)]


def test_cli_hurdle_and_island_settings_reach_the_run(capsys, monkeypatch):
    calls = []
    monkeypatch.setattr(cli, "run", lambda c, s, **kw: calls.append(c) or _Result())
    code, _, err = _main(["run", "demo", "--set", "search.hurdle.tasks=3", "--set",
                          "hurdle.percentile=60", "--set", "islands.count=4", "--set",
                          "islands_migration_every=5", "--set", "islands_migrants=2",
                          "--no-progress"], capsys)
    assert code == 0, err
    (c,) = calls
    assert (c.hurdle.num_tasks, c.hurdle.percentile, c.hurdle.threshold) == (3, 60.0, None)
    assert (c.islands.num_islands, c.islands.migrate_every, c.islands.num_migrants) == (4, 5, 2)
    calls.clear()
    _main(["run", "demo", "--set", "hurdle_tasks=1", "--set", "hurdle_kind=threshold",
           "--set", "hurdle_threshold=0.25"], capsys)
    assert (calls[0].hurdle.threshold, calls[0].hurdle.percentile, calls[0].islands) == \
        (0.25, None, None)


def test_value_error_inside_a_run_is_reported_without_traceback(capsys, monkeypatch):
    def bad_run(config, seed, **kw):
        raise ValueError("backend='cuda' is unavailable: no GPU")

    monkeypatch.setattr(cli, "run", bad_run)
    code, _, err = _main(["run", "linear", "--set", "population_size=20"], capsys)
    assert code == 2 and "backend='cuda' is unavailable" in err and "Traceback" not in err
    with pytest.raises(ValueError, match="unavailable"):
        cli.main(["run", "linear", "--set", "population_size=20", "--traceback"])


@pytest.mark.parametrize("argv,words", [
    (["run", "demo", "--set", "fec=maybe"], ["fec", "true or false"]),
    (["run", "demo", "--devices", "8"], ["XLA_FLAGS=--xla_force_host_platform_device"]),
], ids=["set-bool", "devices"])
def test_real_command_line_exits_2_without_traceback(argv, words):
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    env.pop("XLA_FLAGS", None)
    p = subprocess.run([sys.executable, "-m", "evojax_zero", *argv], capture_output=True,
                       text=True, cwd=ROOT, env=env, timeout=120)
    assert p.returncode == 2, p.stderr
    assert "Traceback" not in p.stderr and all(w in p.stderr for w in words), p.stderr
