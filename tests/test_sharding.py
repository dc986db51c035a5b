"""The population sharded over 8 (fake CPU) devices: really sharded, and bit-identical to 1.

Each check runs in a subprocess started with 8 host devices (XLA_FLAGS must be set before JAX
starts). The search-level check looks at where the population lives (one eighth of the rows on
each of 8 devices, after ``init`` and after a generation); the experiment-level check runs the
protocol with ``num_devices`` 1 and 8 and compares results.
"""

import json
import os
import subprocess
import sys

import pytest

SEARCH_SCRIPT = r"""
import json, sys
import jax, numpy as np
from evojax_zero import experiment
from evojax_zero.program import tasks
from evojax_zero.search.distributed import population_mesh
from evojax_zero.search.loop import Search

assert len(jax.devices()) == 8
P = 16
cfg = experiment.preset("linear", population_size=P, batch_size=8,
                        fec=sys.argv[1] == "fec").search
t = tasks.linear_regression(2, 4, 20, 10)


def layout(x):
    # (number of devices holding x, sorted [start, stop) row ranges of its shards)
    rows = sorted({(s.index[0].start or 0, P if s.index[0].stop is None else s.index[0].stop)
                   for s in x.addressable_shards})
    return len(x.sharding.device_set), rows


def run(mesh):
    s = Search(cfg, t, mesh)
    st = s.init(jax.random.key(3))
    layouts = [layout(st.evolution.fitness)]
    st = s.generation(st)
    st = s.generation(st)
    layouts += [layout(st.evolution.fitness)]
    layouts += [layout(x) for x in jax.tree.leaves(st.evolution.population)]
    pop = [np.asarray(x).tolist() for x in jax.tree.leaves(st.evolution.population)]
    return {"fit": np.asarray(st.evolution.fitness).tolist(), "pop": pop, "layouts": layouts,
            "individuals": s.counters.individuals}


print("RESULT", json.dumps({"one": run(None), "eight": run(population_mesh(8))}))
"""

RUN_SCRIPT = r"""
import json, sys, jax
from evojax_zero import experiment
cfg = experiment.preset("linear", population_size=16, batch_size=8, max_train_steps=20000,
                        select_num_tasks=2, final_num_tasks=2, fec=sys.argv[2] == "fec")
out = {"n": len(jax.devices())}
try:
    experiment.run(cfg, seed=1, num_devices=16, progress=False, log=lambda s: None)
except ValueError as e:
    out["too_many"] = str(e)
res = experiment.run(cfg, seed=1, num_devices=int(sys.argv[1]), progress=False,
                     log=lambda s: None)
out.update(fit=res.final_population_fitness, best=res.best_text, indiv=res.individuals)
print("RESULT", json.dumps(out))
"""


def _subprocess(script, *args, cwd):
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8",
               OPENBLAS_NUM_THREADS="1", JAX_PLATFORMS="cpu")
    out = subprocess.run([sys.executable, "-c", script, *args], env=env, capture_output=True,
                         text=True, timeout=900, cwd=cwd)
    assert out.returncode == 0, out.stderr[-3000:]
    line = [x for x in out.stdout.splitlines() if x.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])


@pytest.mark.slow
@pytest.mark.parametrize("fec", ["nofec", "fec"])  # with FEC: the fused native cache
def test_search_population_is_sharded_over_eight_devices_and_matches_one(fec, repo_root):
    r = _subprocess(SEARCH_SCRIPT, fec, cwd=repo_root)
    one, eight = r["one"], r["eight"]
    # without a mesh everything lives on one device, whole
    assert all(lay == [1, [[0, 16]]] for lay in one["layouts"])
    # with the 8-device mesh: after init, after two generations, and every population leaf,
    # each of 8 devices holds its own 2 of the 16 rows
    eighths = [[2 * i, 2 * i + 2] for i in range(8)]
    assert all(lay == [8, eighths] for lay in eight["layouts"]), eight["layouts"]
    # and the search is bit-identical to the single-device one
    assert one["fit"] == eight["fit"] and one["pop"] == eight["pop"]
    assert one["individuals"] == eight["individuals"] == 48


@pytest.mark.slow
@pytest.mark.parametrize("fec", ["nofec", "fec"])
def test_experiment_on_eight_devices_matches_one(fec, repo_root):
    one = _subprocess(RUN_SCRIPT, "1", fec, cwd=repo_root)
    eight = _subprocess(RUN_SCRIPT, "8", fec, cwd=repo_root)
    assert eight["n"] == 8
    # num_devices is honoured: asking for more devices than exist is refused
    assert "16" in eight["too_many"] and "device" in eight["too_many"]
    assert one["fit"] == eight["fit"] and one["best"] == eight["best"]
    assert one["indiv"] == eight["indiv"] > 0
