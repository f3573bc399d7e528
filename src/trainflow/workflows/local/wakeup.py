"""How the runner sleeps: until a step process exits, a signal arrives or a deadline passes.

A step's exit raises SIGCHLD in the runner; with a Python handler installed for it, the interpreter
writes a byte to the wakeup pipe (`signal.set_wakeup_fd`), which `wait` selects on. So the runner
sees a step end at once instead of at its next poll, and uses no CPU while steps run. A byte sent
before `wait` stays in the pipe, so no exit is missed between a check and the sleep.
"""

from __future__ import annotations

import os
import select
import signal
from types import FrameType, TracebackType


def _ignore(signum: int, frame: FrameType | None) -> None:
    """The SIGCHLD handler: it only has to exist, so that the signal writes to the wakeup pipe."""


class Wakeup:
    """Installed in the main thread for the runner's loop; `wait` returns early on any handled signal."""

    def __init__(self) -> None:
        self._read, self._write = os.pipe()
        for fd in (self._read, self._write):
            os.set_blocking(fd, False)
        self._previous_fd = signal.set_wakeup_fd(self._write, warn_on_full_buffer=False)
        self._previous_chld = signal.signal(signal.SIGCHLD, _ignore)

    def wait(self, timeout: float) -> None:
        """Sleep up to `timeout` seconds, less if a child exited or a signal came meanwhile."""
        ready, _, _ = select.select([self._read], [], [], max(timeout, 0.0))
        if ready:
            self._drain()

    def _drain(self) -> None:
        while True:
            try:
                if not os.read(self._read, 4096):
                    return
            except BlockingIOError:
                return

    def close(self) -> None:
        signal.signal(signal.SIGCHLD, self._previous_chld)
        signal.set_wakeup_fd(self._previous_fd)
        os.close(self._read)
        os.close(self._write)

    def __enter__(self) -> Wakeup:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()
