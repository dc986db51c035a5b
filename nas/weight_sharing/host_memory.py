"""An opt-in setting of the C allocator that keeps big steps from page-faulting.

XLA:CPU allocates each program's temporary buffer at every call; a DARTS step's is tens of
megabytes, above glibc's ``mmap`` threshold (at most 32 MiB), so every call maps fresh pages
and faults on each of them (the speed benchmark's DARTS second-order step: 65,000 minor
faults and 0.17 s of system time per 0.52 s step). :func:`keep_freed_memory` tells glibc to
serve large blocks from the heap and not to return freed memory to the system, so later
steps reuse the same pages (that step: 88 faults, 0.33 s). It changes the whole process'
allocator (the heap stays at its peak size); the search loop
:func:`nas.weight_sharing.driver.run` calls it on the CPU unless told not to, and code
that calls ``algorithm.step`` itself may call it once before its first step.
Setting ``MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=1073741824`` in the environment before
Python starts does the same.
"""

from __future__ import annotations

import ctypes
import ctypes.util

_M_TRIM_THRESHOLD = -1  # glibc <malloc.h>
_M_MMAP_MAX = -4


def keep_freed_memory(trim_threshold: int = 1 << 30) -> bool:
    """Make glibc keep freed memory (no ``mmap`` for large blocks; trim only above
    ``trim_threshold`` bytes of free heap top). Returns False where the C library is not
    glibc (nothing changed)."""
    if not isinstance(trim_threshold, int) or not 0 < trim_threshold < 2**31:
        raise ValueError(
            f"trim_threshold must be an int in (0, 2**31) bytes, got {trim_threshold!r}")
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
        libc.gnu_get_libc_version  # noqa: B018 - glibc only
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, trim_threshold))
