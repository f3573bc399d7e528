"""TensorBoard as a pipeline service, on a local logs dir or a mirror of a remote one."""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import sys
import threading
from pathlib import Path

from trainflow.storage import ObjectNotFound, StorageError, StorageOptions, open_store
from trainflow.storage.names import name_problem

log = logging.getLogger(__name__)
CHATTY_LOGGERS = ("tensorboard", "werkzeug")


class LogMirror:
    """Keeps a local copy of a remote logs dir (TensorBoard without TensorFlow cannot read s3://)."""

    def __init__(self, url: str, local: Path, options: StorageOptions | None = None) -> None:
        self.store = open_store(url, options)
        self.local = local
        self.seen: dict[str, str] = {}
        self.refused: set[str] = set()

    def sync_once(self) -> int:
        """Fetch new or grown event files; returns how many were fetched."""
        try:
            remote = self.store.list()
        except ObjectNotFound:
            return 0  # training has not written anything yet
        fetched = 0
        for obj in remote:
            if self.seen.get(obj.name) == obj.version_tag or obj.name in self.refused:
                continue
            problem = name_problem(obj.name)
            if problem is not None:  # a key like logs/../../x must not become a path outside the mirror
                log.warning("not mirroring %r from %s: the name %s", obj.name, self.store.url, problem)
                self.refused.add(obj.name)
                continue
            dest = self.local / obj.name
            try:
                dest.parent.mkdir(parents=True, exist_ok=True)
                tmp = dest.with_name(f".{dest.name}.part")
                self.store.download(obj.name, tmp)
                tmp.replace(dest)
            except OSError as exc:  # 'x' beside 'x/y': one of them cannot be a file here
                log.warning("not mirroring %r from %s: %s", obj.name, self.store.url, exc.strerror or exc)
                self.refused.add(obj.name)
                continue
            self.seen[obj.name] = obj.version_tag
            fetched += 1
        return fetched

    def run(self, stop: threading.Event, every: float) -> None:
        while not stop.wait(every):
            try:
                self.sync_once()
            except StorageError as exc:
                log.warning("could not refresh TensorBoard logs from %s: %s", self.store.url, exc)


def local_logdir(
    logdir_url: str, cache_root: Path, options: StorageOptions | None = None
) -> tuple[Path, LogMirror | None]:
    """The directory TensorBoard reads, and the mirror that fills it when the logs are remote."""
    store = open_store(logdir_url, options)
    if store.local_root is not None:  # TensorBoard reads it in place
        store.ensure_container()
        return store.local_root, None
    local = cache_root / hashlib.sha256(logdir_url.encode()).hexdigest()[:16]
    local.mkdir(parents=True, exist_ok=True)
    return local, LogMirror(logdir_url, local, options)


def launch_tensorboard(logdir: Path, port: int, host: str) -> str:
    """Start TensorBoard's server in this process (a background thread); returns its URL.

    Below DEBUG, TensorBoard's own chatter (a data-server load cycle every few seconds, every request,
    the fast-loading notice) stays out of the step's log, so the log says what the step did and why it failed.
    """
    from tensorboard import program

    quiet = not logging.getLogger().isEnabledFor(logging.DEBUG)
    if quiet:
        for chatty in CHATTY_LOGGERS:  # the data server is verbose only while its logger is at INFO
            logging.getLogger(chatty).setLevel(logging.WARNING)
    board = program.TensorBoard()
    board.configure(argv=[None, "--logdir", str(logdir), "--port", str(port), "--host", host, "--reload_interval", "5"])
    said = io.StringIO()
    with contextlib.redirect_stderr(said):
        url = board.launch()
    notes = said.getvalue()
    if quiet:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # TensorBoard resets it to NOTSET as it starts
        notes = notes.replace(program._DATA_SERVER_ADVISORY_MESSAGE, "")
    sys.stderr.write(notes)  # anything else it said (a data server that did not start) stays in the log
    return str(url)


def start_tensorboard(
    logdir: str, port: int, host: str, cache: Path, options: StorageOptions, stop: threading.Event, refresh: float
) -> str:
    """TensorBoard on `logdir` (a remote one mirrored into `cache` every `refresh` seconds until `stop`); its URL."""
    local, mirror = local_logdir(logdir, cache, options)
    if mirror is not None:
        mirror.sync_once()
        threading.Thread(target=mirror.run, args=(stop, refresh), daemon=True).start()
    return launch_tensorboard(local, port, host)
