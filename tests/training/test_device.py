"""The pod's GPU request picks the process-group backend: NCCL with GPUs, gloo without (and as a fallback)."""

from __future__ import annotations

import logging

import pytest
import torch

from trainflow.training.loop import select_device


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the fallback on a machine without a GPU")
def test_nccl_requested_without_a_gpu_trains_on_cpu_with_gloo_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        backend, device = select_device(0, 1, "nccl")
    assert (backend, device.type) == ("gloo", "cpu")
    assert "NCCL was requested but 0 GPU(s) are visible for 1 workers" in caplog.text


def test_a_pod_that_asked_for_no_gpu_trains_with_gloo_on_cpu() -> None:
    backend, device = select_device(0, 1, "gloo")
    assert (backend, device.type) == ("gloo", "cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_nccl_requested_with_a_gpu_trains_on_it() -> None:
    backend, device = select_device(0, 1, "nccl")
    assert (backend, device.type) == ("nccl", "cuda")
