"""The world a training process joins, from exactly what TFJob, PyTorchJob and torchrun set."""

from __future__ import annotations

import json

import pytest

from trainflow.training import ClusterSpec, NonTrainer, TrainingError, cluster_from_env


def tf_config(task_type: str, index: int, cluster: dict[str, list[str]] | None = None) -> dict[str, str]:
    cluster = cluster or {
        "chief": ["myjob-chief-0.default.svc:2222"],
        "worker": ["myjob-worker-0.default.svc:2222", "myjob-worker-1.default.svc:2222"],
        "ps": ["myjob-ps-0.default.svc:2222", "myjob-ps-1.default.svc:2222"],
        "evaluator": ["myjob-evaluator-0.default.svc:2222"],
    }
    return {
        "TF_CONFIG": json.dumps(
            {"cluster": cluster, "task": {"type": task_type, "index": index}, "environment": "cloud"}
        )
    }


def test_no_cluster_variables_means_local_workers() -> None:
    spec = cluster_from_env({}, workers=3)
    assert isinstance(spec, ClusterSpec)
    assert (spec.source, spec.nnodes, spec.node_rank, spec.nproc_per_node, spec.world_size) == ("local", 1, 0, 3, 3)
    assert spec.rdzv_backend == "c10d" and spec.master_addr == "127.0.0.1"


def test_local_run_needs_at_least_one_worker() -> None:
    with pytest.raises(TrainingError, match="--workers"):
        cluster_from_env({}, workers=0)


def test_tfjob_chief_is_rank_zero_and_the_master() -> None:
    spec = cluster_from_env(tf_config("chief", 0))
    assert isinstance(spec, ClusterSpec)
    assert (spec.source, spec.nnodes, spec.node_rank, spec.world_size) == ("tf_config", 3, 0, 3)
    assert (spec.master_addr, spec.master_port, spec.rdzv_backend) == ("myjob-chief-0.default.svc", 2222, "static")


def test_every_node_of_a_world_derives_the_same_rendezvous_id() -> None:
    ids = {cluster_from_env(tf_config(t, i)).rdzv_id for t, i in (("chief", 0), ("worker", 0), ("worker", 1))}  # type: ignore[union-attr]
    assert len(ids) == 1 and ids != {""}
    assert len({cluster_from_env(pytorchjob_env(rank=r)).rdzv_id for r in range(3)}) == 1  # type: ignore[union-attr]


def test_tfjob_workers_follow_the_chief_in_index_order() -> None:
    ranks = [cluster_from_env(tf_config("worker", i)).node_rank for i in (0, 1)]  # type: ignore[union-attr]
    assert ranks == [1, 2]


def test_tfjob_without_chief_makes_worker_zero_the_master() -> None:
    cluster = {"worker": ["job-worker-0.ns.svc:2222", "job-worker-1.ns.svc:2222"], "ps": ["job-ps-0.ns.svc:2222"]}
    first, second = (cluster_from_env(tf_config("worker", i, cluster)) for i in (0, 1))
    assert isinstance(first, ClusterSpec) and isinstance(second, ClusterSpec)
    assert (first.node_rank, second.node_rank, first.world_size) == (0, 1, 2)
    assert (second.master_addr, second.master_port) == ("job-worker-0.ns.svc", 2222)


def test_tfjob_master_is_the_older_name_of_chief() -> None:
    cluster = {"master": ["job-master-0.ns.svc:2222"], "worker": ["job-worker-0.ns.svc:2222"]}
    spec = cluster_from_env(tf_config("worker", 0, cluster))
    assert isinstance(spec, ClusterSpec)
    assert (spec.node_rank, spec.world_size, spec.master_addr) == (1, 2, "job-master-0.ns.svc")


@pytest.mark.parametrize("task_type", ["ps", "evaluator"])
def test_tfjob_ps_and_evaluator_do_not_train(task_type: str) -> None:
    spec = cluster_from_env(tf_config(task_type, 0))
    assert isinstance(spec, NonTrainer)
    assert "does not train" in spec.reason and f"{task_type}:0" in spec.reason


def test_tfjob_task_missing_from_its_cluster_is_a_clear_error() -> None:
    with pytest.raises(TrainingError, match="worker:5 is not in its cluster spec") as info:
        cluster_from_env(tf_config("worker", 5))
    assert 1 <= info.value.exit_code <= 127


def test_malformed_tf_config_is_a_permanent_error() -> None:
    with pytest.raises(TrainingError, match="TF_CONFIG is not valid") as info:
        cluster_from_env({"TF_CONFIG": "{not json"})
    assert 1 <= info.value.exit_code <= 127


def pytorchjob_env(rank: int, nnodes: int = 3, nproc: int = 1) -> dict[str, str]:
    """What training-operator v1.9 sets on the `pytorch` container of a PyTorchJob."""
    return {
        "MASTER_ADDR": "myjob-master-0",
        "MASTER_PORT": "23456",
        "WORLD_SIZE": str(nnodes * nproc),
        "RANK": str(rank),
        "PET_MASTER_ADDR": "myjob-master-0",
        "PET_MASTER_PORT": "23456",
        "PET_NNODES": str(nnodes),
        "PET_NPROC_PER_NODE": str(nproc),
        "PET_NODE_RANK": str(rank),
        "PYTHONUNBUFFERED": "1",
    }


def test_pytorchjob_worker_rank_is_its_node_rank() -> None:
    spec = cluster_from_env(pytorchjob_env(rank=2))
    assert isinstance(spec, ClusterSpec)
    assert (spec.source, spec.nnodes, spec.node_rank, spec.nproc_per_node) == ("pytorchjob", 3, 2, 1)
    assert (spec.master_addr, spec.master_port, spec.rdzv_backend) == ("myjob-master-0", 23456, "static")


def test_pytorchjob_world_is_nodes_times_procs_per_node() -> None:
    spec = cluster_from_env(pytorchjob_env(rank=1, nnodes=2, nproc=4))
    assert isinstance(spec, ClusterSpec)
    assert (spec.world_size, spec.first_rank, spec.nproc_per_node) == (8, 4, 4)


def test_plain_torch_distributed_variables_without_pet_count_one_process_per_node() -> None:
    env = {"MASTER_ADDR": "10.0.0.1", "MASTER_PORT": "29500", "WORLD_SIZE": "2", "RANK": "1"}
    spec = cluster_from_env(env)
    assert isinstance(spec, ClusterSpec)
    assert (spec.nnodes, spec.node_rank, spec.world_size, spec.master_port) == (2, 1, 2, 29500)


def test_master_port_defaults_to_the_operators_23456() -> None:
    spec = cluster_from_env({"MASTER_ADDR": "m", "WORLD_SIZE": "1", "RANK": "0"})
    assert isinstance(spec, ClusterSpec) and spec.master_port == 23456


def test_elastic_pytorchjob_uses_its_c10d_rendezvous() -> None:
    env = {
        **pytorchjob_env(rank=0, nnodes=4),
        "PET_NNODES": "2:4",
        "PET_RDZV_BACKEND": "c10d",
        "PET_RDZV_ENDPOINT": "myjob-worker-0:29400",
        "PET_RDZV_ID": "myjob",
    }
    spec = cluster_from_env(env)
    assert isinstance(spec, ClusterSpec)
    assert (spec.rdzv_backend, spec.master_addr, spec.master_port, spec.rdzv_id) == (
        "c10d",
        "myjob-worker-0",
        29400,
        "myjob",
    )
    assert (spec.min_nodes, spec.nnodes) == (2, 4)


def test_rank_outside_the_world_is_a_clear_error() -> None:
    with pytest.raises(TrainingError, match="outside a world"):
        cluster_from_env(pytorchjob_env(rank=3, nnodes=3))


def test_non_integer_world_size_is_a_clear_error() -> None:
    with pytest.raises(TrainingError, match="WORLD_SIZE='two' is not an integer"):
        cluster_from_env({"MASTER_ADDR": "m", "WORLD_SIZE": "two", "RANK": "0"})
