"""A user's training function on N workers: the launcher sets up the world, each worker calls the function.

Locally `--workers` processes start under torch's elastic agent (as `trainflow train` does); in a
PyTorchJob or TFJob pod the world comes from the environment. Every worker joins the process group
(gloo for CPU tensors, NCCL for CUDA ones, each worker on its own GPU when there are GPUs) before the
function is called; rank 0's returned dict becomes the outputs.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainflow.errors import TRANSIENT_EXIT_CODE
from trainflow.pipelines.errors import PipelineError
from trainflow.tracking import flush_before_exit
from trainflow.training.agent import RDZV_TIMEOUT_SECONDS
from trainflow.training.cluster import NonTrainer, cluster_from_env
from trainflow.training.worker import exit_code_for

if TYPE_CHECKING:
    from torch.distributed.elastic.multiprocessing.errors import ProcessFailure


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
    """The failure to report: a rank's own (a permanent code) before a peer's that lost it, then the earliest."""
    return min(failures.items(), key=lambda item: (not 1 <= item[1].exitcode < 128, item[1].timestamp, item[0]))


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
        outputs = call_function(import_function(function), json.loads(inputs_json), function)
        if dist.get_rank() == 0:
            Path(result_path).write_text(json.dumps(outputs))
        dist.barrier()
    except PipelineError as exc:
        print(f"error: {exc.message}", file=sys.stderr, flush=True)
        _record_error(exc.message)
        # No destroy_process_group: the connections close as the rank exits. Closing them here would tell its peers
        # first, and one that exits on that before this rank would have the agent stop it and report the lost peer.
        if exc.__context__ is not None and exit_code_for(exc.__context__) == TRANSIENT_EXIT_CODE:
            return TRANSIENT_EXIT_CODE  # the function's collective lost a peer: that peer's failure is the cause
        return exc.exit_code
    dist.destroy_process_group()
    return 0


def _record_error(message: str) -> None:
    path = os.environ.get("TORCHELASTIC_ERROR_FILE")
    if path:
        Path(path).write_text(json.dumps({"message": message}))


if __name__ == "__main__":
    try:
        code = _worker(*sys.argv[1:4])
    finally:
        flush_before_exit()  # os._exit skips atexit, where the sink would send the function's last second of points
    sys.stdout.flush()
    os._exit(code)
