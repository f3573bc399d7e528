"""What the Kubeflow training operator (v1.9) gives each pod of a job: its name, its DNS names, its environment.

PyTorchJob (`pkg/controller.v1/pytorch/envvar.go`, `elastic.go`): every container gets
PYTHONUNBUFFERED=1 and PET_NPROC_PER_NODE; with a Master replica also MASTER_ADDR=`<job>-master-0`,
MASTER_PORT (the `pytorchjob-port` container port, 23456 by default), PET_MASTER_ADDR/PORT,
WORLD_SIZE (replicas x procs per node), RANK and PET_NODE_RANK (master 0, worker i -> i + 1) and
PET_NNODES (replicas); with an elasticPolicy instead PET_RDZV_ENDPOINT (`<job>-worker-0:<port>`),
PET_RDZV_BACKEND, PET_NNODES=`min:max` and, when set, PET_MAX_RESTARTS and PET_RDZV_ID, and no
MASTER_ADDR, WORLD_SIZE or RANK when there is no Master.
TFJob (`pkg/controller.v1/tensorflow`): TF_CONFIG listing every replica as
`<job>-<type>-<i>.<namespace>.svc:<tfjob-port>` (2222 by default) and the pod's own task.

A pod's hostname is its name; the operator's headless Service of the same name makes
`<pod>`, `<pod>.<namespace>.svc` and `<pod>.<namespace>.svc.cluster.local` resolve to it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

PYTORCHJOB_PORT = 23456
TFJOB_PORT = 2222


@dataclass(frozen=True)
class Pod:
    """One replica: `name` is its hostname and Service name; `env` what the operator sets."""

    name: str
    replica_type: str
    index: int
    env: dict[str, str] = field(default_factory=dict)


def service_names(name: str, namespace: str = "default") -> tuple[str, ...]:
    """The names a Service (or a pod's headless Service) answers to inside the cluster."""
    return (name, f"{name}.{namespace}", f"{name}.{namespace}.svc", f"{name}.{namespace}.svc.cluster.local")


def pytorchjob_pods(job: str, workers: int, nproc_per_node: int = 1, port: int = PYTORCHJOB_PORT) -> list[Pod]:
    """Master + `workers` Workers, as the operator starts them for a PyTorchJob without elasticPolicy."""
    nnodes = 1 + workers
    master = {
        "MASTER_ADDR": f"{job}-master-0",
        "MASTER_PORT": str(port),
        "PET_MASTER_ADDR": f"{job}-master-0",
        "PET_MASTER_PORT": str(port),
    }
    pods = []
    for replica_type, index, rank in [("master", 0, 0)] + [("worker", i, i + 1) for i in range(workers)]:
        env = {
            "PYTHONUNBUFFERED": "1",
            **master,
            "WORLD_SIZE": str(nnodes * nproc_per_node),
            "RANK": str(rank),
            "PET_NODE_RANK": str(rank),
            "PET_NNODES": str(nnodes),
            "PET_NPROC_PER_NODE": str(nproc_per_node),
        }
        pods.append(Pod(f"{job}-{replica_type}-{index}", replica_type, index, env))
    return pods


def elastic_pytorchjob_pods(
    job: str,
    min_replicas: int,
    max_replicas: int,
    max_restarts: int | None = None,
    nproc_per_node: int = 1,
    port: int = PYTORCHJOB_PORT,
) -> list[Pod]:
    """`max_replicas` Workers and no Master, as the operator starts a PyTorchJob with an elasticPolicy (c10d)."""
    env = {
        "PYTHONUNBUFFERED": "1",
        "PET_RDZV_ENDPOINT": f"{job}-worker-0:{port}",
        "PET_RDZV_BACKEND": "c10d",
        "PET_NNODES": f"{min_replicas}:{max_replicas}",
        "PET_NPROC_PER_NODE": str(nproc_per_node),
    }
    if max_restarts is not None:
        env["PET_MAX_RESTARTS"] = str(max_restarts)
    return [Pod(f"{job}-worker-{i}", "worker", i, dict(env)) for i in range(max_replicas)]


def tfjob_pods(job: str, replicas: dict[str, int], namespace: str = "default", port: int = TFJOB_PORT) -> list[Pod]:
    """Every replica of a TFJob (`replicas`: type -> count, e.g. {"worker": 3, "ps": 2}) with its TF_CONFIG."""
    cluster = {
        kind: [f"{job}-{kind}-{i}.{namespace}.svc:{port}" for i in range(count)] for kind, count in replicas.items()
    }
    return [
        Pod(
            f"{job}-{kind}-{i}",
            kind,
            i,
            {
                "PYTHONUNBUFFERED": "1",
                "TF_CONFIG": json.dumps(
                    {"cluster": cluster, "task": {"type": kind, "index": i}, "environment": "cloud"}
                ),
            },
        )
        for kind, count in replicas.items()
        for i in range(count)
    ]
