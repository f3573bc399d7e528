"""`trainflow compile`: the Kubernetes backend's dry run, as validated objects and YAML."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from trainflow.pipelines import Pipeline
from trainflow.workflows.kubernetes import render, resources, yamltext
from trainflow.workflows.kubernetes.options import SERVICE_ACCOUNT, ClusterOptions
from trainflow.workflows.kubernetes.strict import check_objects


def compile_pipeline(
    pipeline: Pipeline,
    given: Mapping[str, str],
    job_kind: str = "pytorchjob",
    memoize: bool = True,
    options: ClusterOptions | None = None,
) -> list[dict[str, Any]]:
    """The checked Argo Workflow that runs `pipeline` with parameters `given` (defaults filled in).

    `memoize` gives cacheable steps Argo's memoization (a ConfigMap cache); False always runs them.
    `options` add scheduling, pull secrets, resources, replicas and the cache volume's settings.
    """
    workflow = render.workflow(pipeline, render.complete_values(pipeline, given), job_kind, memoize, options)
    check_objects([workflow])
    return [workflow]


def compile_rbac(namespace: str = "default", account: str = SERVICE_ACCOUNT) -> list[dict[str, Any]]:
    """ServiceAccount, Role and RoleBinding the workflow's pods run as."""
    objects = resources.rbac(namespace, account)
    check_objects(objects)
    return objects


def to_yaml(objects: list[dict[str, Any]]) -> str:
    """Multi-document YAML, one document per object, fields in the order they were built."""
    return yamltext.dump_all(objects)
