"""Compile the native CPU backend (standard library only; setup.py loads this file by path).

The library is one shared object built from ``interpreter.cc`` + ``interpreter.h`` (the program
interpreter) and ``fec.cc`` (functional equivalence checking) with the
XLA FFI headers that ship with jaxlib (``jax.ffi.include_dir()``). Its build id (a hash of the
sources and compiler flags) and the jaxlib version are compiled in, so a stale library is never
used by mistake.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCES = ("interpreter.cc", "interpreter.h", "ffi_problem.h", "fec.cc")
COMPILED_SOURCES = ("interpreter.cc", "fec.cc")
LIB_BASENAME = "_evojax_zero_native"
# Portable flags: no -march=native (a wheel or shared install may run on another CPU) and no
# FMA contraction or fast-math, so results are reproducible and follow IEEE semantics.
CXXFLAGS = ("-O3", "-std=c++17", "-fPIC", "-shared", "-fno-math-errno", "-ffp-contract=off",
            "-fno-plt", "-pthread")


def source_hash(src_dir: str = HERE) -> str:
    h = hashlib.sha256()
    for name in SOURCES:
        with open(os.path.join(src_dir, name), "rb") as f:
            h.update(name.encode() + b"\0" + f.read() + b"\0")
    h.update(" ".join(CXXFLAGS).encode())
    return h.hexdigest()[:16]


def build_id(jaxlib_version: str, src_dir: str = HERE) -> str:
    return f"{source_hash(src_dir)}:jaxlib-{jaxlib_version}"


def find_compiler() -> str | None:
    """The C++ compiler to use: $CXX, else g++ / c++ / clang++ on PATH."""
    env = os.environ.get("CXX")
    if env:
        return shutil.which(env.split()[0]) and env
    for name in ("g++", "c++", "clang++"):
        path = shutil.which(name)
        if path:
            return path
    return None


def jax_include_dir() -> tuple[str, str]:
    """(include dir with xla/ffi/api/ffi.h, jaxlib version); raises ImportError without jax."""
    import jax.ffi
    import jaxlib

    inc = jax.ffi.include_dir()
    if not os.path.exists(os.path.join(inc, "xla", "ffi", "api", "ffi.h")):
        raise ImportError(f"jaxlib at {inc} does not ship xla/ffi/api/ffi.h")
    return inc, jaxlib.__version__


def compile_library(output: str, include_dir: str, jaxlib_version: str,
                    src_dir: str = HERE, compiler: str | None = None,
                    verbose: bool = False) -> None:
    """Compile the shared library to ``output`` (atomically: temp file then rename).

    Raises RuntimeError with the compiler's message on failure.
    """
    compiler = compiler or find_compiler()
    if not compiler:
        raise RuntimeError("no C++ compiler found (set $CXX or install g++)")
    bid = build_id(jaxlib_version, src_dir)
    cmd = [*compiler.split(), *CXXFLAGS, f'-DEVOJAX_ZERO_BUILD_ID="{bid}"',
           "-isystem", include_dir, *(os.path.join(src_dir, s) for s in COMPILED_SOURCES)]
    compile_atomically(cmd, output, "native", verbose, timeout=600)


def compile_atomically(cmd_head: list[str], output: str, what: str, verbose: bool,
                       timeout: int) -> None:
    """Run ``cmd_head -o TMP`` and rename TMP to ``output`` on success (a half-written
    library is never visible). Raises RuntimeError with the compiler's message on failure."""
    out_dir = os.path.dirname(os.path.abspath(output))
    os.makedirs(out_dir, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".evojax_zero-", suffix=".so", dir=out_dir)
    os.close(fd)
    cmd = [*cmd_head, "-o", tmp]
    if verbose:
        print(f"evojax_zero {what}:", " ".join(cmd), file=sys.stderr)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(
                f"{what} compile failed ({' '.join(cmd)}):\n{proc.stderr.strip()[-4000:]}")
        os.chmod(tmp, 0o755)
        os.replace(tmp, output)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def main(argv=None) -> int:
    """``python evojax_zero/native/build.py [OUTPUT]``: build the library in place."""
    argv = sys.argv[1:] if argv is None else argv
    output = argv[0] if argv else os.path.join(HERE, LIB_BASENAME + ".so")
    inc, ver = jax_include_dir()
    compile_library(output, inc, ver, verbose=True)
    print(output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
