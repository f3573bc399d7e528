"""Fixtures for multi-node tests: clusters of network namespaces, built and always removed.

    pods = pytorchjob_pods("myjob", workers=2)  # names and environment as the operator sets them
    cluster = make_cluster(nodes_for(pods))  # a node per pod, answering to its Service's names
    running = start_pods(cluster, pods, trainflow("train", ...), base_env(), tmp_path)
    cluster.cut("myjob-worker-1")  # or restore(node), kill(node), pids(node), run(node, argv, env)
    codes = wait_all(cluster, running, timeout=60)

Where namespaces cannot be made (not root, no CAP_NET_ADMIN, no iproute2) the tests skip with the
reason, except in CI (CI=true), where that is a failure: CI is root and must run them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping

import pytest

from tests.multinode.netns import Cluster, unavailable_reason

MakeCluster = Callable[[Mapping[str, Iterable[str]]], Cluster]


@pytest.fixture(scope="session")
def netns_available() -> None:
    reason = unavailable_reason()
    if reason is None:
        return
    if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
        pytest.fail(f"multi-node tests cannot run in CI: {reason}", pytrace=False)
    pytest.skip(f"multi-node tests need network namespaces: {reason}")


def _factory() -> tuple[MakeCluster, Callable[[], None]]:
    clusters: list[Cluster] = []

    def make(nodes: Mapping[str, Iterable[str]]) -> Cluster:
        cluster = Cluster(nodes)
        clusters.append(cluster)
        cluster.start()
        return cluster

    def close_all() -> None:
        for cluster in reversed(clusters):
            cluster.close()

    return make, close_all


@pytest.fixture
def make_cluster(netns_available: None) -> Iterator[MakeCluster]:
    """Build clusters (hostname -> other names) for one test; all removed after it, passed or failed."""
    make, close_all = _factory()
    try:
        yield make
    finally:
        close_all()


@pytest.fixture(scope="module")
def make_module_cluster(netns_available: None) -> Iterator[MakeCluster]:
    """`make_cluster` for clusters a module's tests share."""
    make, close_all = _factory()
    try:
        yield make
    finally:
        close_all()
