"""What keeps a weight-sharing step cheap: plain-array state at the jit boundary, and the
per-program CPU compiler options of ``nas.weight_sharing.step_jit``."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from weight_sharing_cells import MLP, Dense, Zero

import nas
from nas import weight_sharing as ws
from nas.weight_sharing import step_jit


def space():
    rngs = nnx.Rngs(0)
    layers = [nas.oneof([nas.deferred(Zero)(), nas.deferred(Dense)(4, rngs=rngs)])
              for _ in range(2)]
    return nas.Space(nas.deferred(MLP)(layers, 4, rngs=rngs))


def batch(seed):
    x = np.random.default_rng(seed).normal(size=(16, 3)).astype(np.float32)
    return jnp.asarray(x), jnp.asarray((x[:, 0] > 0).astype(np.int32))


def _is_variable(x):
    return isinstance(x, nnx.Variable)


@pytest.mark.parametrize("make", [
    lambda sn: ws.Darts(sn, num_steps=3),
    lambda sn: ws.Gdas(sn, num_steps=3),
    lambda sn: ws.Enas(sn, num_steps=3),
    lambda sn: ws.RandomSearchWS(sn, num_steps=3),
], ids=["darts", "gdas", "enas", "rsws"])
def test_state_is_plain_arrays_before_and_after_a_step(make):
    # nnx.Variable leaves are rebuilt in Python at every jitted call (~4 ms per step on the
    # speed benchmark); the state must hold plain arrays only
    algo = make(ws.Supernet(space()))
    state = algo.init()
    for s in (state, algo.step(state, batch(0), batch(1), jax.random.key(0))[0]):
        leaves = jax.tree.leaves(s, is_leaf=_is_variable)
        assert leaves and not any(_is_variable(x) for x in leaves)
        assert all(isinstance(x, jax.Array) for x in leaves)
    # and the supernet is still rebuilt from it with the same weights
    net = algo.supernet(state)
    kernel = net.net.inp.kernel[...]
    assert np.array_equal(np.asarray(kernel), np.asarray(state.params["net"]["inp"]["kernel"]))


def test_cpu_compiler_options_reach_the_step_program(monkeypatch):
    assert jax.default_backend() == "cpu"
    assert step_jit.compiler_options() == {"xla_backend_optimization_level": 1}
    # an option XLA does not know makes the supernet's build and the algorithm's step fail
    # to compile: the options are passed to both programs (read when each is built)
    supernet = ws.Supernet(space())
    monkeypatch.setattr(step_jit, "CPU_COMPILER_OPTIONS", {"xla_no_such_option": 1})
    with pytest.raises(Exception, match="xla_no_such_option"):
        ws.Supernet(space())
    algo = ws.Gdas(supernet, num_steps=3)
    with pytest.raises(Exception, match="xla_no_such_option"):
        algo.step(algo.init(), batch(0), batch(1), jax.random.key(0))
    monkeypatch.setattr(step_jit, "CPU_COMPILER_OPTIONS", {})
    assert step_jit.compiler_options() is None


def test_step_values_do_not_depend_on_the_compiler_options(monkeypatch):
    results = []
    for options in ({"xla_backend_optimization_level": 1}, {}):
        monkeypatch.setattr(step_jit, "CPU_COMPILER_OPTIONS", options)
        algo = ws.Darts(ws.Supernet(space()), num_steps=3)
        state = algo.init()
        for i in range(2):
            state, metrics = algo.step(state, batch(i), batch(10 + i), jax.random.key(i))
        results.append((state, metrics["train_loss"]))
    (s1, l1), (s2, l2) = results
    np.testing.assert_allclose(float(l1), float(l2), rtol=1e-5)
    for a, b in zip(jax.tree.leaves(s1), jax.tree.leaves(s2), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)


_FAULTS = """
import resource, sys
import numpy as np
from nas.weight_sharing import host_memory
if sys.argv[1] == "keep":
    assert host_memory.keep_freed_memory()
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
np.ones(48 << 18, np.float32)  # 48 MiB, once
f0 = faults()
for _ in range(5):
    np.ones(48 << 18, np.float32).sum()
print((faults() - f0) / 5)
"""


def test_keep_freed_memory_stops_page_faults_on_repeated_large_buffers():
    # a 48 MiB buffer is above glibc's mmap threshold: by default each allocation maps
    # fresh pages (12,288 faults of 4 KiB pages); with keep_freed_memory the heap keeps
    # them (0)
    import subprocess  # noqa: PLC0415 - only this test starts processes
    import sys  # noqa: PLC0415

    env = {**os.environ, "NUMPY_MADVISE_HUGEPAGE": "0"}  # 4 KiB pages: a stable count
    per_alloc = {mode: float(subprocess.run(
        [sys.executable, "-c", _FAULTS, mode], capture_output=True, text=True, env=env,
        check=True).stdout.strip()) for mode in ("default", "keep")}
    assert per_alloc["keep"] < 50, per_alloc
    assert per_alloc["default"] > 5000, per_alloc


def test_keep_freed_memory_rejects_a_bad_threshold():
    from nas.weight_sharing import host_memory  # noqa: PLC0415

    with pytest.raises(ValueError, match="trim_threshold"):
        host_memory.keep_freed_memory(0)


@pytest.mark.parametrize("setting, calls", [(None, 1), (True, 1), (False, 0)])
def test_search_loop_keeps_freed_memory_on_the_cpu_unless_told_not_to(monkeypatch, setting,
                                                                      calls):
    from nas.weight_sharing import driver, host_memory  # noqa: PLC0415

    called = []
    monkeypatch.setattr(host_memory, "keep_freed_memory", lambda: called.append(1) or True)
    algo = ws.Darts(ws.Supernet(space()), num_steps=1)
    driver.run(algo, lambda i: (batch(0), batch(1)), 1, key=jax.random.key(0),
               keep_freed_memory=setting)
    assert len(called) == (calls if jax.default_backend() == "cpu" or setting else 0)
    with pytest.raises(ValueError, match="keep_freed_memory"):
        driver.run(algo, lambda i: (batch(0), batch(1)), 1, key=jax.random.key(0),
                   keep_freed_memory="yes")
