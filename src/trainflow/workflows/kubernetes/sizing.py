"""What a container requests: compile-time sizes as requests and limits, submit-time ones (parameters) as requests.

A size picked per run (`argo submit -p train-memory=8Gi`) places the pod on a node big enough for it without
throttling or memory-killing it at a guess; a compile-time `--resources` size is both (Guaranteed QoS).
GPUs, an extended resource, are always a limit equal to the request.
"""

from __future__ import annotations

from typing import Any

from trainflow.pipelines import Resources
from trainflow.workflows.errors import WorkflowError

DIST_BACKEND_VAR = "TRAINFLOW_DIST_BACKEND"  # nccl when the pod requests GPUs, else gloo
GPU = "nvidia.com/gpu"


def resources_field(wanted: Resources) -> dict[str, Any] | None:
    """A container's `resources` for `wanted` (fields holding a placeholder are submit-time), or None."""
    sized = {k: str(v) for k, v in (("cpu", wanted.cpu), ("memory", wanted.memory)) if v}
    limits = {k: v for k, v in sized.items() if "{{" not in v}
    requests = dict(sized)
    if wanted.gpu:
        limits[GPU] = requests[GPU] = str(wanted.gpu)
    if not requests:
        return None
    return {"requests": requests, **({"limits": limits} if limits else {})}


def dist_backend_env(wanted: Resources) -> list[dict[str, Any]]:
    """nccl when the pod requests GPUs, gloo when not; nothing (the trainer picks) when a parameter sets the count."""
    if isinstance(wanted.gpu, str):
        return []
    return [{"name": DIST_BACKEND_VAR, "value": "nccl" if wanted.gpu else "gloo"}]


def check_fixed(step: str, wanted: Resources) -> None:
    """A container template's resources are checked before Argo fills them: no parameter may size them."""
    if any("{{" in str(v) for v in (wanted.cpu, wanted.memory, wanted.gpu)):
        raise WorkflowError(
            f"step {step}: resources from parameters size Train and Service steps only (Argo checks a "
            "container step's before filling them in): give values, or --resources at compile time"
        )
