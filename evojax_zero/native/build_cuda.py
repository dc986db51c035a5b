"""Compile the CUDA backend with nvcc (standard library only; jax only for its FFI headers).

The library is one shared object built from ``interpreter_cuda.cu`` + ``interpreter.h`` with
the XLA FFI headers that ship with jaxlib. It is never built at install time: ``cuda.py``
compiles it at first use, and only when JAX has a CUDA backend, into the same user cache as
the CPU library. Its build id hashes the sources, the flags and ``nvcc --version``, plus the
jaxlib version, so a stale library is never used by mistake.

The same source also builds, with a host C++ compiler and ``-DEVOJAX_ZERO_CUDA_EMULATE``, a
CPU library that runs the kernels' thread bodies in a host loop (:func:`compile_emulation`);
tests use it to check the CUDA driver logic on machines without a GPU.

    python evojax_zero/native/build_cuda.py [OUTPUT]     # build the CUDA library
"""

from __future__ import annotations

import glob
import hashlib
import os
import shutil
import subprocess
import sys
import sysconfig

# Shared with the CPU build: the FFI headers of jaxlib and the atomic compile step.
from evojax_zero.native.build import compile_atomically, find_compiler, jax_include_dir

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCES = ("interpreter_cuda.cu", "interpreter.h", "ffi_problem.h")
MAIN_SOURCE = "interpreter_cuda.cu"
LIB_BASENAME = "_evojax_zero_cuda"
# H100 / H200 (sm_90) and A100 (sm_80) machine code, plus compute_90 PTX that newer GPUs'
# drivers compile at load time.
ARCH_FLAGS = ("-gencode", "arch=compute_80,code=sm_80",
              "-gencode", "arch=compute_90,code=[sm_90,compute_90]")
# IEEE arithmetic as the CPU build (-ffp-contract=off there): no fused multiply-add, no
# fast-math (so division and sqrt are correctly rounded, denormals kept). --threads 0 compiles
# the architectures in parallel.
NVCC_FLAGS = ("-O3", "-std=c++17", "--fmad=false", "-shared", "--threads", "0",
              "-Xcompiler", "-fPIC,-fno-math-errno,-ffp-contract=off")
# The host emulation: the CPU build's flags, the .cu read as C++.
EMULATION_FLAGS = ("-x", "c++", "-DEVOJAX_ZERO_CUDA_EMULATE", "-O2", "-std=c++17", "-fPIC",
                   "-shared", "-fno-math-errno", "-ffp-contract=off")


def _site_dirs() -> list[str]:
    dirs = [sysconfig.get_path("purelib"), sysconfig.get_path("platlib")]
    dirs += [p for p in sys.path if p.endswith("site-packages")]
    seen, out = set(), []
    for d in dirs:
        if d and d not in seen and os.path.isdir(d):
            seen.add(d)
            out.append(d)
    return out


def find_nvcc() -> str | None:
    """nvcc to use, in order: $EVOJAX_ZERO_NVCC; $CUDA_HOME/bin, $CUDA_PATH/bin; PATH;
    /usr/local/cuda/bin; the nvcc of the ``nvidia-cuda-nvcc*`` wheels that jax[cuda] installs
    (``site-packages/nvidia/*/bin/nvcc``). None when there is none."""
    env = os.environ.get("EVOJAX_ZERO_NVCC")
    if env:
        return shutil.which(env)
    for var in ("CUDA_HOME", "CUDA_PATH"):
        root = os.environ.get(var)
        if root and os.access(os.path.join(root, "bin", "nvcc"), os.X_OK):
            return os.path.join(root, "bin", "nvcc")
    path = shutil.which("nvcc")
    if path:
        return path
    if os.access("/usr/local/cuda/bin/nvcc", os.X_OK):
        return "/usr/local/cuda/bin/nvcc"
    for site in _site_dirs():
        for cand in sorted(glob.glob(os.path.join(site, "nvidia", "*", "bin", "nvcc"))):
            if os.access(cand, os.X_OK):
                return cand
    return None


def nvcc_version(nvcc: str) -> str:
    """The last line of ``nvcc --version`` (e.g. 'Build cuda_13.0.r13.0/compiler.36424714_0')."""
    out = subprocess.run([nvcc, "--version"], capture_output=True, text=True, timeout=60)
    lines = [ln.strip() for ln in out.stdout.splitlines() if ln.strip()]
    return lines[-1] if lines else "unknown"


def _wheel_runtime_flags(nvcc: str) -> list[str]:
    """Extra flags when nvcc comes from a pip wheel without the static CUDA runtime: the
    runtime headers and shared library of the ``nvidia-cuda-runtime*`` wheel (rpath'd)."""
    real = os.path.realpath(nvcc)
    if os.sep + "nvidia" + os.sep not in real or "-packages" + os.sep not in real:
        return []  # a toolkit install (or a wrapper script): nvcc finds its own runtime
    root = os.path.dirname(os.path.dirname(real))
    static = glob.glob(os.path.join(root, "lib*", "libcudart_static.a")) + glob.glob(
        os.path.join(root, "targets", "*", "lib", "libcudart_static.a"))
    if static:
        return []
    nvidia = os.path.dirname(root)
    for rt in (os.path.join(nvidia, "cuda_runtime"), root):
        inc, lib = os.path.join(rt, "include"), os.path.join(rt, "lib")
        if os.path.exists(os.path.join(inc, "cuda_runtime.h")) and glob.glob(
                os.path.join(lib, "libcudart.so*")):
            return ["-I", inc, "-cudart", "shared", "-L", lib,
                    "-Xlinker", "-rpath", "-Xlinker", lib]
    return []


def source_hash(flags, nvcc_ver: str, src_dir: str = HERE) -> str:
    h = hashlib.sha256()
    for name in SOURCES:
        with open(os.path.join(src_dir, name), "rb") as f:
            h.update(name.encode() + b"\0" + f.read() + b"\0")
    h.update(" ".join(flags).encode() + b"\0" + nvcc_ver.encode())
    return h.hexdigest()[:16]


def build_id(jaxlib_version: str, nvcc: str, src_dir: str = HERE) -> str:
    flags = (*NVCC_FLAGS, *ARCH_FLAGS, *_wheel_runtime_flags(nvcc))
    return f"{source_hash(flags, nvcc_version(nvcc), src_dir)}:jaxlib-{jaxlib_version}"


def compile_library(output: str, include_dir: str, jaxlib_version: str, src_dir: str = HERE,
                    nvcc: str | None = None, arch_flags=ARCH_FLAGS, extra_flags=(),
                    verbose: bool = False, timeout: int = 1800) -> None:
    """Compile the CUDA library to ``output`` (atomically: temp file then rename).

    ``arch_flags`` and ``extra_flags`` let tests compile for fewer architectures or ask ptxas
    for resource usage; the loader always uses the defaults. Raises RuntimeError with nvcc's
    message on failure. Takes minutes (one kernel per feature size and dtype).
    """
    nvcc = nvcc or find_nvcc()
    if not nvcc:
        raise RuntimeError("no nvcc found (set $EVOJAX_ZERO_NVCC or $CUDA_HOME, or install "
                           "the CUDA toolkit or the nvidia-cuda-nvcc wheel)")
    bid = build_id(jaxlib_version, nvcc, src_dir)
    head = [nvcc, *NVCC_FLAGS, *arch_flags, *_wheel_runtime_flags(nvcc), *extra_flags,
            f'-DEVOJAX_ZERO_BUILD_ID="{bid}"', "-isystem", include_dir,
            os.path.join(src_dir, MAIN_SOURCE)]
    compile_atomically(head, output, "cuda", verbose, timeout)


def compile_emulation(output: str, include_dir: str, src_dir: str = HERE,
                      compiler: str | None = None, verbose: bool = False) -> None:
    """Compile the host emulation of the CUDA library (a CPU library; see the module doc)."""
    compiler = compiler or find_compiler()
    if not compiler:
        raise RuntimeError("no C++ compiler found (set $CXX or install g++)")
    head = [*compiler.split(), *EMULATION_FLAGS, '-DEVOJAX_ZERO_BUILD_ID="emulation"',
            "-isystem", include_dir, os.path.join(src_dir, MAIN_SOURCE)]
    compile_atomically(head, output, "cuda emulation", verbose, 600)


def main(argv=None) -> int:
    """``python evojax_zero/native/build_cuda.py [OUTPUT]``: build the CUDA library."""
    argv = sys.argv[1:] if argv is None else argv
    output = argv[0] if argv else os.path.join(HERE, LIB_BASENAME + ".so")
    inc, ver = jax_include_dir()
    compile_library(output, inc, ver, verbose=True)
    print(output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
