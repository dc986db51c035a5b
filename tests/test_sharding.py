"""The population sharded over 8 (fake CPU) devices gives the same result as 1 device."""

import os
import subprocess
import sys

import pytest

SCRIPT = r"""
import json, sys, jax
from evojax_zero import experiment
cfg = experiment.preset("linear", population_size=16, batch_size=8, max_train_steps=60000,
                        select_num_tasks=2, final_num_tasks=2,
                        fec=sys.argv[2] == "fec")
res = experiment.run(cfg, seed=1, num_devices=int(sys.argv[1]), progress=False,
                     log=lambda s: None)
print("RESULT", json.dumps({"fit": res.final_population_fitness, "best": res.best_text,
                            "n": len(jax.devices())}))
"""


def _run(n, fec):
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8",
               OPENBLAS_NUM_THREADS="1", JAX_PLATFORMS="cpu")
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(n), fec], env=env, capture_output=True,
                         text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    import json

    line = [x for x in out.stdout.splitlines() if x.startswith("RESULT ")][-1]
    return json.loads(line[7:])


@pytest.mark.slow
@pytest.mark.parametrize("fec", ["nofec", "fec"])  # with FEC: the fused device cache
def test_eight_devices_match_one(fec):
    one, eight = _run(1, fec), _run(8, fec)
    assert eight["n"] == 8
    assert one["fit"] == eight["fit"] and one["best"] == eight["best"]
