"""torch's elastic agent with this node's workers forked from the fork server (see `worker_server`).

The agent is torchrun's LocalElasticAgent with two changes: a permanent failure is not restarted,
and the workers are forks of the fork server instead of fresh interpreters. They are watched the
way torch watches its Popen workers (SubprocessContext): every worker that failed by the time it
is looked at is reported, with its exit code or signal and its error file; the others are stopped
(the agent's signal, then SIGKILL after `timeout`) and waited for. A restart forks new workers.

The server reports how each of its workers ended; a server that ended first (killed, or signalled
with the step's process group, which the workers, each in a session of its own, are not in) makes
them all look ended while they still run. So the agent signals and waits for the workers
themselves, by pid and start time (psutil), and asks the server only for their exit codes.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import sys
import time
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from multiprocessing.process import BaseProcess
from typing import Any

import psutil
from torch.distributed.elastic.agent.server.api import WorkerGroup
from torch.distributed.elastic.agent.server.local_elastic_agent import LocalElasticAgent
from torch.distributed.elastic.multiprocessing import LogsSpecs
from torch.distributed.elastic.multiprocessing.api import PContext, RunProcsResult
from torch.distributed.elastic.multiprocessing.errors import ProcessFailure

from trainflow.training.worker_server import START_METHOD

log = logging.getLogger(__name__)

# 1 is what Python exits with after an unexpected exception; restarting that is torchrun's default.
NO_RESTART_CODES = range(2, 128)


class ForkedWorkers(PContext):
    """This node's workers as forks of the fork server; each runs `entrypoint(environ, *args)`."""

    def __init__(
        self,
        name: str,
        entrypoint: Callable[..., Any],
        args: dict[int, tuple],
        envs: dict[int, dict[str, str]],
        logs_specs: LogsSpecs,
    ) -> None:
        super().__init__(name, entrypoint, args, envs, logs_specs)  # adds TORCHELASTIC_ERROR_FILE to envs
        self._processes: dict[int, BaseProcess] = {}
        self._handles: dict[int, psutil.Process] = {}
        self._running: set[int] = set()
        self._failures: dict[int, ProcessFailure] = {}

    def _start(self) -> None:
        context = multiprocessing.get_context(START_METHOD)
        with _main_script_not_rerun():
            for local_rank in range(self.nprocs):
                # A Popen'd worker inherits the launcher's environment as it is now; the server's is as it was.
                environ = {**os.environ, **self.envs[local_rank]}
                process = context.Process(  # type: ignore[attr-defined]
                    target=self.entrypoint, args=(environ, *self.args[local_rank]), name=f"{self.name}-{local_rank}"
                )
                process.start()
                self._processes[local_rank] = process
                try:
                    self._handles[local_rank] = psutil.Process(process.pid)
                except psutil.NoSuchProcess:
                    pass  # it has ended already; its exit code says how
        self._running = set(self._processes)

    def _capture_failures(self) -> None:
        for local_rank in sorted(self._running):
            process = self._processes[local_rank]
            if process.exitcode is None:
                continue
            self._running.discard(local_rank)
            if process.exitcode != 0:  # failed or signalled
                self._failures[local_rank] = ProcessFailure(
                    local_rank=local_rank,
                    pid=process.pid or 0,
                    exitcode=process.exitcode,
                    error_file=self.error_files[local_rank],
                )

    def _poll(self) -> RunProcsResult | None:
        self._capture_failures()
        if self._running and not self._failures:
            return None
        self.close()  # stops those still running when one failed
        self._capture_failures()  # and records how they ended, as torch does
        result = RunProcsResult(failures=self._failures, stdouts=self.stdouts, stderrs=self.stderrs)
        if not result.is_failed():
            result.return_values = dict.fromkeys(range(self.nprocs))
        return result

    def pids(self) -> dict[int, int]:
        return {local_rank: process.pid or 0 for local_rank, process in self._processes.items()}

    def _close(self, death_sig: signal.Signals, timeout: int = 30) -> None:
        left = self._signal_and_wait(list(self._handles.values()), death_sig, timeout)
        if left:
            log.warning("workers still running %d s after %s: sending SIGKILL", timeout, death_sig.name)
            self._signal_and_wait(left, signal.SIGKILL, timeout)
        for process in self._processes.values():
            process.join(1.0)  # the fork server's report of how each one ended

    @staticmethod
    def _signal_and_wait(handles: list[psutil.Process], sig: signal.Signals, timeout: float) -> list[psutil.Process]:
        """Send `sig` to the workers still running; those still running after `timeout` s."""
        for handle in handles:
            try:
                handle.send_signal(sig)  # psutil checks it is still the process we started, not a reused pid
            except psutil.Error:
                continue
        deadline = time.monotonic() + timeout
        while (left := [h for h in handles if _running(h)]) and time.monotonic() < deadline:
            time.sleep(0.05)
        return left


def _running(handle: psutil.Process) -> bool:
    """Still running: a zombie has ended (its parent, the server, may be gone and never reap it)."""
    try:
        return handle.is_running() and handle.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


@contextmanager
def _main_script_not_rerun() -> Iterator[None]:
    """Start processes without multiprocessing's re-run of the launcher's `__main__` script in each of them.

    A worker needs nothing from it (its entry point is importable), and a user's script that calls `train()`
    without an `if __name__ == "__main__":` guard would otherwise start training again in every worker.
    """
    script = sys.modules["__main__"]
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        sys.modules["__main__"] = script


class ForkingAgent(LocalElasticAgent):
    """Forks the workers from the fork server and stops restarting once a worker failed with a permanent code."""

    restarts_used: int | None = None  # set when it gave up early

    def _start_workers(self, worker_group: WorkerGroup) -> dict[int, Any]:
        spec = worker_group.spec
        envs = {worker.local_rank: self._worker_env(worker_group, worker) for worker in worker_group.workers}
        args = {worker.local_rank: tuple(spec.args) for worker in worker_group.workers}
        if self._logs_specs is None or not callable(spec.entrypoint):
            raise TypeError("ForkingAgent needs logs specs and a function entry point")
        self._pcontext = ForkedWorkers(spec.role, spec.entrypoint, args, envs, self._logs_specs)
        self._pcontext.start()
        return self._pcontext.pids()

    def _worker_env(self, worker_group: WorkerGroup, worker: Any) -> dict[str, str]:
        """The variables torch's agent gives a worker (LocalElasticAgent._start_workers)."""
        spec = worker_group.spec
        env = {
            "RANK": str(worker.global_rank),
            "GROUP_RANK": str(worker_group.group_rank),
            "ROLE_RANK": str(worker.role_rank),
            "ROLE_NAME": spec.role,
            "LOCAL_WORLD_SIZE": str(spec.local_world_size),
            "WORLD_SIZE": str(worker.world_size),
            "GROUP_WORLD_SIZE": str(worker_group.group_world_size),
            "ROLE_WORLD_SIZE": str(worker.role_world_size),
            "MASTER_ADDR": str(worker_group.master_addr),
            "MASTER_PORT": str(worker_group.master_port),
            "TORCHELASTIC_RESTART_COUNT": str(spec.max_restarts - self._remaining_restarts),
            "TORCHELASTIC_MAX_RESTARTS": str(spec.max_restarts),
            "TORCHELASTIC_RUN_ID": spec.rdzv_handler.get_run_id(),
            "TORCHELASTIC_USE_AGENT_STORE": str(spec.rdzv_handler.use_agent_store),
            "TORCH_NCCL_ASYNC_ERROR_HANDLING": os.getenv("TORCH_NCCL_ASYNC_ERROR_HANDLING", "1"),
        }
        self._set_local_rank_env(env, worker.local_rank, spec)  # type: ignore[arg-type]  # LOCAL_RANK (and GPUs)
        return env

    def _monitor_workers(self, worker_group: WorkerGroup) -> Any:
        result = super()._monitor_workers(worker_group)
        if result.is_failed() and any(f.exitcode in NO_RESTART_CODES for f in result.failures.values()):
            self.restarts_used = worker_group.spec.max_restarts - self._remaining_restarts
            self._remaining_restarts = 0
        return result

    def restarts(self) -> int:
        """Worker group restarts spent so far."""
        if self.restarts_used is not None:
            return self.restarts_used
        return self._worker_group.spec.max_restarts - self._remaining_restarts
