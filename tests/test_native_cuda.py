"""The CUDA backend (evojax_zero.native.cuda, native/interpreter_cuda.cu), in three levels,
because most machines that run this suite have no GPU:

1. compile: nvcc builds the .cu with the loader's flags and architectures (skipped without
   nvcc; slow: minutes on a small CPU);
2. host emulation: the same .cu compiled as C++ (-DEVOJAX_ZERO_CUDA_EMULATE) runs the kernels'
   thread bodies with the kernel's scratch layout, interleaved memory and thread cap on the
   CPU; its results must equal the CPU backend's byte for byte (needs a C++ compiler and the
   CPU backend);
3. GPU: the real kernel against the CPU backend and the NumPy reference interpreter (skipped
   without a JAX CUDA backend).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import subprocess
import sys
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_conformance import differences, make_task, to_tasks, x64
from test_conformance_properties import ALL_SPEC, TOLERANCES, random_program, random_task, robust

from evojax_zero import native
from evojax_zero import program as P
from evojax_zero.evaluate.evaluator import EvalConfig
from evojax_zero.native import build, cuda
from evojax_zero.program.ops import NUM_OPS

EMU_FITNESS = "evojax_zero_cuda_emu_fitness"
EMU_TRACE = "evojax_zero_cuda_emu_trace"
FLOAT_FIELDS = ("fitness", "epoch_fitness", "train_error", "train_prediction", "valid_error",
                "valid_prediction")

UNIFORM_OPS = (59, 60, 61)
GAUSSIAN_OPS = (62, 63, 64)
# Ops whose results CUDA and glibc may round differently (sin ... log), and the gaussian ops
# (their ziggurat calls exp/log on rare paths).
TRANSCENDENTAL_OPS = (7, 8, 9, 10, 11, 12, 13, 14, *GAUSSIAN_OPS)


class Traced:
    """A trace dict with attribute access (the shape the conformance helpers use)."""

    def __init__(self, d):
        for k, v in d.items():
            setattr(self, k, np.asarray(v))


@contextlib.contextmanager
def env(**values):
    old = {k: os.environ.get(k) for k in values}
    os.environ.update({k: str(v) for k, v in values.items()})
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def spec_for(F, ops=tuple(range(NUM_OPS)), size=8):
    ops = list(ops)
    return P.ProgramSpec(num_scalars=5, num_vectors=4, num_matrices=3, feature_size=F,
                         setup_ops=ops, predict_ops=ops, learn_ops=ops, max_setup_size=size,
                         max_predict_size=size, max_learn_size=size)


def population(spec, precision, eval_type, seed, n=40, ops=None):
    """Random programs over the spec's ops (half of them with truly random uniform/gaussian
    draws) and 3 tasks of 5 train / 4 valid examples and 3 epochs; as (programs, tasks)."""
    rng = np.random.default_rng(seed)
    F = spec.feature_size
    progs = []
    for _ in range(n):
        prog = random_program(rng, spec)
        if ops is not None:  # keep only the allowed ops
            prog = {fn: [ins for ins in rows if ins[0] in ops] for fn, rows in prog.items()}
        progs.append(prog)
    for prog in progs[::2]:
        for rows in prog.values():
            for ins in rows:
                if ins[0] in UNIFORM_OPS:
                    ins[5], ins[6] = -1.0, 2.0
                elif ins[0] in GAUSSIAN_OPS:
                    ins[5], ins[6] = 0.1, 1.5
    tasks = []
    for _ in range(3):
        x = rng.standard_normal((9, F))
        if eval_type == "accuracy":
            y = (rng.random(9) < 0.5).astype(float)
        else:
            y = rng.standard_normal(9)
        order = [list(range(5)), list(rng.permutation(5)), list(rng.permutation(5))]
        tasks.append(make_task(y[:5], y[5:], x[:5], x[5:], F=F, epoch_order=order,
                               eval_type=eval_type))
    with x64(precision):
        dtype = jnp.float64 if precision == "float64" else jnp.float32
        stacked = P.stack([P.from_lists(spec, **p) for p in progs])
        stacked = jax.tree.map(lambda a: a.astype(dtype) if a.dtype == jnp.float64 else a,
                               stacked)
        return stacked, to_tasks(tasks, precision)


def as_numpy(tree):
    return jax.tree.map(np.asarray, jax.device_get(tree))


def assert_identical(a: dict, b: dict, what: str):
    assert set(a) == set(b)
    for k in a:
        x, y = np.asarray(a[k]), np.asarray(b[k])
        assert x.dtype == y.dtype and x.shape == y.shape, f"{what} {k}: {x.dtype}{x.shape} vs " \
                                                          f"{y.dtype}{y.shape}"
        assert x.tobytes() == y.tobytes(), f"{what} {k}: not byte-identical"


CONFIGS = {"default": None,
           "partial": EvalConfig(num_train_examples=7, num_valid_examples=3, max_abs_error=5.0)}


# ---------------------------------------------------------------------------------------------
# 1. nvcc compile
# ---------------------------------------------------------------------------------------------


def test_nvcc_discovery_and_build_id_are_stable():
    nvcc = build.find_nvcc()
    if nvcc is None:
        pytest.skip("no nvcc")
    ver = build.nvcc_version(nvcc)
    assert ver and ver != "unknown"
    bid = build.build_id("x", target="cuda", compiler=nvcc)
    assert bid == build.build_id("x", target="cuda", compiler=nvcc)
    assert bid != build.build_id("y", target="cuda", compiler=nvcc)
    # One builder, three targets: the CUDA stamp differs from the CPU one for the same jaxlib.
    assert bid != build.build_id("x", target="cpu")


def test_no_cuda_backend_means_unavailable_without_compiling(tmp_path):
    if not cuda.backend_problem() == "":
        # No GPU: unavailable with the reason, and nothing was compiled into the cache.
        code = ("from evojax_zero.native import cuda\n"
                "assert not cuda.available()\n"
                "print('WHY', cuda.why_unavailable())\n")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             env=dict(os.environ, EVOJAX_ZERO_CACHE_DIR=str(tmp_path),
                                      JAX_PLATFORMS="cpu"), timeout=300)
        assert out.returncode == 0, out.stderr
        assert "WHY" in out.stdout and "CUDA" in out.stdout
        assert not list(tmp_path.iterdir())
        with pytest.raises(RuntimeError, match="CUDA backend unavailable"):
            cuda.evaluate(None, None, None, None, None)
    else:
        assert cuda.available(), cuda.why_unavailable()


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("EVOJAX_ZERO_TEST_NVCC"),
                    reason="the nvcc build takes ~8 min on 2 cores; EVOJAX_ZERO_TEST_NVCC=1")
def test_cuda_source_compiles_with_nvcc(tmp_path):
    """What the loader builds on a GPU machine (sm_80, sm_90 and compute_90 PTX), built here."""
    nvcc = build.find_nvcc()
    if nvcc is None:
        pytest.skip("no nvcc")
    inc, jaxlib_version = build.jax_include_dir()
    out = str(tmp_path / "_evojax_zero_cuda.so")
    build.compile_library(out, inc, jaxlib_version, compiler=nvcc, target="cuda")
    lib = ctypes.CDLL(out)  # loads without a GPU or driver (the CUDA runtime is linked in)
    assert cuda.text(lib, "evojax_zero_build_id") == build.build_id(
        jaxlib_version, target="cuda", compiler=nvcc)
    lib.EvojaxZeroFitness  # noqa: B018
    lib.EvojaxZeroTrace  # noqa: B018
    probe = cuda.text(lib, "evojax_zero_probe")
    if cuda.backend_problem():
        assert probe, "the probe should report that no GPU can run the kernels"
    else:
        assert probe == ""
    cuobjdump = shutil.which("cuobjdump", path=os.path.dirname(os.path.realpath(nvcc)))
    cuobjdump = cuobjdump or shutil.which("cuobjdump")
    if cuobjdump:
        elf = subprocess.run([cuobjdump, "--list-elf", out], capture_output=True, text=True)
        ptx = subprocess.run([cuobjdump, "--list-ptx", out], capture_output=True, text=True)
        assert "sm_90" in elf.stdout and "sm_80" in elf.stdout, elf.stdout + elf.stderr
        assert "sm_90" in ptx.stdout or "compute_90" in ptx.stdout, ptx.stdout + ptx.stderr


# ---------------------------------------------------------------------------------------------
# 2. Host emulation of the kernel vs the CPU backend
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def emulation(tmp_path_factory):
    if not native.available():
        pytest.skip(f"CPU native backend unavailable: {native.why_unavailable()}")
    if not build.find_compiler():
        pytest.skip("no C++ compiler")
    inc, jaxlib_version = build.jax_include_dir()
    path = str(tmp_path_factory.mktemp("cuda_emulation") / "_evojax_zero_cuda_emulation.so")
    build.compile_library(path, inc, jaxlib_version, target="emulation")
    lib = ctypes.CDLL(path)
    assert cuda.text(lib, "evojax_zero_probe") == ""
    jax.ffi.register_ffi_target(EMU_FITNESS, jax.ffi.pycapsule(lib.EvojaxZeroFitness),
                                platform="cpu")
    jax.ffi.register_ffi_target(EMU_TRACE, jax.ffi.pycapsule(lib.EvojaxZeroTrace),
                                platform="cpu")
    return lib


@pytest.mark.parametrize("F", [2, 4, 8, 16, 32])
@pytest.mark.parametrize("precision", ["float64", "float32"])
def test_emulated_kernel_equals_cpu_backend_bytewise(emulation, F, precision):
    # All 65 ops, random draws included, both eval types, two configs, three thread caps
    # (one thread running every pair, 7 threads striding, the default one pair per thread).
    spec = spec_for(F)
    for eval_type in ("rms_error", "accuracy"):
        progs, tasks = population(spec, precision, eval_type, seed=F + len(precision))
        with x64(precision):
            key = jax.random.key(F)
            for name, config in CONFIGS.items():
                want = as_numpy(native.trace(spec, config, progs, tasks, key))
                assert np.mean(want["fitness"] > 0) > 0.5
                for cap in (1, 7, 10**6):
                    with env(EVOJAX_ZERO_CUDA_MAX_THREADS=cap):
                        got = as_numpy(
                            cuda.trace_target(EMU_TRACE, spec, config, progs, tasks, key))
                    assert_identical(want, got, f"F={F} {precision} {eval_type} {name} "
                                                f"cap={cap}")


def test_emulated_memory_budget_caps_threads(emulation):
    # A budget of two memory blocks: 2 threads run all 120 pairs.
    spec = spec_for(8)
    progs, tasks = population(spec, "float64", "rms_error", seed=5)
    block = (spec.num_scalars + spec.num_vectors * 8 + spec.num_matrices * 64 + 8) * 8
    with x64("float64"):
        key = jax.random.key(1)
        want = as_numpy(native.trace(spec, None, progs, tasks, key))
        with env(EVOJAX_ZERO_CUDA_MEMORY_BYTES=2 * block + 1):
            got = as_numpy(cuda.trace_target(EMU_TRACE, spec, None, progs, tasks, key))
    assert_identical(want, got, "budget")


def test_emulated_fitness_target_jit_and_vmap(emulation):
    spec = spec_for(4)
    progs, tasks = population(spec, "float64", "rms_error", seed=9)
    with x64("float64"):
        keys = jax.random.split(jax.random.key(3), progs.batch_shape[0])
        want = np.asarray(native.evaluate(spec, None, progs, tasks, keys))
        direct = cuda.evaluate_target(EMU_FITNESS, spec, None, progs, tasks, keys)
        jitted = jax.jit(lambda p, t, k: cuda.evaluate_target(EMU_FITNESS, spec, None, p, t, k))(
            progs, tasks, keys)
        halves = jax.tree.map(lambda x: x.reshape(2, -1, *x.shape[1:]), progs)
        vmapped = jax.vmap(lambda p, k: cuda.evaluate_target(EMU_FITNESS, spec, None, p, tasks, k))(
            halves, keys.reshape(2, -1))
        one = cuda.evaluate_target(EMU_FITNESS, spec, None, jax.tree.map(lambda x: x[0], progs),
                             tasks, keys[0])
    assert np.array_equal(want, direct)
    assert np.array_equal(want, jitted)
    assert np.array_equal(want, np.asarray(vmapped).reshape(want.shape))
    assert np.array_equal(want[0], one)


def test_emulated_kernel_rejects_bad_operands(emulation):
    spec = spec_for(4)
    progs, tasks = population(spec, "float64", "rms_error", seed=1, n=2)
    with x64("float64"):
        with pytest.raises(ValueError, match="features"):
            cuda.evaluate_target(EMU_FITNESS, spec_for(8), None, progs, tasks, jax.random.key(0))
        # The handler's own checks (as the CPU handler's): a memory layout without s0/s1.
        small = SimpleNamespace(num_scalars=1, num_vectors=4, num_matrices=3, feature_size=4)
        with pytest.raises(Exception, match="S >= 2"):
            jax.block_until_ready(
                cuda.evaluate_target(EMU_FITNESS, small, None, progs, tasks, jax.random.key(0)))


# ---------------------------------------------------------------------------------------------
# 3. On a GPU: the real kernel
# ---------------------------------------------------------------------------------------------

@pytest.fixture
def gpu():
    """Skips unless the CUDA backend runs here (first use compiles it: minutes, once)."""
    if not cuda.available():
        pytest.skip(f"CUDA backend unavailable: {cuda.why_unavailable()}")


def cpu_device():
    return jax.default_device(jax.devices("cpu")[0])


def on_cpu(tree):
    return jax.device_put(tree, jax.devices("cpu")[0])


def test_gpu_available_and_reason(gpu):
    assert cuda.why_unavailable() == ""
    assert cuda.library_path() and os.path.exists(cuda.library_path())


@pytest.mark.parametrize("F", [2, 4, 8, 16, 32])
@pytest.mark.parametrize("precision", ["float64", "float32"])
def test_gpu_equals_cpu_backend_without_transcendental_ops(gpu, F, precision):
    # + - * / sqrt, min/max, uniform draws: the same bits as the CPU backend (rms tasks; the
    # fitness formula runs in XLA on each device, so it may differ in the last bits).
    ops = tuple(o for o in range(NUM_OPS) if o not in TRANSCENDENTAL_OPS)
    spec = spec_for(F, ops)
    progs, tasks = population(spec, precision, "rms_error", seed=F, ops=ops)
    with x64(precision):
        key = jax.random.key(F)
        for name, config in CONFIGS.items():
            with cpu_device():
                want = as_numpy(native.trace(spec, config, on_cpu(progs), on_cpu(tasks),
                                             on_cpu(key)))
            got = as_numpy(cuda.trace(spec, config, progs, tasks, key))
            for k in want:
                if k in ("fitness", "epoch_fitness"):
                    assert np.allclose(want[k], got[k], rtol=1e-14 if precision == "float64"
                                       else 1e-6, atol=0), f"{name} {k}"
                else:
                    assert np.array_equal(want[k], got[k], equal_nan=True), f"{name} {k}"


@pytest.mark.parametrize("precision", ["float64", "float32"])
@pytest.mark.parametrize("eval_type", ["rms_error", "accuracy"])
def test_gpu_close_to_cpu_backend_all_ops(gpu, precision, eval_type):
    # All ops: transcendental functions may differ by an ulp or two, which a few chaotic
    # programs amplify; nearly all pairs must agree to a tight tolerance.
    rtol = 1e-9 if precision == "float64" else 1e-4
    for F in (4, 16):
        spec = spec_for(F)
        progs, tasks = population(spec, precision, eval_type, seed=3 * F)
        with x64(precision):
            key = jax.random.key(F)
            with cpu_device():
                want = as_numpy(native.trace(spec, None, on_cpu(progs), on_cpu(tasks),
                                             on_cpu(key)))
            got = as_numpy(cuda.trace(spec, None, progs, tasks, key))
        agree = np.ones(want["fitness"].shape, bool)
        for k in want:
            a, b = want[k], got[k]
            if k in FLOAT_FIELDS:
                same = np.isclose(a, b, rtol=rtol, atol=rtol, equal_nan=True)
            else:
                same = a == b
            agree &= same.reshape(*same.shape[:2], -1).all(-1)
        assert agree.mean() >= 0.95, f"F={F}: {agree.mean():.3f} of pairs agree"


@pytest.mark.parametrize("precision", ["float64", "float32"])
@pytest.mark.parametrize("eval_type", ["rms_error", "accuracy"])
def test_gpu_matches_reference_interpreter(gpu, precision, eval_type):
    # test_conformance_properties.check_batch with the GPU kernel: 48 random programs over all
    # ops (random ops in their deterministic cases), 2 tasks, compared where the reference is
    # robust to rounding.
    from test_conformance_properties import N_TASKS, NUM_PROGRAMS

    rng = np.random.default_rng(11)
    progs = [random_program(rng, ALL_SPEC) for _ in range(NUM_PROGRAMS)]
    task_list = [random_task(rng, eval_type) for _ in range(N_TASKS)]
    with x64(precision):
        stacked = P.stack([P.from_lists(ALL_SPEC, **p) for p in progs])
        tr = Traced(as_numpy(cuda.trace(ALL_SPEC, None, stacked, to_tasks(task_list, precision),
                                        jax.random.key(0))))
    rtol, atol, fatol = TOLERANCES[precision]
    filt = {"float64": (1e-12, 1e-14, 1e-14), "float32": (1e-5, 1e-6, 1e-6)}[precision]
    problems, compared = [], 0
    for p, prog in enumerate(progs):
        for t, task in enumerate(task_list):
            ref = robust(ALL_SPEC, prog, task, precision, *filt)
            if ref is None:
                continue
            compared += 1
            d = differences(ref, tr, p, t, rtol, atol, fatol)
            if d:
                problems.append(f"program {p} task {t}: " + "; ".join(d))
    assert compared >= 0.6 * NUM_PROGRAMS * N_TASKS
    assert not problems, "\n".join(problems[:5])


def test_gpu_results_independent_of_thread_cap(gpu):
    spec = spec_for(8)
    progs, tasks = population(spec, "float64", "rms_error", seed=2)
    with x64("float64"):
        key = jax.random.key(4)
        runs = []
        for cap in (1, 33, 10**6):
            with env(EVOJAX_ZERO_CUDA_MAX_THREADS=cap):
                runs.append(as_numpy(cuda.trace(spec, None, progs, tasks, key)))
    for other in runs[1:]:
        assert_identical(runs[0], other, "thread cap")


def test_gpu_jit_and_vmap(gpu):
    spec = spec_for(4)
    progs, tasks = population(spec, "float64", "rms_error", seed=6)
    with x64("float64"):
        keys = jax.random.split(jax.random.key(3), progs.batch_shape[0])
        direct = np.asarray(cuda.evaluate(spec, None, progs, tasks, keys))
        jitted = jax.jit(lambda p, t, k: cuda.evaluate(spec, None, p, t, k))(progs, tasks, keys)
        halves = jax.tree.map(lambda x: x.reshape(2, -1, *x.shape[1:]), progs)
        vmapped = jax.vmap(lambda p, k: cuda.evaluate(spec, None, p, tasks, k))(
            halves, keys.reshape(2, -1))
    assert np.array_equal(direct, jitted)
    assert np.array_equal(direct, np.asarray(vmapped).reshape(direct.shape))
