"""Schema validation for generated manifests: the official CRD and strict core schemas in ../shared/schemas."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import pytest

SCHEMAS = Path(__file__).resolve().parents[3].parent / "shared" / "schemas"
DEFINITIONS_URI = "https://kubernetes.io/api/_definitions.json"
CRD_FILES = {
    "Workflow": [
        "argoproj.io_Workflow_v1alpha1.openapiv3.json",
        "argoproj.io_Workflow_v1alpha1.argo-v3.7.18.openapiv3.json",
    ],
    "CronWorkflow": ["argoproj.io_CronWorkflow_v1alpha1.openapiv3.json"],
    "PyTorchJob": ["kubeflow.org_PyTorchJob_v1.openapiv3.json"],
    "TFJob": ["kubeflow.org_TFJob_v1.openapiv3.json"],
    "TrainJob": ["trainer.kubeflow.org_TrainJob_v1alpha1.openapiv3.json"],
    "InferenceService": ["serving.kserve.io_InferenceService_v1beta1.openapiv3.json"],
    "Experiment": ["kubeflow.org_Experiment_v1beta1.openapiv3.json"],
}
STRICT_FILES = {
    "Deployment": "deployment-apps-v1.json",
    "Service": "service-v1.json",
    "PersistentVolumeClaim": "persistentvolumeclaim-v1.json",
}
STRICT_DEFS = {
    "ServiceAccount": "io.k8s.api.core.v1.ServiceAccount",
    "Role": "io.k8s.api.rbac.v1.Role",
    "RoleBinding": "io.k8s.api.rbac.v1.RoleBinding",
    "PodTemplateSpec": "io.k8s.api.core.v1.PodTemplateSpec",
    "Container": "io.k8s.api.core.v1.Container",
}


@cache
def _registry() -> Any:
    from referencing import Registry, Resource

    definitions = json.loads((SCHEMAS / "k8s-v1.31.0-local-strict" / "_definitions.json").read_text())
    return Registry().with_resource(DEFINITIONS_URI, Resource.from_contents(definitions))


@cache
def _validators(kind: str) -> list[Any]:
    from jsonschema import Draft7Validator, Draft202012Validator

    if kind in CRD_FILES:
        return [Draft7Validator(json.loads((SCHEMAS / "extracted" / name).read_text())) for name in CRD_FILES[kind]]
    if kind in STRICT_FILES:
        schema = json.loads((SCHEMAS / "k8s-v1.31.0-local-strict" / STRICT_FILES[kind]).read_text())
    else:
        schema = {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$ref": f"{DEFINITIONS_URI}#/$defs/{STRICT_DEFS[kind]}",
        }
    return [Draft202012Validator(schema, registry=_registry())]


def schema_errors(obj: dict[str, Any], kind: str | None = None) -> list[str]:
    """Every violation of `obj` against the official schema of its kind (or of `kind`)."""
    found = []
    for validator in _validators(kind or obj["kind"]):
        found += [
            f"{kind or obj['kind']} {'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in validator.iter_errors(obj)
        ]
    return found


@pytest.fixture
def validate() -> Callable[..., list[str]]:
    """schema_errors, skipping the test where ../shared/schemas is absent."""
    if not SCHEMAS.is_dir():
        pytest.skip(f"schemas not found at {SCHEMAS} (they live in the shared checkout next to the repo)")
    return schema_errors


# The serving tests' real model files and server (the port-forward tests predict through a real one).
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "serving"))
