"""Helper modules of the nas tests, registered by path (no ``sys.path`` changes needed).

* ``weight_sharing_cells`` (tests/nas/weight_sharing_cells.py): the small cell space and
  data shared by the weight-sharing tests.
* ``weight_sharing_benchmark`` (benchmarks/weight_sharing.py): the JAX-vs-PyTorch supernet
  benchmark, loaded lazily (on first attribute use) since it imports PyTorch when present.
"""

from __future__ import annotations

import importlib.util
import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def _load_by_path(name: str, path: pathlib.Path, lazy: bool = False):
    """Import ``path`` as module ``name`` (once); ``lazy`` runs it on first attribute use."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if lazy:
        spec.loader = importlib.util.LazyLoader(spec.loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


weight_sharing_cells = _load_by_path("weight_sharing_cells", HERE / "weight_sharing_cells.py")
weight_sharing_benchmark = _load_by_path("weight_sharing_benchmark",
                                         ROOT / "benchmarks" / "weight_sharing.py", lazy=True)
