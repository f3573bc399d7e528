"""One runner per workflow: an exclusive flock on `workflows/<name>/runner.lock`.

The kernel releases a flock when the last descriptor of its open file goes away, so a runner that
dies (even by SIGKILL) frees its workflow. The command that starts a runner takes the lock first and
hands the descriptor down to the runner, so the workflow is never unowned between the two: a second
`retry` or a `get` that checks for a dead runner cannot slip in while the runner starts.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

LOCK_FD_ENV = "TRAINFLOW_RUNNER_LOCK_FD"
_POLL = 0.05


class RunnerLock:
    """The lock file of one workflow; `acquire` and `adopt` make this process (and its runner) its holder."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd: int | None = None

    def acquire(self, wait: float = 0.0) -> bool:
        """Take the lock, waiting up to `wait` seconds; False if another process holds it."""
        deadline = time.monotonic() + wait
        while True:
            if self._try():
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(_POLL)

    def _try(self) -> bool:
        for _ in range(5):  # a `delete` may remove the file between our open and our lock: open the new one
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return False
            if self._is_current(fd):
                self.fd = fd
                return True
            os.close(fd)
        return False

    def _is_current(self, fd: int) -> bool:
        try:
            return os.stat(self.path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            return False

    def adopt(self, fd: int) -> bool:
        """Take over a lock handed down by the command that started this process; False if it is not ours."""
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a no-op when this open file already holds it
        except OSError:
            return False
        if not self._is_current(fd):  # the workflow was deleted while this runner started
            return False
        self.fd = fd
        return True

    def release(self, remove: bool = False) -> None:
        """Let go; with `remove`, delete the lock file first (others re-check the file after locking)."""
        if self.fd is None:
            return
        if remove:
            self.path.unlink(missing_ok=True)
        os.close(self.fd)
        self.fd = None
