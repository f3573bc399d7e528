"""Who trains with whom: the world a training process belongs to, read from what the platform sets.

Three sources, in this order:

- `TF_CONFIG` (TFJob): chief (or `master`) and workers train; the chief, else worker 0, is rank 0
  and its `host:port` is the rendezvous endpoint (the port convention is the TF server port of the
  address, 2222 on a TFJob). `ps` and `evaluator` tasks do not train.
- `MASTER_ADDR`/`MASTER_PORT`/`WORLD_SIZE`/`RANK`/`PET_*` (PyTorchJob, torchrun): `RANK` is the
  node rank; the world is nodes x processes per node, as torchrun counts it.
- `PET_NNODES`/`PET_NPROC_PER_NODE`/`PET_NODE_RANK`/`PET_MASTER_ADDR`/`PET_MASTER_PORT` alone (a Kubeflow
  Trainer v2 TrainJob on a torch runtime: the node rank is the pod's Job completion index, the master
  `<job>-node-0-0.<job>` on port 29400): the same static world, its address from the PET_ names.
- nothing: one node running `workers` local processes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass

from trainflow.training.errors import TrainingError

TF_TRAINER_TYPES = ("chief", "master", "worker")
TF_NON_TRAINER_TYPES = ("ps", "evaluator")
PYTORCHJOB_DEFAULT_PORT = 23456
TRAINJOB_DEFAULT_PORT = 29400  # Trainer v2's trainer container port (its torch plugin's PET_MASTER_PORT)


@dataclass(frozen=True)
class ClusterSpec:
    """One node's place in the world: `node_rank` of `nnodes`, each running `nproc_per_node` processes."""

    source: str  # "local", "tf_config", "pytorchjob" or "trainjob"
    nnodes: int
    node_rank: int
    nproc_per_node: int
    master_addr: str
    master_port: int  # 0: pick a free port (local runs)
    rdzv_backend: str = "static"  # "static" or "c10d"
    rdzv_id: str = ""  # every node of a world must use the same; empty: a fresh one (local runs)
    min_nodes: int | None = None  # elastic PyTorchJobs only

    @property
    def world_size(self) -> int:
        return self.nnodes * self.nproc_per_node

    @property
    def first_rank(self) -> int:
        """Global rank of this node's local rank 0."""
        return self.node_rank * self.nproc_per_node


@dataclass(frozen=True)
class NonTrainer:
    """A task that is part of the job but does not train (a TFJob `ps` or `evaluator`)."""

    task_type: str
    index: int

    @property
    def reason(self) -> str:
        return (
            f"TF_CONFIG task {self.task_type}:{self.index} does not train: parameter servers and "
            "evaluators have no role in data-parallel training, so this task exits successfully"
        )


def cluster_from_env(env: Mapping[str, str] | None = None, workers: int = 1) -> ClusterSpec | NonTrainer:
    """The world described by `env` (default: os.environ); without cluster variables, `workers` local processes."""
    env = os.environ if env is None else env
    if env.get("TF_CONFIG", "").strip():
        return _from_tf_config(env["TF_CONFIG"])
    if env.get("PET_NNODES") or env.get("MASTER_ADDR") or env.get("PET_MASTER_ADDR") or env.get("WORLD_SIZE"):
        return _from_pytorchjob(env)
    if workers < 1:
        raise TrainingError(f"--workers must be at least 1, got {workers}")
    return ClusterSpec(
        source="local",
        nnodes=1,
        node_rank=0,
        nproc_per_node=workers,
        master_addr="127.0.0.1",
        master_port=0,
        rdzv_backend="c10d",
    )


def _split_address(address: str, what: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise TrainingError(f"TF_CONFIG {what} address '{address}' is not host:port: fix the TFJob's cluster spec")
    return host, int(port)


def _parse_tf_config(text: str) -> tuple[dict[str, list[str]], str, int]:
    try:
        raw = json.loads(text)
        cluster = {str(k): [str(a) for a in v] for k, v in raw["cluster"].items()}
        task_type, index = str(raw["task"]["type"]), int(raw["task"]["index"])
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise TrainingError(
            f'TF_CONFIG is not valid ({exc!r}): expected {{"cluster": {{...}}, "task": {{"type": ..., "index": ...}}}}'
        ) from None
    return cluster, task_type, index


def _from_tf_config(text: str) -> ClusterSpec | NonTrainer:
    cluster, task_type, index = _parse_tf_config(text)
    if task_type in TF_NON_TRAINER_TYPES:
        return NonTrainer(task_type, index)
    if task_type not in TF_TRAINER_TYPES:
        raise TrainingError(
            f"TF_CONFIG task type '{task_type}' is unknown: expected one of "
            f"{', '.join(TF_TRAINER_TYPES + TF_NON_TRAINER_TYPES)}"
        )
    # Rank order: the chief (or the older `master`) first, then the workers by index.
    trainers = [(t, i, a) for t in TF_TRAINER_TYPES for i, a in enumerate(cluster.get(t, []))]
    if not trainers:
        raise TrainingError("TF_CONFIG lists no chief, master or worker: nothing can train")
    ranks = {(t, i): rank for rank, (t, i, _) in enumerate(trainers)}
    if (task_type, index) not in ranks:
        raise TrainingError(
            f"TF_CONFIG task {task_type}:{index} is not in its cluster spec "
            f"({', '.join(f'{t}:{i}' for t, i, _ in trainers)})"
        )
    host, port = _split_address(trainers[0][2], f"{trainers[0][0]}:0")
    return ClusterSpec(
        source="tf_config",
        nnodes=len(trainers),
        node_rank=ranks[(task_type, index)],
        nproc_per_node=1,
        master_addr=host,
        master_port=port,
        rdzv_backend="static",
        rdzv_id=_shared_id(host, port),
    )


def _shared_id(host: str, port: int) -> str:
    """A rendezvous id all nodes derive alike from what they all know: the master's address."""
    return f"trainflow-{host}-{port}"


def _int_var(env: Mapping[str, str], name: str, default: int | None = None) -> int:
    value = env.get(name)
    if value is None or value == "":
        if default is None:
            raise TrainingError(f"{name} is not set: a PyTorchJob/torchrun world needs it")
        return default
    try:
        return int(value)
    except ValueError:
        raise TrainingError(f"{name}='{value}' is not an integer") from None


def _nnodes(env: Mapping[str, str]) -> tuple[int, int | None]:
    """PET_NNODES is "N" or "MIN:MAX" (elastic); without it, WORLD_SIZE counts the nodes."""
    text = env.get("PET_NNODES", "").strip()
    if not text:
        return _int_var(env, "WORLD_SIZE", 1), None
    low, _, high = text.partition(":")
    try:
        return (int(high), int(low)) if high else (int(low), None)
    except ValueError:
        raise TrainingError(f"PET_NNODES='{text}' is not N or MIN:MAX") from None


def _nproc_per_node(env: Mapping[str, str]) -> int:
    text = env.get("PET_NPROC_PER_NODE", "").strip()
    if text in ("", "auto", "cpu", "gpu"):
        return 1
    return _int_var(env, "PET_NPROC_PER_NODE")


def _from_pytorchjob(env: Mapping[str, str]) -> ClusterSpec:
    nnodes, min_nodes = _nnodes(env)
    node_rank = _int_var(env, "PET_NODE_RANK", _int_var(env, "RANK", 0))
    nproc = _nproc_per_node(env)
    if not 0 <= node_rank < nnodes or nproc < 1:
        raise TrainingError(
            f"node rank {node_rank} is outside a world of {nnodes} nodes x {nproc} processes: "
            "check RANK/PET_NODE_RANK, PET_NNODES and PET_NPROC_PER_NODE"
        )
    trainjob = not env.get("MASTER_ADDR") and bool(env.get("PET_MASTER_ADDR"))
    addr = env.get("MASTER_ADDR") or env.get("PET_MASTER_ADDR") or "127.0.0.1"
    if trainjob:
        port = _int_var(env, "PET_MASTER_PORT", TRAINJOB_DEFAULT_PORT)
    else:
        port = _int_var(env, "MASTER_PORT", PYTORCHJOB_DEFAULT_PORT)
    backend = env.get("PET_RDZV_BACKEND", "").strip() or "static"
    if backend == "static":
        return ClusterSpec(
            source="trainjob" if trainjob else "pytorchjob",
            nnodes=nnodes,
            node_rank=node_rank,
            nproc_per_node=nproc,
            master_addr=addr,
            master_port=port,
            rdzv_id=_shared_id(addr, port),
        )
    endpoint = env.get("PET_RDZV_ENDPOINT", "").strip() or f"{addr}:{port}"
    host, _, rdzv_port = endpoint.rpartition(":")
    return ClusterSpec(
        source="pytorchjob",
        nnodes=nnodes,
        node_rank=node_rank,
        nproc_per_node=nproc,
        master_addr=host or addr,
        master_port=int(rdzv_port) if rdzv_port.isdigit() else port,
        rdzv_backend=backend,
        rdzv_id=env.get("PET_RDZV_ID", "").strip() or _shared_id(addr, port),
        min_nodes=min_nodes,
    )
