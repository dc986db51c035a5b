"""Modules moved into nas.benchmarks stay importable at their old paths, with a warning."""

import importlib
import sys

import pytest

from nas.benchmarks import digits, nas_bench_graph


@pytest.mark.parametrize("old, new", [("nas.digits", digits),
                                      ("nas.nas_bench_graph", nas_bench_graph)])
def test_old_path_is_a_deprecated_alias(old, new):
    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match="moved to nas.benchmarks"):
        module = importlib.import_module(old)
    assert module is new
