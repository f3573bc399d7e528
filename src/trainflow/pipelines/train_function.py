"""A user's training function on N workers: the launcher sets up the world, each worker calls the function.

Locally `--workers` processes start under torch's elastic agent (as `trainflow train` does); in a
PyTorchJob or TFJob pod the world comes from the environment. Every worker joins the process group
(gloo for CPU tensors, NCCL for CUDA ones, each worker on its own GPU when there are GPUs) before the
function is called; rank 0's returned dict becomes the outputs.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import tempfile
import traceback
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainflow.errors import TRANSIENT_EXIT_CODE
from trainflow.pipelines.errors import PipelineError
from trainflow.tracking import flush_before_exit
from trainflow.training.agent import RDZV_TIMEOUT_SECONDS
from trainflow.training.cluster import NonTrainer, cluster_from_env
from trainflow.training.worker import exit_code_for, record_error

if TYPE_CHECKING:
    from torch.distributed.elastic.multiprocessing.errors import ProcessFailure

_TORCH_DISTRIBUTED = f"{os.sep}torch{os.sep}distributed{os.sep}"


def run_training_function(function: str, inputs: dict[str, str], workers: int) -> dict[str, Any] | None:
    """Run `function` on this node's workers; rank 0's outputs on the node hosting it, else None."""
    from torch.distributed.elastic.multiprocessing import DefaultLogsSpecs
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    cluster = cluster_from_env(None, workers)
    if isinstance(cluster, NonTrainer):
        return None
    rdzv_configs: dict[str, Any] = {"timeout": RDZV_TIMEOUT_SECONDS}
    if cluster.rdzv_backend == "static":
        rdzv_configs["rank"] = cluster.node_rank
    with tempfile.TemporaryDirectory(prefix="trainflow-fn-") as tmp:
        config = LaunchConfig(
            min_nodes=cluster.min_nodes or cluster.nnodes,
            max_nodes=cluster.nnodes,
            nproc_per_node=cluster.nproc_per_node,
            run_id=cluster.rdzv_id or f"trainflow-{uuid.uuid4().hex[:12]}",
            rdzv_backend=cluster.rdzv_backend,
            rdzv_endpoint=f"{cluster.master_addr}:{cluster.master_port}",
            rdzv_configs=rdzv_configs,
            max_restarts=0,
            monitor_interval=0.2,
            start_method="spawn",
            logs_specs=DefaultLogsSpecs(log_dir=tmp),  # torch's own logs go away with the folder
        )
        result = Path(tmp) / "result.json"
        try:
            elastic_launch(config, sys.executable)(
                "-u", "-m", "trainflow.pipelines.train_function", function, json.dumps(inputs), str(result)
            )
        except ChildFailedError as exc:
            rank, failure = _cause(exc.failures)
            reason = failure.message if failure.error_file != "<N/A>" else f"exit code {failure.exitcode}"
            code = failure.exitcode if 1 <= failure.exitcode < 128 else TRANSIENT_EXIT_CODE
            raise PipelineError(f"{function} failed on rank {rank}: {reason}", exit_code=code) from None
        if cluster.node_rank != 0:
            return None
        return json.loads(result.read_text()) if result.exists() else {}


def _cause(failures: dict[int, ProcessFailure]) -> tuple[int, ProcessFailure]:
    """The failure to report: a rank's own before one that only lost its peer, then the earliest, then the lowest.

    A rank's own failure is a permanent exit code, or a signal other than the agent's SIGTERM (killed for memory,
    a crash); the transient code and SIGTERM are what a rank gets when another one failed first.
    """
    return min(failures.items(), key=lambda item: (_blame(item[1].exitcode), item[1].timestamp, item[0]))


def _blame(code: int) -> int:
    if 1 <= code < 128:
        return 0
    return 1 if code < 0 and code != -signal.SIGTERM else 2


def _worker(function: str, inputs_json: str, result_path: str) -> int:
    import torch
    import torch.distributed as dist

    from trainflow.pipelines.calling import call_function, import_function

    if torch.cuda.is_available():  # CUDA tensors go over NCCL, CPU ones over gloo: the function decides where it works
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")) % torch.cuda.device_count())
        dist.init_process_group("cpu:gloo,cuda:nccl")
    else:
        dist.init_process_group("gloo")
    try:
        outputs = call_function(
            import_function(function), json.loads(inputs_json), function, exit_returns=dist.get_world_size() == 1
        )
        if dist.get_rank() == 0:
            Path(result_path).write_text(json.dumps(outputs))
        dist.barrier()
    except PipelineError as exc:  # the function failed: its traceback is on stderr
        message, code = exc.message, exc.exit_code
        lost = _lost_peer(exc.__context__)
    except Exception as exc:  # noqa: BLE001 - the closing barrier lost its peer, or the outputs could not be written
        message, code = f"{type(exc).__name__}: {exc}", 1
        lost = _lost_peer(exc)
    else:
        dist.destroy_process_group()
        return 0
    # No destroy_process_group: the connections close as the rank exits. Closing them here would tell its peers
    # first, and one that exits on that before this rank would have the agent stop it and report the lost peer.
    print(f"error: {message}", file=sys.stderr, flush=True)
    record_error(message)
    return TRANSIENT_EXIT_CODE if lost and dist.get_world_size() > 1 else code  # a lost peer: its failure is the cause


def _lost_peer(exc: BaseException | None) -> bool:
    """Whether `exc`, or what it was raised from, is torch.distributed failing to reach a peer (a user's own
    ConnectionError or timeout is the function's failure, not a lost peer)."""
    import torch.distributed as dist

    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        raised = traceback.extract_tb(exc.__traceback__)
        in_torch = bool(raised) and _TORCH_DISTRIBUTED in raised[-1].filename
        if isinstance(exc, dist.DistError) or (in_torch and exit_code_for(exc) == TRANSIENT_EXIT_CODE):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


if __name__ == "__main__":
    try:
        code = _worker(*sys.argv[1:4])
    finally:
        flush_before_exit()  # os._exit skips atexit, where the sink would send the function's last second of points
    sys.stdout.flush()
    os._exit(code)
