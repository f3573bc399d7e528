"""A service step as a KServe InferenceService: trainflow's image as a custom predictor speaking the V2 protocol.

KServe (serverless through Knative, or raw deployment) routes one HTTP port to the predictor's container,
named `kserve-container`: the step's first port, which for the model server is its REST port serving
the V2 routes (`/v2/models/...`, `/v2/health/ready`). Probes name that port by number, as Knative wants.
"""

from __future__ import annotations

from typing import Any

from trainflow.pipelines import Service
from trainflow.workflows.errors import WorkflowError
from trainflow.workflows.kubernetes import resources as k8s

API_VERSION = "serving.kserve.io/v1beta1"
CONTAINER = "kserve-container"
READY = "status.modelStatus.states.activeModelState == Loaded"
FAILED = "status.modelStatus.states.activeModelState == FailedToLoad"


def _probe(probe: Any, port: int) -> dict[str, Any]:
    return {"httpGet": {"path": probe.path, "port": port}, "periodSeconds": 5}


def inference_service(target: k8s.Target, step: Service, run: k8s.ContainerCommand) -> dict[str, Any]:
    """The InferenceService serving `step` (same name, labels and pod settings as its Deployment would have)."""
    if not step.ports:
        raise WorkflowError(f"--kserve {step.name}: the step declares no port for KServe to route to")
    port = step.ports[0]
    main = k8s.container(target, CONTAINER, step, run)
    main["ports"] = [{"name": "http1", "containerPort": port.container_port, "protocol": "TCP"}]
    if step.probe is not None:
        main["readinessProbe"] = _probe(step.probe, step.port(step.probe.port).container_port)
    if step.liveness is not None:
        main["livenessProbe"] = _probe(step.liveness, step.port(step.liveness.port).container_port)
    predictor: dict[str, Any] = {"minReplicas": target.options.replicas.get(step.name, 1), "containers": [main]}
    predictor.update({k: v for k, v in k8s.pod_spec(target, []).items() if k != "containers"})
    return {
        "apiVersion": API_VERSION,
        "kind": "InferenceService",
        "metadata": {
            "name": k8s.service_name(target, step),
            "namespace": target.namespace,
            "labels": k8s.service_labels(target, step),
        },
        "spec": {"predictor": predictor},
    }
