"""How many CPU cores this process may use: the one count training, serving and dataset syncs size their threads by."""

from __future__ import annotations

import os


def usable_cores() -> int:
    """The cores this process may run on: its CPU affinity (a container's cpuset, `taskset`), at least 1.

    `os.cpu_count()` counts the whole host, so on a 2-core slice of a 64-core node it would start 32x the threads.
    """
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1
