"""Multi-host for real: two processes on localhost (``jax.distributed.initialize`` with CPU
collectives over gloo), two CPU devices each, run a small search on a 4-device mesh whose
population is split across the processes; the result must equal one process's.

Each process evaluates only its own rows (the native kernel's sharding rule), and the
search's gathers go through the collectives, so this fails if either the partitioning or the
cross-process paths are wrong.
"""

import json
import os
import socket
import subprocess
import sys

import pytest

from evojax_zero import native

pytestmark = pytest.mark.skipif(not native.available(),
                                reason=f"native backend unavailable: {native.why_unavailable()}")

SCRIPT = r"""
import json, os, sys
import jax
jax.config.update("jax_cpu_collectives_implementation", "gloo")
from evojax_zero.search import distributed
assert distributed.maybe_initialize() == (os.environ.get("JAX_COORDINATOR_ADDRESS") is not None)
import numpy as np
from evojax_zero import experiment
from evojax_zero.search.loop import Search
cfg = experiment.preset("linear", population_size=16, batch_size=8, fec=False).search
tasks = experiment.TaskSpec("linear", 2, 20, 10).build(None)
mesh = distributed.population_mesh(4)
s = Search(cfg, tasks, mesh)
st = s.init(jax.random.key(0))
for _ in range(3):
    st = s.generation(st)
fit = st.evolution.fitness
print("RESULT", json.dumps({
    "process": jax.process_index(), "processes": jax.process_count(),
    "devices": len(jax.devices()), "local_devices": len(jax.local_devices()),
    "local_rows": distributed.local_rows(fit),
    "fitness": distributed.to_host(fit).tolist()}), flush=True)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _result(stdout: str) -> dict:
    return json.loads([x for x in stdout.splitlines() if x.startswith("RESULT ")][-1][7:])


@pytest.mark.slow
def test_two_processes_give_the_result_of_one():
    base = dict(os.environ, JAX_PLATFORMS="cpu", OPENBLAS_NUM_THREADS="1",
                EVOJAX_ZERO_NUM_THREADS="1")
    base.pop("JAX_COORDINATOR_ADDRESS", None)
    # One process with four devices: the reference.
    one = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                         timeout=600, env=dict(base, XLA_FLAGS="--xla_force_host_platform_"
                                                              "device_count=4"))
    assert one.returncode == 0, one.stderr[-3000:]
    ref = _result(one.stdout)
    assert ref["processes"] == 1 and ref["local_rows"] == [[0, 16]]
    # Two processes with two devices each.
    port = _free_port()
    procs = [subprocess.Popen(
        [sys.executable, "-c", SCRIPT], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env=dict(base, XLA_FLAGS="--xla_force_host_platform_device_count=2",
                            JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}", JAX_NUM_PROCESSES="2",
                            JAX_PROCESS_ID=str(i)))
        for i in range(2)]
    outs = []
    for p in procs:
        try:
            out, err = p.communicate(timeout=600)
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise
        assert p.returncode == 0, err[-3000:]
        outs.append(_result(out))
    for i, r in enumerate(outs):
        assert r["process"] == i and r["processes"] == 2
        assert r["devices"] == 4 and r["local_devices"] == 2
        assert r["local_rows"] == [[8 * i, 8 * i + 8]]  # each process holds half the population
        assert r["fitness"] == ref["fitness"]


SHARDED = r"""
import json, jax, jax.numpy as jnp, numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from evojax_zero import native
from evojax_zero import program as P
from evojax_zero.program import tasks as T
spec = P.ProgramSpec(num_scalars=4, num_vectors=3, num_matrices=1, feature_size=4,
                     setup_ops=[56], predict_ops=[27], learn_ops=[2, 3, 18, 23],
                     max_setup_size=2, max_predict_size=1, max_learn_size=4)
prog = P.from_lists(spec, setup=[[56, 0, 0, 2, 0.1]], predict=[[27, 1, 0, 1]],
                    learn=[[2, 0, 1, 3], [3, 3, 2, 3], [18, 3, 0, 2], [23, 1, 2, 1]])
progs = P.stack([prog] * 16)
tasks = T.linear_regression(3, 4, 20, 10)
keys = jax.random.split(jax.random.key(0), 16)
mesh = Mesh(np.array(jax.devices()), ("pop",))
rows = NamedSharding(mesh, PartitionSpec("pop"))
fn = jax.jit(lambda p, t, k: native.evaluate(spec, None, p, t, k))
sharded = (jax.device_put(progs, rows), tasks, jax.device_put(keys, rows))
hlo = fn.lower(*sharded).compile().as_text()
calls = [ln for ln in hlo.splitlines() if 'custom_call_target="evojax_zero_fitness"' in ln]
out = fn(*sharded)
print("RESULT", json.dumps({"calls": [c.split("=")[1].split("custom-call")[0].strip()
                                      for c in calls],
                            "out_rows": out.sharding.spec == PartitionSpec("pop"),
                            "same": bool(np.array_equal(np.asarray(out),
                                                        np.asarray(fn(progs, tasks, keys))))}))
"""


def test_each_device_evaluates_only_its_rows():
    """The kernel's sharding rule: on 8 devices, the compiled custom call takes 16 / 8 = 2
    programs (not the gathered 16), the output stays sharded, and fitness is unchanged."""
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8",
               JAX_PLATFORMS="cpu", OPENBLAS_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", SHARDED], env=env, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    r = _result(out.stdout)
    assert r["calls"] and all(c.startswith("f32[2,3,") for c in r["calls"]), r
    assert r["out_rows"] and r["same"], r
