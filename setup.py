"""Build step only: project metadata lives in pyproject.toml ([project]).

Compiles the native CPU backend (evojax_zero/native/interpreter.cc, an XLA FFI custom call)
into the package with the C++ compiler ($CXX, else g++/c++/clang++) and the FFI headers that
ship with jaxlib. The build is optional: without a compiler, or without jax importable in the
build environment (pip's isolated build), the install still succeeds with a note; the library
is then compiled at first use into ~/.cache/evojax_zero when a compiler exists, and otherwise
the pure-XLA evaluator is used (``evojax_zero.native.why_unavailable()`` says why).
"""

import importlib.util
import os
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))
NATIVE_DIR = os.path.join(HERE, "evojax_zero", "native")
NATIVE_EXT = "evojax_zero.native._evojax_zero_native"


def _native_build_module():
    spec = importlib.util.spec_from_file_location(
        "_evojax_zero_native_build", os.path.join(NATIVE_DIR, "build.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


class BuildExt(build_ext):
    """build_ext that compiles the native backend with its own command; never fatal."""

    def build_extensions(self):
        self._native_built = False
        super().build_extensions()
        if not self._native_built:  # nothing to copy or install for it (editable installs)
            self.extensions = [e for e in self.extensions if e.name != NATIVE_EXT]

    def build_extension(self, ext):
        if ext.name != NATIVE_EXT:
            return super().build_extension(ext)
        output = self.get_ext_fullpath(ext.name)
        if os.environ.get("EVOJAX_ZERO_SKIP_NATIVE_BUILD", "") not in ("", "0"):
            self.announce("evojax_zero: EVOJAX_ZERO_SKIP_NATIVE_BUILD set; native backend "
                          "not built", level=3)
            return None
        try:
            native_build = _native_build_module()
            include_dir, jaxlib_version = native_build.jax_include_dir()
            native_build.compile_library(output, include_dir, jaxlib_version,
                                         src_dir=NATIVE_DIR, verbose=True)
            self._native_built = True
        except Exception as e:  # noqa: BLE001 - the native backend is optional
            self.warn(
                "evojax_zero: the native CPU backend was not built at install time "
                f"({type(e).__name__}: {str(e)[:2000]}). The package works without it: it is "
                "compiled at first use into ~/.cache/evojax_zero if a C++ compiler and jax "
                "are available then, else the pure-XLA evaluator is used.")
        return None


setup(
    ext_modules=[Extension(NATIVE_EXT, sources=["evojax_zero/native/interpreter.cc",
                                                "evojax_zero/native/fec.cc"])],
    cmdclass={"build_ext": BuildExt},
    # The C++ sources ship with the package so the library can be compiled at first use.
    package_data={"evojax_zero.native": ["*.cc", "*.h", "*.cu"]},
)
