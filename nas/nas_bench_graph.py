"""Deprecated alias of :mod:`nas.benchmarks.nas_bench_graph` (moved there); import that instead."""

import sys
import warnings

from nas.benchmarks import nas_bench_graph

warnings.warn("nas.nas_bench_graph moved to nas.benchmarks.nas_bench_graph", DeprecationWarning,
              stacklevel=2)
sys.modules[__name__] = nas_bench_graph
