"""The fork server this node's workers start from: one process that imports torch and the train loop, early.

A worker started as a fresh interpreter spends 1.5-2 s importing torch (every worker at once, on
the same cores). The launcher starts this server as soon as the run's options are checked, so its
imports overlap the launcher's own (preflight, the elastic agent, the rendezvous), and each worker
is then a fork of it (`forked_workers.ForkedWorkers`): a separate process with its rank's
environment, started in a few milliseconds.

The server only imports modules. Importing torch starts no OpenMP or intra-op pool (the first
parallel op does, in a worker), no process group and no torch thread, so a fork of it is as clean
as a fresh interpreter, and each worker sets its own thread count as before.
"""

from __future__ import annotations

import multiprocessing
import os
import tempfile
from multiprocessing import forkserver, util

from trainflow.cores import usable_cores

# What every worker imports anyway: torch._dynamo (with sympy: ~1 s) is imported by the first optimizer torch
# builds; the event writer's import (TensorBoard) is rank 0's alone but as slow.
PRELOAD = (
    "trainflow.training.fork_server_title",  # first: the server's title, while the rest load
    "trainflow.training.worker",
    "trainflow.training.loop",
    "torch._dynamo",
    "torch.utils.tensorboard",
)
START_METHOD = "forkserver"
SOCKET_PATH_MAX = 107  # a Unix socket's path, less its terminating NUL (Linux)
SOCKET_NAME_LENGTH = len("/pymp-12345678/listener-12345678")


def start_worker_server(threads_per_worker: int) -> None:
    """Start this process's fork server (once; later calls find it running) with torch's threads for a worker."""
    # Read by the libraries the server loads; the worker also sets its thread count explicitly.
    os.environ.setdefault("OMP_NUM_THREADS", str(threads_per_worker))
    multiprocessing.get_context(START_METHOD).set_forkserver_preload(list(PRELOAD))
    _short_socket_dir()
    forkserver.ensure_running()


def _short_socket_dir() -> None:
    """Have multiprocessing make its temp dir (the server's socket) under /tmp when TMPDIR is too long for one.

    Python 3.11 binds the socket under TMPDIR without checking the length, and fails with "AF_UNIX path too long".
    """
    if len(tempfile.gettempdir()) + SOCKET_NAME_LENGTH <= SOCKET_PATH_MAX:
        return
    chosen = tempfile.tempdir
    tempfile.tempdir = "/tmp"
    try:
        util.get_temp_dir()  # made now, kept for this process, removed at its exit
    finally:
        tempfile.tempdir = chosen


def threads_per_worker(local_workers: int) -> int:
    """CPU threads for each of `local_workers` processes sharing this machine."""
    return max(1, usable_cores() // max(1, local_workers))
