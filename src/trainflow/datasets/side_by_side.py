"""A table's parts converted on a thread each (pyarrow's and numpy's kernels release the GIL), failures ordered."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from typing import TypeVar

T = TypeVar("T")
Check = Callable[[], None]  # a part calls it between batches: it raises Stopped when the part is to stop


class Stopped(Exception):
    """Another part failed: this one stops at its next check."""


def side_by_side(count: int, work: Callable[[int, Check], T], *, earlier_go_on: bool) -> list[T]:
    """`work(k, check)` for parts k = 0 .. count - 1, each on its own thread; their results in part order.

    When a part fails, the parts after it stop at their next check; the parts before it go on where
    `earlier_go_on` (so the failure raised is the one a single pass over the parts in order meets first), else
    they stop too. The failure of the lowest failed part is raised once every thread has ended.
    """
    first = [count]  # the lowest part that failed (-1: every part stops)
    lock = threading.Lock()

    def run(k: int) -> T:
        def check() -> None:
            if first[0] < k:
                raise Stopped

        try:
            return work(k, check)
        except BaseException as exc:
            if not isinstance(exc, Stopped):
                with lock:
                    first[0] = min(first[0], k) if earlier_go_on else -1
            raise

    with ThreadPoolExecutor(count) as pool:
        futures = [pool.submit(run, k) for k in range(count)]
        try:
            wait(futures)
        except BaseException:  # interrupted: the parts stop at their next check, then the pool is left
            first[0] = -1
            raise
    failed = [e for e in (f.exception() for f in futures) if e is not None and not isinstance(e, Stopped)]
    if failed:
        raise failed[0]
    return [future.result() for future in futures]
