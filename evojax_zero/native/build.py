"""Build the native libraries (standard library only; setup.py loads this file by path).

One builder for the three targets, which share the interpreter headers and the FFI binding
(``ffi_binding.h``) and differ only in the compiler and the main source:

* ``cpu``: ``interpreter.cc`` + ``fec.cc`` with the host C++ compiler (the CPU backend);
* ``cuda``: ``interpreter_cuda.cu`` with nvcc (the GPU backend; only built where JAX has a GPU);
* ``emulation``: ``interpreter_cuda.cu`` read as C++ with ``-DEVOJAX_ZERO_CUDA_EMULATE``: a CPU
  library that runs the CUDA kernels' thread bodies in a host loop, so tests can check the
  GPU driver logic without a GPU.

Each library is compiled against the XLA FFI headers that ship with jaxlib
(``jax.ffi.include_dir()``), and stamped with a build id (a hash of the sources, the flags and,
for CUDA, ``nvcc --version``, plus the jaxlib version), so a stale library is never used by
mistake. ``python evojax_zero/native/build.py [cpu|cuda|emulation] [OUTPUT]`` builds one.
"""

from __future__ import annotations

import dataclasses
import glob
import hashlib
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
HEADERS = ("common.h", "rng.h", "program.h", "execute.h", "liveness.h", "interpreter.h",
           "ffi_binding.h", "thread_pool.h")
# Portable host flags: no -march=native (a wheel or shared install may run on another CPU) and
# no FMA contraction or fast-math, so results are reproducible and follow IEEE semantics.
# -fno-tree-loop-distribute-patterns: the kernel's short fixed-size copies and fills stay
# inline SIMD moves instead of becoming memcpy/memset calls (10% of the time on linear).
CXXFLAGS = ("-O3", "-std=c++17", "-fPIC", "-shared", "-fno-math-errno", "-ffp-contract=off",
            "-fno-tree-loop-distribute-patterns", "-fno-plt", "-pthread")
# H100 / H200 (sm_90) and A100 (sm_80) machine code, plus compute_90 PTX that newer GPUs'
# drivers compile at load time.
ARCH_FLAGS = ("-gencode", "arch=compute_80,code=sm_80",
              "-gencode", "arch=compute_90,code=[sm_90,compute_90]")
# IEEE arithmetic as the CPU build: no fused multiply-add, no fast-math (division and sqrt
# correctly rounded, denormals kept). --threads 0 compiles the architectures in parallel.
NVCC_FLAGS = ("-O3", "-std=c++17", "--fmad=false", "-shared", "--threads", "0",
              "-Xcompiler", "-fPIC,-fno-math-errno,-ffp-contract=off")
EMULATION_FLAGS = ("-x", "c++", "-DEVOJAX_ZERO_CUDA_EMULATE", "-O2", "-std=c++17", "-fPIC",
                   "-shared", "-fno-math-errno", "-ffp-contract=off")


@dataclasses.dataclass(frozen=True)
class Target:
    name: str
    sources: tuple[str, ...]   # compiled, in order
    basename: str              # library file name stem
    flags: tuple[str, ...]
    uses_nvcc: bool = False


TARGETS = {
    "cpu": Target("cpu", ("interpreter.cc", "fec.cc"), "_evojax_zero_native", CXXFLAGS),
    "cuda": Target("cuda", ("interpreter_cuda.cu",), "_evojax_zero_cuda",
                   (*NVCC_FLAGS, *ARCH_FLAGS), uses_nvcc=True),
    "emulation": Target("emulation", ("interpreter_cuda.cu",), "_evojax_zero_cuda_emulation",
                        EMULATION_FLAGS),
    # The search's ask (tournament + mutation) in C++ (evojax_zero.search.native_ask).
    "ask": Target("ask", ("ask.cc",), "_evojax_zero_ask", CXXFLAGS),
}
# Back-compatible names of the CPU target.
LIB_BASENAME = TARGETS["cpu"].basename
SOURCES = (*TARGETS["cpu"].sources, *HEADERS)


def find_compiler() -> str | None:
    """The host C++ compiler: $CXX, else g++ / c++ / clang++ on PATH."""
    env = os.environ.get("CXX")
    if env:
        return shutil.which(env.split()[0]) and env
    for name in ("g++", "c++", "clang++"):
        path = shutil.which(name)
        if path:
            return path
    return None


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


def _compiler_for(target: Target, compiler: str | None) -> tuple[list[str], list[str], str]:
    """(compiler command, extra flags, version text hashed into the build id)."""
    if target.uses_nvcc:
        nvcc = compiler or find_nvcc()
        if not nvcc:
            raise RuntimeError("no nvcc found (set $EVOJAX_ZERO_NVCC or $CUDA_HOME, or install "
                               "the CUDA toolkit or the nvidia-cuda-nvcc wheel)")
        return [nvcc], _wheel_runtime_flags(nvcc), nvcc_version(nvcc)
    cxx = compiler or find_compiler()
    if not cxx:
        raise RuntimeError("no C++ compiler found (set $CXX or install g++)")
    return cxx.split(), [], ""


def source_hash(target: Target | str = "cpu", extra: tuple[str, ...] = (), version: str = "",
                src_dir: str = HERE) -> str:
    target = TARGETS[target] if isinstance(target, str) else target
    h = hashlib.sha256()
    for name in (*target.sources, *HEADERS):
        with open(os.path.join(src_dir, name), "rb") as f:
            h.update(name.encode() + b"\0" + f.read() + b"\0")
    h.update(" ".join((*target.flags, *extra)).encode() + b"\0" + version.encode())
    return h.hexdigest()[:16]


def build_id(jaxlib_version: str, src_dir: str = HERE, target: str = "cpu",
             compiler: str | None = None) -> str:
    """The stamp a library of ``target`` built here now would carry."""
    t = TARGETS[target]
    if t.uses_nvcc:
        _, extra, version = _compiler_for(t, compiler)
    else:
        extra, version = (), ""
    return f"{source_hash(t, tuple(extra), version, src_dir)}:jaxlib-{jaxlib_version}"


def jax_include_dir() -> tuple[str, str]:
    """(include dir with xla/ffi/api/ffi.h, jaxlib version); raises ImportError without jax."""
    import jax.ffi
    import jaxlib

    inc = jax.ffi.include_dir()
    if not os.path.exists(os.path.join(inc, "xla", "ffi", "api", "ffi.h")):
        raise ImportError(f"jaxlib at {inc} does not ship xla/ffi/api/ffi.h")
    return inc, jaxlib.__version__


def compile_library(output: str, include_dir: str, jaxlib_version: str, src_dir: str = HERE,
                    compiler: str | None = None, verbose: bool = False, target: str = "cpu",
                    flags: tuple[str, ...] | None = None, extra_flags: tuple[str, ...] = (),
                    timeout: int | None = None, progress: bool = False) -> None:
    """Compile ``target``'s library to ``output`` (atomically: temp file then rename).

    ``flags`` replaces the target's flags and ``extra_flags`` adds to them (tests compile for
    fewer GPU architectures or ask ptxas for resource usage; the loader uses the defaults).
    ``progress``: print a line to stderr when the compile starts and every 10 s while it runs.
    Raises RuntimeError with the compiler's message on failure.
    """
    t = TARGETS[target]
    cmd, runtime_flags, version = _compiler_for(t, compiler)
    if flags is not None:
        t = dataclasses.replace(t, flags=tuple(flags))
    stamp = "emulation" if target == "emulation" else (
        f"{source_hash(t, tuple(runtime_flags), version, src_dir)}:jaxlib-{jaxlib_version}")
    head = [*cmd, *t.flags, *runtime_flags, *extra_flags, f'-DEVOJAX_ZERO_BUILD_ID="{stamp}"',
            "-isystem", include_dir, *(os.path.join(src_dir, s) for s in t.sources)]
    default_timeout = 1800 if t.uses_nvcc else 600
    compile_atomically(head, output, target, verbose, timeout or default_timeout, progress)


def compile_atomically(cmd_head: list[str], output: str, what: str, verbose: bool,
                       timeout: int, progress: bool = False) -> None:
    """Run ``cmd_head -o TMP`` and rename TMP to ``output`` on success (a half-written
    library is never visible). Raises RuntimeError with the compiler's message on failure."""
    out_dir = os.path.dirname(os.path.abspath(output))
    os.makedirs(out_dir, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".evojax_zero-", suffix=".so", dir=out_dir)
    os.close(fd)
    cmd = [*cmd_head, "-o", tmp]
    if verbose:
        print(f"evojax_zero {what}:", " ".join(cmd), file=sys.stderr)
    done = threading.Event()
    if progress:
        start = time.monotonic()
        print(f"evojax_zero: compiling the {what} library once into {out_dir} "
              f"(about 2 min of CPU; later runs load it)...", file=sys.stderr,
              flush=True)

        def tick():
            while not done.wait(10):
                print(f"evojax_zero: still compiling ({time.monotonic() - start:.0f} s)",
                      file=sys.stderr, flush=True)

        threading.Thread(target=tick, daemon=True).start()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(
                f"{what} compile failed ({' '.join(cmd)}):\n{proc.stderr.strip()[-4000:]}")
        os.chmod(tmp, 0o755)
        os.replace(tmp, output)
    finally:
        done.set()
        if os.path.exists(tmp):
            os.unlink(tmp)
    if progress:
        print(f"evojax_zero: compiled {output} in {time.monotonic() - start:.0f} s",
              file=sys.stderr, flush=True)


def main(argv=None) -> int:
    """``python evojax_zero/native/build.py [cpu|cuda|emulation] [OUTPUT]``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    target = argv.pop(0) if argv and argv[0] in TARGETS else "cpu"
    output = argv[0] if argv else os.path.join(HERE, TARGETS[target].basename + ".so")
    inc, ver = jax_include_dir()
    compile_library(output, inc, ver, target=target, verbose=True)
    print(output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
