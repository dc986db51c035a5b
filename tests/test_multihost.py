"""Multi-host code paths that one machine can exercise (docs/multihost.md)."""

import json
import os
import subprocess
import sys

import pytest

from evojax_zero.experiment import cli
from evojax_zero.search import distributed


def test_initialize_only_when_the_environment_asks(monkeypatch):
    calls = []
    monkeypatch.setattr(distributed.jax.distributed, "initialize",
                        lambda *a, **k: calls.append((a, k)))
    assert distributed.maybe_initialize({}) is False
    assert distributed.maybe_initialize({"EVOJAX_ZERO_DISTRIBUTED": "0"}) is False
    assert calls == []
    assert distributed.maybe_initialize({"JAX_COORDINATOR_ADDRESS": "10.0.0.1:1234",
                                         "JAX_NUM_PROCESSES": "4", "JAX_PROCESS_ID": "2"})
    assert calls[-1] == ((), {"coordinator_address": "10.0.0.1:1234", "num_processes": 4,
                              "process_id": 2})
    assert distributed.maybe_initialize({"EVOJAX_ZERO_DISTRIBUTED": "1"})
    assert calls[-1] == ((), {})
    with pytest.raises(ValueError, match="JAX_PROCESS_ID"):
        distributed.maybe_initialize({"JAX_COORDINATOR_ADDRESS": "h:1",
                                      "JAX_NUM_PROCESSES": "2"})
    assert len(calls) == 2


def test_cli_calls_maybe_initialize(monkeypatch):
    seen = []
    monkeypatch.setattr(distributed, "maybe_initialize", lambda: seen.append(1) or False)
    monkeypatch.setattr(cli, "run", lambda *a, **k: (_ for _ in ()).throw(
        KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        cli.main(["run", "linear", "--no-progress"])
    assert seen == [1]


SCRIPT = r"""
import json, jax, numpy as np
from evojax_zero.search import distributed
from evojax_zero import experiment
from evojax_zero.search.loop import Search
mesh = distributed.population_mesh(8)
cfg = experiment.preset("linear", population_size=16, batch_size=8, fec=False).search
t = experiment.TaskSpec("linear", 2, 20, 10).build(None)
one = Search(cfg, t).init(jax.random.key(0))
s = Search(cfg, t, mesh)
st = s.place(one)
fit = st.evolution.fitness
print("RESULT", json.dumps({
    "devices": len(jax.devices()), "processes": jax.process_count(),
    "shards": sorted([sh.index[0].start, sh.index[0].stop] for sh in fit.addressable_shards),
    "local_rows": distributed.local_rows(fit),
    "same": bool((distributed.to_host(fit) == np.asarray(one.evolution.fitness)).all()),
    "main": distributed.is_main_process(), "axis_types": str(mesh.axis_types)}))
"""


def test_process_local_sharding_on_eight_fake_devices():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8",
               JAX_PLATFORMS="cpu", OPENBLAS_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    r = json.loads([x for x in out.stdout.splitlines() if x.startswith("RESULT ")][-1][7:])
    assert r["devices"] == 8 and r["processes"] == 1 and r["main"]
    assert r["shards"] == [[2 * i, 2 * i + 2] for i in range(8)]  # 16 members / 8 devices
    assert r["local_rows"] == [[0, 16]] and r["same"]
    assert "Auto" in r["axis_types"]


HOST_FEC = r"""
import json, sys, jax, numpy as np
from evojax_zero.search import distributed
from evojax_zero import experiment
from evojax_zero.search.loop import Search
import dataclasses
cfg = experiment.preset("linear", population_size=16, batch_size=8).search
cfg = dataclasses.replace(cfg, fec="host")
t = experiment.TaskSpec("linear", 2, 20, 10).build(None)
out = []
for mesh in (None, distributed.population_mesh(8)):
    s = Search(cfg, t, mesh)
    st = s.generation(s.generation(s.init(jax.random.key(0))))
    out.append((distributed.to_host(st.evolution.fitness).tolist(), s.counters.fec_hits,
                s.counters.fec_lookups, int(s.cache_arrays()["size"])))
print("RESULT", json.dumps({"same": out[0] == out[1], "hits": out[0][1], "one": out[0]}))
"""


@pytest.mark.slow
def test_host_fec_under_an_eight_device_mesh_matches_one_device():
    """The host FEC cache (callbacks from the jitted generation) under a sharded population."""
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8",
               JAX_PLATFORMS="cpu", OPENBLAS_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", HOST_FEC], env=env, capture_output=True,
                         text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    r = json.loads([x for x in out.stdout.splitlines() if x.startswith("RESULT ")][-1][7:])
    assert r["same"] and r["hits"] > 0, r
