"""Threads are sized by the cores this process may use (its CPU affinity), not by the host's core count."""

from __future__ import annotations

import os

import pytest

from trainflow.cores import usable_cores
from trainflow.serving.server import ServerConfig
from trainflow.training.worker_server import threads_per_worker


@pytest.fixture
def two_of_sixty_four(monkeypatch: pytest.MonkeyPatch) -> None:
    """A container given 2 cores of a 64-core host."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {5, 6}, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 64)


def test_a_process_limited_to_two_cores_of_a_big_host_counts_two(two_of_sixty_four: None) -> None:
    assert usable_cores() == 2
    assert threads_per_worker(2) == 1 and threads_per_worker(1) == 2


def test_the_servers_batch_threads_follow_the_usable_cores(two_of_sixty_four: None) -> None:
    config = ServerConfig(model_name="m", base_url="/nowhere", max_batch_size=8)
    batching = config.repository_configs()[0].batching
    assert batching is not None and batching.threads == 2
