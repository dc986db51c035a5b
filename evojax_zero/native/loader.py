"""One loader for the native libraries (CPU and CUDA): find, build when missing, check, register.

A :class:`Library` of a build target (``evojax_zero.native.build.TARGETS``) is looked up, in
order, at

1. ``$<env var>`` (an explicit path: ``EVOJAX_ZERO_NATIVE_LIB`` for the CPU library,
   ``EVOJAX_ZERO_CUDA_LIB`` for the CUDA one), used as is;
2. inside this package (the CPU library built by ``pip install``; see setup.py);
3. the user cache (``$EVOJAX_ZERO_CACHE_DIR``, else ``$XDG_CACHE_HOME/evojax_zero``, else
   ``~/.cache/evojax_zero``), compiled there at first use when a compiler exists (with a
   progress line on stderr: the CPU build takes about 2 min of CPU, the CUDA one longer).
   ``EVOJAX_ZERO_NO_COMPILE=1`` disables that compile.

A library found is checked (its build id against the sources here, its probe for a usable
device) and its FFI handlers are registered with XLA under the library's target names. Nothing
raises at import: :meth:`Library.available` and :meth:`Library.why_unavailable` report.
"""

from __future__ import annotations

import ctypes
import glob
import os
import threading
from collections.abc import Callable

import jax

from evojax_zero.native import build

__all__ = ["Library", "cache_dir"]


def cache_dir() -> str:
    """Where libraries compiled at first use are kept."""
    env = os.environ.get("EVOJAX_ZERO_CACHE_DIR")
    if env:
        return env
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "evojax_zero")


def text(lib: ctypes.CDLL, name: str) -> str:
    """The C string a library's exported ``const char* name()`` returns."""
    fn = getattr(lib, name)
    fn.restype = ctypes.c_char_p
    return fn().decode()


def _jaxlib_version() -> str:
    try:
        import jaxlib

        return jaxlib.__version__
    except ImportError:  # pragma: no cover - jax always brings jaxlib
        return "unknown"


class Library:
    """One native library: ``targets`` maps XLA target names to exported handler symbols,
    registered for ``platform``. ``precondition`` (optional) returns why this process cannot
    use the library at all (e.g. no GPU); it is checked before anything is compiled."""

    def __init__(self, target: str, env_var: str, platform: str, targets: dict[str, str],
                 packaged: bool = False, precondition: Callable[[], str] | None = None):
        self.target = build.TARGETS[target]
        self.env_var = env_var
        self.platform = platform
        self.targets = dict(targets)
        self.packaged = packaged
        self.precondition = precondition
        self._lock = threading.Lock()
        self._state: dict = {"tried": False, "ok": False, "why": "", "path": None, "lib": None}

    # -- lookup ---------------------------------------------------------------------------
    def _load(self, path: str) -> tuple[ctypes.CDLL | None, str]:
        try:
            lib = ctypes.CDLL(os.path.abspath(path))
            for symbol in self.targets.values():
                getattr(lib, symbol)
            text(lib, "evojax_zero_build_id")
        except (OSError, AttributeError) as e:
            return None, f"{path} could not be loaded: {e}"
        return lib, ""

    def _find(self) -> tuple[ctypes.CDLL | None, str | None, str]:
        """(library, path, note): note explains a failure."""
        explicit = os.environ.get(self.env_var)
        if explicit:
            lib, why = self._load(explicit)
            return lib, explicit if lib else None, why and f"{self.env_var}={why}"
        jaxlib_version = _jaxlib_version()
        try:
            want = build.build_id(jaxlib_version, target=self.target.name)
        except (RuntimeError, OSError) as e:  # no compiler to stamp with (CUDA: no nvcc)
            return None, None, f"cannot build the {self.target.name} library: {e}"
        notes = []
        if self.packaged:
            here = os.path.dirname(os.path.abspath(__file__))
            can_compile = build.find_compiler() is not None
            for path in sorted(glob.glob(os.path.join(here, self.target.basename + "*.so"))):
                lib, why = self._load(path)
                if lib is None:
                    notes.append(why)
                    continue
                bid = text(lib, "evojax_zero_build_id")
                # Built against another jaxlib's headers: the FFI ABI is versioned and stable,
                # so use it rather than nothing when it cannot be rebuilt here.
                if bid == want or (bid.split(":")[0] == want.split(":")[0] and not can_compile):
                    return lib, path, ""
                notes.append(f"prebuilt {path} is stale (build id {bid}, want {want})")
        path = os.path.join(cache_dir(), f"{self.target.basename}-{want.replace(':', '-')}.so")
        if not os.path.exists(path):
            if os.environ.get("EVOJAX_ZERO_NO_COMPILE", "") not in ("", "0"):
                notes.append(f"no {self.target.name} library built and EVOJAX_ZERO_NO_COMPILE "
                             "is set")
                return None, None, "; ".join(notes)
            try:
                inc, _ = build.jax_include_dir()
                build.compile_library(path, inc, jaxlib_version, target=self.target.name,
                                      progress=True)
            except Exception as e:  # noqa: BLE001 - reported through why_unavailable
                notes.append(f"compiling the {self.target.name} library failed: {e}")
                return None, None, "; ".join(notes)
        lib, why = self._load(path)
        if lib is None:
            return None, None, "; ".join([*notes, why])
        bid = text(lib, "evojax_zero_build_id")
        if bid != want:
            return None, None, "; ".join([*notes, f"cached {path} has build id {bid}, "
                                                  f"want {want}"])
        return lib, path, ""

    def _init(self) -> None:
        with self._lock:
            st = self._state
            if st["tried"]:
                return
            st["tried"] = True
            why = self.precondition() if self.precondition else ""
            if why:  # e.g. never compile (or even look for nvcc) without a GPU
                st["why"] = why
                return
            lib, path, why = self._find()
            if lib is None:
                st["why"] = why or f"{self.target.name} library not found"
                return
            problem = text(lib, "evojax_zero_probe")
            if problem:
                st["why"] = f"{path} cannot run here: {problem}"
                return
            try:
                for name, symbol in self.targets.items():
                    jax.ffi.register_ffi_target(name, jax.ffi.pycapsule(getattr(lib, symbol)),
                                                platform=self.platform)
            except Exception as e:  # noqa: BLE001
                st["why"] = f"registering the FFI targets from {path} failed: {e}"
                return
            st.update(ok=True, why="", path=path, lib=lib)

    # -- public ---------------------------------------------------------------------------
    def available(self) -> bool:
        """True when the library is loaded, usable here and registered with XLA."""
        self._init()
        return bool(self._state["ok"])

    def why_unavailable(self) -> str:
        """Empty when available; otherwise why not (no compiler or GPU, failed build, ...)."""
        self._init()
        return self._state["why"]

    def path(self) -> str | None:
        """Path of the loaded library (None when unavailable)."""
        self._init()
        return self._state["path"]

    def handle(self) -> ctypes.CDLL:
        """The loaded library (ctypes), for its plain C exports; raises when unavailable."""
        self.require(self.target.name)
        return self._state["lib"]

    def require(self, what: str) -> None:
        if not self.available():
            raise RuntimeError(f"evojax_zero {what} backend unavailable: "
                               f"{self.why_unavailable()}")
