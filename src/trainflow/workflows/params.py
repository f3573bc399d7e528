"""Validate and complete a pipeline's parameters before anything runs."""

from __future__ import annotations

import re
from collections.abc import Mapping

from trainflow.pipelines import Pipeline, PipelineError
from trainflow.storage import StorageError, canonical_url, parse_url
from trainflow.workflows.errors import WorkflowError

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_URLS = ("s3-data-url", "s3-train-base-url")


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
    if len(value) > 63 or not _DNS_LABEL.match(value):
        raise WorkflowError(
            f"{what} '{value}' is not a DNS-1123 label: use at most 63 lowercase letters, digits or '-', "
            "starting and ending with a letter or digit"
        )
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
    if "model-learning-rate" in values and not float(values["model-learning-rate"]) > 0:
        raise WorkflowError(f"parameter model-learning-rate must be greater than 0, not {values['model-learning-rate']}")
    for key in _URLS:
        if values.get(key):
            try:
                values[key] = canonical_url(values[key])
            except StorageError as exc:
                raise WorkflowError(f"parameter {key}: {exc}") from None
    if values.get("aws-endpoint-url"):
        loc = parse_url(values["aws-endpoint-url"]) if "://" in values["aws-endpoint-url"] else None
        if loc is None or loc.scheme not in ("http", "https"):
            raise WorkflowError(f"parameter aws-endpoint-url '{values['aws-endpoint-url']}' must be http(s)://HOST[:PORT]")
    if values.get("s3-endpoint") and not values.get("aws-endpoint-url"):
        host = values["s3-endpoint"]
        values["aws-endpoint-url"] = host if "://" in host else f"https://{host}"
    return values


def inherited_values(pipeline: Pipeline, given: Mapping[str, str], explicit: Mapping[str, str],
                     source: Mapping[str, str]) -> dict[str, str]:
    """`given` plus, for each parameter not in `explicit`, the value the source workflow ran with."""
    keep = {pipeline.name_param, pipeline.inherit_from}
    values = dict(given)
    for p in pipeline.params:
        if p.name not in explicit and p.name not in keep and p.name in source:
            values[p.name] = source[p.name]
    return values
