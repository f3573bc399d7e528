"""Validate and complete a pipeline's parameters before anything runs.

Each value is checked against its declared type (`trainflow.pipelines.params`, whose meanings say
what a URL, a Kubernetes name or a model name must be); this module adds what a run needs of any
pipeline: a name parameter whose value can name Kubernetes objects.
"""

from __future__ import annotations

from collections.abc import Mapping

from trainflow.pipelines import Pipeline, PipelineError
from trainflow.pipelines.k8s_names import LABEL_RULE, is_dns_label
from trainflow.workflows.errors import WorkflowError


def parse_assignments(pairs: tuple[str, ...] | list[str]) -> dict[str, str]:
    """`-p name=value` pairs into a dict; a pair without '=' is refused."""
    values: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise WorkflowError(f"bad parameter '{pair}': write -p NAME=VALUE")
        values[name.strip()] = value.strip()
    return values


def check_dns_label(value: str, what: str) -> str:
    """`value` if it is a DNS-1123 label, else one line saying what `what` must be."""
    if not is_dns_label(value):
        raise WorkflowError(f"{what} '{value}' is not a DNS-1123 label: use {LABEL_RULE}")
    return value


def resolve_params(pipeline: Pipeline, given: Mapping[str, str]) -> dict[str, str]:
    """The pipeline's defaults overlaid with `given`, each checked against its type; unknown names are refused."""
    try:
        values = pipeline.resolve(given)
    except PipelineError as exc:
        raise WorkflowError(exc.message) from None
    if pipeline.name_param is not None:
        name = values[pipeline.name_param]
        if not name:
            raise WorkflowError(f"{pipeline.name} needs -p {pipeline.name_param}=NAME")
        check_dns_label(name, pipeline.name_param)
        if pipeline.name_suffix:
            check_dns_label(name + pipeline.name_suffix, f"{pipeline.name_param} (+ '{pipeline.name_suffix}')")
    return values


def local_store_values(pipeline: Pipeline, values: Mapping[str, str], store: str) -> dict[str, str]:
    """`values` with each empty parameter that declares a `local_store` set to that folder of `store`."""
    filled = dict(values)
    for p in pipeline.params:
        if p.local_store and not filled.get(p.name):
            filled[p.name] = f"{store.rstrip('/')}/{p.local_store}"
    return filled


def inherited_values(
    pipeline: Pipeline, given: Mapping[str, str], explicit: Mapping[str, str], source: Mapping[str, str]
) -> dict[str, str]:
    """`given` plus, for each parameter not in `explicit`, the value the source workflow ran with."""
    keep = {pipeline.name_param, pipeline.inherit_from}
    values = dict(given)
    for p in pipeline.params:
        if p.name not in explicit and p.name not in keep and p.name in source:
            values[p.name] = source[p.name]
    return values


def run_name(pipeline: Pipeline, values: Mapping[str, str]) -> str | None:
    """The run's name: its name parameter's value plus the pipeline's suffix; None for a pipeline without one."""
    if pipeline.name_param is None:
        return None
    return f"{values[pipeline.name_param]}{pipeline.name_suffix}"
