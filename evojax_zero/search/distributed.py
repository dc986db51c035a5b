"""Multi-host runs: opt-in ``jax.distributed.initialize`` and process-local sharding helpers.

See docs/multihost.md. Nothing here is needed on one host; every helper is a no-op or a
plain ``np.asarray`` there.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import jax
import numpy as np

COORDINATOR_VARS = ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID")
AUTO_VAR = "EVOJAX_ZERO_DISTRIBUTED"


def maybe_initialize(env: Mapping[str, str] | None = None) -> bool:
    """Call ``jax.distributed.initialize`` only when the environment asks for it.

    * ``JAX_COORDINATOR_ADDRESS`` (``host:port`` of process 0), ``JAX_NUM_PROCESSES`` and
      ``JAX_PROCESS_ID`` set: initialize with exactly these (any cluster, CPU or GPU);
    * ``EVOJAX_ZERO_DISTRIBUTED=1``: initialize with no arguments, letting JAX detect the
      cluster (Cloud TPU pods, SLURM, Open MPI);
    * otherwise (the default, one host): do nothing.

    Must run before any other JAX call. Returns True when it initialized.
    """
    env = os.environ if env is None else env
    if env.get("JAX_COORDINATOR_ADDRESS"):
        missing = [v for v in COORDINATOR_VARS[1:] if not env.get(v)]
        if missing:
            raise ValueError(f"JAX_COORDINATOR_ADDRESS is set but {missing} are not; set all of "
                             f"{list(COORDINATOR_VARS)}")
        jax.distributed.initialize(coordinator_address=env["JAX_COORDINATOR_ADDRESS"],
                                   num_processes=int(env["JAX_NUM_PROCESSES"]),
                                   process_id=int(env["JAX_PROCESS_ID"]))
        return True
    if env.get(AUTO_VAR, "").lower() in ("1", "true", "yes", "auto"):
        jax.distributed.initialize()
        return True
    return False


def population_mesh(num_devices: int | None = None):
    """A 1-D mesh (axis ``"pop"``, Auto axis type) over the first ``num_devices`` of
    ``jax.devices()`` -- all processes' devices after ``maybe_initialize``. None when
    ``num_devices`` is None or 1 (no sharding)."""
    if not num_devices or num_devices <= 1:
        return None
    from jax.sharding import AxisType, Mesh

    devs = jax.devices()[:num_devices]
    if len(devs) < num_devices:
        raise ValueError(f"asked for {num_devices} devices, have {len(jax.devices())}")
    return Mesh(np.array(devs), ("pop",), axis_types=(AxisType.Auto,))


def put(tree, sharding):
    """``jax.device_put(tree, sharding)`` that also works when ``sharding`` spans other
    processes' devices (multi-host): every process holds the same full value and contributes
    the shards its own devices hold. Typed PRNG keys are placed through their key data."""
    if getattr(sharding, "is_fully_addressable", True):
        return jax.device_put(tree, sharding)

    def one(x):
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            data = one(jax.random.key_data(x))
            return jax.random.wrap_key_data(data, impl=jax.random.key_impl(x))
        full = np.asarray(x)
        return jax.make_array_from_callback(full.shape, sharding, lambda index: full[index])

    return jax.tree.map(one, tree)


def to_host(x) -> np.ndarray:
    """The full value of a (possibly multi-process) array on every process."""
    if getattr(x, "is_fully_addressable", True) or getattr(x, "is_fully_replicated", False):
        return np.asarray(x)
    from jax.experimental import multihost_utils

    return np.asarray(multihost_utils.process_allgather(x, tiled=True))


def local_rows(x) -> list[tuple[int, int]]:
    """The ``[start, stop)`` ranges of the leading (population) axis that this process
    holds, merged and sorted (replicated copies counted once)."""
    n = x.shape[0]
    ranges = sorted({(s.index[0].start or 0, n if s.index[0].stop is None else s.index[0].stop)
                     for s in x.addressable_shards})
    merged: list[list[int]] = []
    for a, b in ranges:
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    return [(a, b) for a, b in merged]


def is_main_process() -> bool:
    """True on the process that writes logs and output files (process 0)."""
    return jax.process_index() == 0
