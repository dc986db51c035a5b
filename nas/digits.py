"""Deprecated alias of :mod:`nas.benchmarks.digits` (moved there); import that instead."""

import sys
import warnings

from nas.benchmarks import digits

warnings.warn("nas.digits moved to nas.benchmarks.digits", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = digits
