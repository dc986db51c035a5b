"""Shared test fixtures.

* ``reference_interpreter`` (tests/reference_interpreter.py, the plain NumPy interpreter the
  evaluator is checked against) is registered as a module here, loaded from its file, so
  ``import reference_interpreter`` works under any pytest import mode and from any working
  directory, without relying on pytest putting ``tests/`` on ``sys.path``. The ``ri`` fixture
  hands it to tests.
* ``compile_count``: counts XLA compilations through JAX's public monitoring events, so a test
  can check "step 2 never recompiles" of any jitted entry point without reading private
  attributes of the object under test.
* Small shared specs: ``linear_spec`` (the reference's LINEAR_ALGORITHM ops) and
  ``linear_tasks`` (3 tiny linear-regression tasks).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pathlib
import sys

# Tests count compilations and must not depend on what earlier runs left in a cache: the
# CLI's persistent compilation cache stays off here (and in the CLI subprocesses tests start).
os.environ.setdefault("EVOJAX_ZERO_COMPILE_CACHE", "off")

import jax  # noqa: E402
import pytest  # noqa: E402

from evojax_zero.program import tasks as T
from evojax_zero.program.programs import ProgramSpec

TESTS = pathlib.Path(__file__).resolve().parent
ROOT = TESTS.parent


def _load_by_path(name: str, path: pathlib.Path):
    """Import ``path`` as module ``name`` (once) without touching ``sys.path``."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


reference_interpreter = _load_by_path("reference_interpreter",
                                      TESTS / "reference_interpreter.py")

# The event JAX records once per backend compilation (jax._src.dispatch.BACKEND_COMPILE_EVENT;
# a public name through jax.monitoring listeners).
BACKEND_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"


class CompileCounter:
    """Number of XLA backend compilations seen while the counter is active."""

    def __init__(self):
        self.count = 0
        self.active = False

    def _listener(self, event: str, duration: float, **kwargs) -> None:
        if self.active and event == BACKEND_COMPILE_EVENT:
            self.count += 1

    @contextlib.contextmanager
    def __call__(self):
        """``with compile_count() as c: ...; assert c.count == 0``."""
        self.count = 0
        self.active = True
        try:
            yield self
        finally:
            self.active = False


@pytest.fixture
def compile_count():
    counter = CompileCounter()
    jax.monitoring.register_event_duration_secs_listener(counter._listener)
    try:
        yield counter
    finally:
        jax.monitoring.unregister_event_duration_listener(counter._listener)


@pytest.fixture(scope="session")
def ri():
    """The plain NumPy reference interpreter (tests/reference_interpreter.py)."""
    return reference_interpreter


@pytest.fixture(scope="session")
def repo_root() -> pathlib.Path:
    return ROOT


@pytest.fixture(scope="session")
def linear_spec():
    """A spec with the ops of the reference's LINEAR_ALGORITHM (4 scalars, 3 vectors,
    1 matrix, feature size 4; setup 5, predict 1, learn 4 rows)."""
    return ProgramSpec(4, 3, 1, 4, setup_ops=(56,), predict_ops=(27,),
                       learn_ops=(2, 3, 18, 23), max_setup_size=5, max_predict_size=1,
                       max_learn_size=4)


@pytest.fixture(scope="session")
def linear_tasks():
    """3 small linear-regression tasks (20 train, 10 valid examples, feature size 4)."""
    return T.linear_regression(num_tasks=3, num_train=20, num_valid=10)


@pytest.fixture
def run_notebook(monkeypatch):
    """Execute ``notebooks/<name>`` with extra environment variables (tiny sizes) and return
    ``(printed text of all code cells, number of PNG outputs)``. Skips without nbclient."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")

    def run(name: str, env: dict[str, str], cwd: pathlib.Path | None = None,
            timeout: int = 900) -> tuple[str, int]:
        for k, v in {"OPENBLAS_NUM_THREADS": "1", **env}.items():
            monkeypatch.setenv(k, v)
        path = ROOT / "notebooks" / name
        nb = nbformat.read(path, as_version=4)
        client = nbclient.NotebookClient(
            nb, timeout=timeout, kernel_name="python3",
            resources={"metadata": {"path": str(cwd or path.parent)}})
        kernel_env = dict(os.environ)
        kernel_env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(ROOT), kernel_env.get("PYTHONPATH")) if p)
        client.execute(env=kernel_env)
        outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
        text = "".join(o.get("text", "") for o in outputs)
        return text, sum("image/png" in o.get("data", {}) for o in outputs)

    return run

