"""The worker process the elastic agent starts: a fork of the fork server (see `worker_server`) running `run_forked`.

It is an edge like the CLI: it sets up logging (every record carries the rank), runs the train
loop, and turns failures into exit codes the agent and the operators act on: 1-127 permanent,
>= 128 transient (a lost peer, a rendezvous or network timeout). The one-line reason goes to the
agent's error file so the launcher can repeat it.
"""

from __future__ import annotations

import faulthandler
import json
import logging
import os
import sys
import time
from typing import TYPE_CHECKING, NoReturn

from trainflow.errors import TRANSIENT_EXIT_CODE, TrainflowError
from trainflow.proctitle import set_title, worker_title
from trainflow.settings import quiet_noisy_loggers
from trainflow.tracking import flush_before_exit

if TYPE_CHECKING:
    from trainflow.training.config import TrainConfig

log = logging.getLogger("trainflow.training.worker")

UNEXPECTED_EXIT_CODE = 1
_TRANSIENT_HINTS = ("connection", "timed out", "timeout", "broken pipe", "peer", "socket")


class RankFilter(logging.Filter):
    """Adds `rank` to every record."""

    def __init__(self, rank: str) -> None:
        super().__init__()
        self.rank = rank

    def filter(self, record: logging.LogRecord) -> bool:
        record.rank = self.rank
        return True


def setup_worker_logging(rank: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RankFilter(rank))
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s [rank %(rank)s] %(name)s: %(message)s", "%H:%M:%S")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(os.environ.get("TRAINFLOW_LOG_LEVEL", "INFO").upper())
    quiet_noisy_loggers()


def exit_code_for(exc: BaseException) -> int:
    """Permanent (1-127) or transient (>= 128) exit code for a failure."""
    import torch.distributed as dist

    if isinstance(exc, TrainflowError):
        return exc.exit_code
    if isinstance(exc, (dist.DistError, ConnectionError, TimeoutError)):
        return TRANSIENT_EXIT_CODE
    if isinstance(exc, RuntimeError) and any(h in str(exc).lower() for h in _TRANSIENT_HINTS):
        return TRANSIENT_EXIT_CODE  # gloo reports a vanished peer as a RuntimeError
    return UNEXPECTED_EXIT_CODE


def record_error(message: str) -> None:
    """The one-line reason, with its time, in the error file the elastic agent reads (when it gave one)."""
    path = os.environ.get("TORCHELASTIC_ERROR_FILE")
    if path:
        with open(path, "w") as out:
            json.dump({"message": message, "timestamp": int(time.time())}, out)


def main(config_json: str) -> NoReturn:
    """Train, then exit with 0 or the exit code that says what kind of failure it was."""
    faulthandler.enable()  # a crash in native code still leaves a Python stack in the worker's log
    setup_worker_logging(os.environ.get("RANK", "?"))
    from trainflow.training.config import TrainConfig
    from trainflow.training.loop import run_worker

    try:
        config = TrainConfig.from_json(config_json)
        set_title(worker_title(os.environ.get("RANK", "?"), os.environ.get("WORLD_SIZE", "?"), job_name(config)))
        run_worker(config)
    except Exception as exc:
        code = exit_code_for(exc)
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if code == UNEXPECTED_EXIT_CODE:
            log.exception("training failed")
        else:
            log.error("%s", message)
        record_error(f"{type(exc).__name__}: {message}" if not isinstance(exc, TrainflowError) else message)
        # Exit inside the handler: unwinding would free the DDP reducer and its gloo process group while this
        # thread holds the interpreter lock, and a gloo thread still finishing the failed all-reduce needs that
        # lock to drop its Python state: both wait forever (seen when a peer's node vanished mid-step).
        finish(code)
    finish(0)


def job_name(config: TrainConfig) -> str:
    """What a worker's title calls its job: the train dir's last folder (a workflow's name, in a pipeline)."""
    return config.train_dir.rstrip("/").rsplit("/", 1)[-1] or config.train_dir


def finish(code: int) -> NoReturn:
    """Flush the curves (tracking on), the logs, and exit with `code`, skipping the interpreter's teardown."""
    flush_before_exit()  # os._exit skips atexit, where the sink would send its last second of points
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    # Gloo threads still referenced by torch objects can abort the teardown (std::terminate) after
    # the work is done and saved, which the agent would take for a crash.
    os._exit(code)


def run_forked(environ: dict[str, str], config_json: str) -> NoReturn:
    """A worker forked from the fork server: the agent's environment for its rank, then `main`."""
    os.setsid()  # its own session, as torch starts workers: a terminal's Ctrl-C goes to the agent, which stops them
    os.environ.clear()
    os.environ.update(environ)
    main(config_json)
