"""`trainflow train`: check the run, then start this node's workers under torch's elastic agent.

Locally the agent runs `--workers` processes with a c10d rendezvous on a free loopback port
(torchrun --standalone); on a cluster it joins the world `cluster_from_env` describes (static
rendezvous at the master, or the PyTorchJob's c10d endpoint). A failed worker makes the agent
restart the whole group, up to `max_restarts` times, and the group resumes from the latest
checkpoint.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trainflow.datasets import Dataset, load_dataset
from trainflow.errors import TRANSIENT_EXIT_CODE
from trainflow.progress import METRICS_FILE
from trainflow.storage import ObjectNotFound, StorageError, StorageOptions, join_url, open_store
from trainflow.training.choices import AUTO_MODEL
from trainflow.training.cluster import ClusterSpec, NonTrainer, cluster_from_env
from trainflow.training.config import TrainConfig
from trainflow.training.errors import TrainingError
from trainflow.training.model_spec import why_chosen
from trainflow.training.worker_server import start_worker_server, threads_per_worker

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainResult:
    """What a finished `train` reports; `metrics` is None on nodes that do not host rank 0, or for non-trainers.

    `ran_rank_0`: this node's workers included global rank 0 (on an elastic world every node has node rank 0
    before the rendezvous, so only this says which one held rank 0).
    """

    trained: bool
    cluster: ClusterSpec | NonTrainer
    metrics: dict[str, Any] | None
    metrics_url: str
    ran_rank_0: bool = False


def preflight(config: TrainConfig) -> None:
    """Fail fast, before any worker starts, on what no restart can fix: options, data, model, train dir."""
    _check_model_and_train_dir(config, _check_options_and_data(config))


def _check_options_and_data(config: TrainConfig) -> Dataset:
    """The checks that need no torch: the options, the dataset and its labels against the batch size."""
    config.validate()
    dataset = load_dataset(Path(config.data_dir))  # DatasetError names the folder and the fix
    _check_labels(config, dataset)
    examples = len(dataset.train)
    if config.batch_size > examples:
        raise TrainingError(
            f"--batch-size {config.batch_size} is more than the {examples} training examples: use a smaller batch"
        )
    return dataset


def _check_model_and_train_dir(config: TrainConfig, dataset: Dataset) -> None:
    from trainflow.training.models import check_model  # torch: imported here, not by `import launcher`

    check_model(config.model_spec(dataset.descriptor))
    if config.model == AUTO_MODEL:
        log.info("%s", why_chosen(dataset.descriptor.input_shape))
    options = StorageOptions.from_env(config.aws_endpoint_url, config.aws_region)
    try:
        open_store(config.train_dir, options).ensure_container()  # a local dir is made now, or refused in one line
    except StorageError as exc:
        raise TrainingError(f"--train-dir {config.train_dir}: {exc}", exit_code=exc.exit_code) from None


def _check_labels(config: TrainConfig, dataset: Dataset) -> None:
    """Every label a class index of the descriptor: cross-entropy would fail mid-run (or on one rank) otherwise."""
    classes = dataset.descriptor.num_classes
    for name, split in (("train", dataset.train), ("test", dataset.test)):
        labels = np.asarray(split.labels)
        if labels.dtype.kind not in "iu":
            raise TrainingError(f"--data-dir {config.data_dir}: the {name} labels are {labels.dtype}, not integers")
        if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= classes):
            bad = int(labels.min()) if int(labels.min()) < 0 else int(labels.max())
            raise TrainingError(
                f"--data-dir {config.data_dir}: {name} label {bad} is outside the {classes} classes of its "
                f"descriptor (0 to {classes - 1}): sync the dataset again (trainflow data sync) to rebuild it"
            )


def _failure(exc: Any, restarts: int) -> TrainingError:
    """A ChildFailedError as one line with a permanent or transient exit code; a permanent failure wins."""
    permanent = sorted((f.timestamp, rank) for rank, f in exc.failures.items() if 1 <= f.exitcode < 128)
    rank, failure = (permanent[0][1], exc.failures[permanent[0][1]]) if permanent else exc.get_first_failure()
    code = failure.exitcode
    reason = (
        failure.message
        if failure.error_file != "<N/A>"
        # "<N/A>": the worker left no error file
        else (f"signal {-code}" if code < 0 else f"exit code {code}")
    )
    permanent = 1 <= code < 128
    what = "failed" if permanent else "was lost"
    after = f" after {restarts} restarts" if restarts else ""
    return TrainingError(
        f"training {what} on rank {rank}{after}: {reason}", exit_code=code if permanent else TRANSIENT_EXIT_CODE
    )


def _read_metrics(config: TrainConfig) -> dict[str, Any] | None:
    try:
        store = open_store(config.train_dir, StorageOptions.from_env(config.aws_endpoint_url, config.aws_region))
        return json.loads(store.read_bytes(METRICS_FILE))
    except (ObjectNotFound, ValueError):
        return None


def train(config: TrainConfig, workers: int = 1, env: Mapping[str, str] | None = None) -> TrainResult:
    """Train as this node of the world `env` describes (default os.environ), or `workers` local processes."""
    cluster = cluster_from_env(env, workers)
    metrics_url = join_url(config.train_dir, METRICS_FILE)
    if isinstance(cluster, NonTrainer):
        log.info("%s", cluster.reason)
        return TrainResult(False, cluster, None, metrics_url)
    dataset = _check_options_and_data(config)
    # The workers' imports (torch) run in the fork server from now on, while this process checks the model.
    start_worker_server(threads_per_worker(cluster.nproc_per_node))
    _check_model_and_train_dir(config, dataset)
    log.info(
        "node %d of %d (%s), %d worker process(es) here, world size %d, rendezvous %s at %s:%d",
        cluster.node_rank,
        cluster.nnodes,
        cluster.source,
        cluster.nproc_per_node,
        cluster.world_size,
        cluster.rdzv_backend,
        cluster.master_addr,
        cluster.master_port,
    )
    ranks = _run_agent(cluster, config)
    metrics = _read_metrics(config) if cluster.node_rank == 0 else None
    return TrainResult(True, cluster, metrics, metrics_url, 0 in ranks)


def _run_agent(cluster: ClusterSpec, config: TrainConfig) -> frozenset[int]:
    """The global ranks this node's workers finished as."""
    from torch.distributed import DistError
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.rendezvous.api import RendezvousError

    from trainflow.training.agent import run_agent
    from trainflow.training.worker import run_forked

    try:
        with tempfile.TemporaryDirectory(prefix="trainflow-agent-") as log_dir:
            outcome = run_agent(cluster, config, run_forked, (config.to_json(),), log_dir)
    except SignalException as exc:  # the agent has already stopped its workers
        raise TrainingError(
            f"training stopped by signal {int(exc.sigval)}: run it again to resume from the latest checkpoint",
            exit_code=TRANSIENT_EXIT_CODE,
        ) from None
    except (RendezvousError, DistError, TimeoutError, ConnectionError) as exc:
        raise TrainingError(
            f"rendezvous with {cluster.master_addr}:{cluster.master_port} failed "
            f"({type(exc).__name__}: {exc}): the other workers may not be up yet; retry",
            exit_code=TRANSIENT_EXIT_CODE,
        ) from None
    if outcome.failure is not None:
        raise _failure(outcome.failure, outcome.restarts)
    return outcome.global_ranks
