"""The world of a Kubeflow Trainer v2 TrainJob pod, from exactly what the torch runtime's plugin sets.

The plugin (kubeflow/trainer pkg/runtime/framework/plugins/torch) sets PET_NNODES (numNodes),
PET_NPROC_PER_NODE (numProcPerNode: trainflow asks for 1), PET_NODE_RANK (the Job completion index),
PET_MASTER_ADDR (`<job>-node-0-0.<job>`) and PET_MASTER_PORT (29400), and no MASTER_ADDR, RANK or WORLD_SIZE.
"""

from __future__ import annotations

import pytest

from trainflow.training import ClusterSpec, TrainingError, cluster_from_env


def trainjob_env(rank: int, nodes: int = 3, job: str = "myjob", **more: str) -> dict[str, str]:
    return {
        "PET_NNODES": str(nodes),
        "PET_NPROC_PER_NODE": "1",
        "PET_NODE_RANK": str(rank),
        "PET_MASTER_ADDR": f"{job}-node-0-0.{job}",
        "PET_MASTER_PORT": "29400",
        **more,
    }


@pytest.mark.parametrize("rank", [0, 1, 2])
def test_trainjob_node_rank_and_master_come_from_the_pet_variables(rank: int) -> None:
    spec = cluster_from_env(trainjob_env(rank))
    assert isinstance(spec, ClusterSpec)
    assert (spec.source, spec.nnodes, spec.node_rank, spec.nproc_per_node) == ("trainjob", 3, rank, 1)
    assert (spec.master_addr, spec.master_port, spec.rdzv_backend) == ("myjob-node-0-0.myjob", 29400, "static")


def test_every_trainjob_node_derives_the_same_rendezvous_id() -> None:
    ids = {cluster_from_env(trainjob_env(r)).rdzv_id for r in range(3)}  # type: ignore[union-attr]
    assert len(ids) == 1


def test_trainjob_master_port_defaults_to_the_trainer_containers_29400() -> None:
    env = trainjob_env(0)
    del env["PET_MASTER_PORT"]
    spec = cluster_from_env(env)
    assert isinstance(spec, ClusterSpec) and spec.master_port == 29400


def test_trainjob_auto_processes_per_node_count_one_launcher() -> None:
    spec = cluster_from_env(trainjob_env(1, PET_NPROC_PER_NODE="auto"))
    assert isinstance(spec, ClusterSpec) and spec.nproc_per_node == 1 and spec.world_size == 3


def test_a_pytorchjobs_master_addr_wins_over_pet_master_addr() -> None:
    spec = cluster_from_env(trainjob_env(0, MASTER_ADDR="other-master-0", MASTER_PORT="23456"))
    assert isinstance(spec, ClusterSpec)
    assert (spec.source, spec.master_addr, spec.master_port) == ("pytorchjob", "other-master-0", 23456)


def test_trainjob_rank_outside_its_world_is_a_clear_error() -> None:
    with pytest.raises(TrainingError, match="node rank 3 is outside a world of 3 nodes"):
        cluster_from_env(trainjob_env(3))


def test_trainjob_bad_master_port_is_a_clear_error() -> None:
    with pytest.raises(TrainingError, match="PET_MASTER_PORT='x' is not an integer"):
        cluster_from_env(trainjob_env(0, PET_MASTER_PORT="x"))
