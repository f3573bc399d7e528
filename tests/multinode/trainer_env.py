"""What Kubeflow Trainer v2 (v2.3, torch runtime) and JobSet give each pod of a TrainJob: its names and environment.

JobSet runs the runtime's `node` replicated job as an indexed Job: pod i's hostname is `<job>-node-0-<i>` and
the JobSet's headless Service (named after the JobSet, which is named after the TrainJob) is its subdomain, so
`<job>-node-0-<i>.<job>` (and `.<namespace>.svc...`) resolve to it. The torch plugin
(pkg/runtime/framework/plugins/torch/torch.go) sets PET_NNODES (numNodes), PET_NPROC_PER_NODE
(numProcPerNode), PET_NODE_RANK (the Job completion index), PET_MASTER_ADDR (`<job>-node-0-0.<job>`) and
PET_MASTER_PORT (29400), besides the TrainJob's own `trainer.env`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tests.multinode.operator_env import Pod

TRAINER_PORT = 29400
HOST_PATHS = ("TRAINFLOW_HOME", "TRAINFLOW_OUTPUTS")  # paths on the cluster's volume, not this machine's


def trainjob_pods(job: Mapping[str, Any]) -> list[Pod]:
    """Every node of a compiled (and filled-in) TrainJob, with the env its trainer container gets."""
    name, trainer = job["metadata"]["name"], job["spec"]["trainer"]
    own = {e["name"]: e["value"] for e in trainer.get("env", []) if "value" in e and e["name"] not in HOST_PATHS}
    pods = []
    for index in range(trainer["numNodes"]):
        env = {
            **own,
            "PET_NNODES": str(trainer["numNodes"]),
            "PET_NPROC_PER_NODE": str(trainer.get("numProcPerNode", "auto")),
            "PET_NODE_RANK": str(index),
            "JOB_COMPLETION_INDEX": str(index),
            "PET_MASTER_ADDR": f"{name}-node-0-0.{name}",
            "PET_MASTER_PORT": str(TRAINER_PORT),
        }
        pods.append(Pod(f"{name}-node-0-{index}", "node", index, env))
    return pods


def jobset_names(job: str, pod: str, namespace: str = "default") -> tuple[str, ...]:
    """The names a pod answers to under the JobSet's headless Service."""
    sub = f"{pod}.{job}"
    return (pod, sub, f"{sub}.{namespace}", f"{sub}.{namespace}.svc", f"{sub}.{namespace}.svc.cluster.local")
