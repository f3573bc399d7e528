"""TensorBoard events of rank 0 in `<train dir>/logs/`; for remote train dirs, written locally and uploaded."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from trainflow.storage import StorageOptions, Store, join_url, open_store

log = logging.getLogger(__name__)

LOGS_DIR = "logs"


class EventLog:
    """Scalars for TensorBoard; `sync()` copies the event files to a remote train dir."""

    def __init__(self, train_dir: str, options: StorageOptions | None = None) -> None:
        from torch.utils.tensorboard import SummaryWriter

        store = open_store(join_url(train_dir, LOGS_DIR), options)
        # TensorBoard writes files: in the logs dir itself when it is local, else in a temp dir that sync() uploads
        self.remote: Store | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if store.local_root is not None:
            self.local_dir = store.local_root
        else:
            self.remote = store
            self._tmp = tempfile.TemporaryDirectory(prefix="trainflow-events-")
            self.local_dir = Path(self._tmp.name)
        self.local_dir.mkdir(parents=True, exist_ok=True)
        self.writer = SummaryWriter(log_dir=str(self.local_dir))

    def scalars(self, step: int, values: dict[str, float]) -> None:
        for tag, value in values.items():
            self.writer.add_scalar(tag, value, step)

    def sync(self) -> None:
        """Flush; upload the event files when the train dir is remote."""
        self.writer.flush()
        if self.remote is None:
            return
        for path in sorted(self.local_dir.rglob("*")):
            if path.is_file():
                self.remote.upload(path, path.relative_to(self.local_dir).as_posix())

    def close(self) -> None:
        self.sync()
        self.writer.close()
        if self._tmp is not None:
            self._tmp.cleanup()
