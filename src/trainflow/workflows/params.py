"""Validate and complete a pipeline's parameters before anything runs.

Each parameter is checked against its declared type (see trainflow.pipelines.params); the rules
below add what the built-in pipelines' parameters mean: names that become Kubernetes objects, a
model name the server takes, a model factory, URLs and an S3 endpoint.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

from trainflow.pipelines import Pipeline, PipelineError
from trainflow.serving.errors import ServingError
from trainflow.serving.names import check_model_name as serving_model_name
from trainflow.storage import StorageError, canonical_url
from trainflow.workflows.errors import WorkflowError

_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_MODEL_FACTORY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*")
# A region as S3 and S3-compatible stores name them (us-east-1, eu-central-1, garage, default).
_REGION = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
_HOST = r"([A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?"
_ENDPOINT_URL = re.compile(rf"https?://{_HOST}(/[A-Za-z0-9._~%/-]*)?")
_ENDPOINT_HOST = re.compile(_HOST)
BUILTIN_MODELS = ("cnn", "mlp")  # training's built-ins; workflows may not import training (torch)
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
    if len(value) > 63 or not _DNS_LABEL.fullmatch(value):
        raise WorkflowError(
            f"{what} '{value}' is not a DNS-1123 label: use at most 63 lowercase letters, digits or '-', "
            "starting and ending with a letter or digit"
        )
    return value


def check_model_name(value: str) -> str:
    """A model name the server will take (as TF Serving does): checked at submit, not when serve-model starts."""
    try:
        return serving_model_name(value)
    except ServingError as exc:
        raise WorkflowError(f"parameter model-name: {exc.message}") from None


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
    _check_builtin_meanings(values)
    for key in _URLS:
        if values.get(key):
            try:
                values[key] = canonical_url(values[key])
            except StorageError as exc:
                raise WorkflowError(f"parameter {key}: {exc}") from None
    _check_endpoints(values)
    if values.get("s3-endpoint") and not values.get("aws-endpoint-url"):
        host = values["s3-endpoint"]
        values["aws-endpoint-url"] = host if "://" in host else f"https://{host}"
    return values


def _check_endpoints(values: Mapping[str, str]) -> None:
    """The object store's endpoint and region: an http(s) URL, a host (or URL) and a region name."""
    if values.get("aws-endpoint-url") and not _ENDPOINT_URL.fullmatch(values["aws-endpoint-url"]):
        raise WorkflowError(
            f"parameter aws-endpoint-url '{values['aws-endpoint-url']}' must be http(s)://HOST[:PORT][/PATH]"
        )
    endpoint = values.get("s3-endpoint", "")
    if endpoint and not (_ENDPOINT_URL.fullmatch(endpoint) or _ENDPOINT_HOST.fullmatch(endpoint)):
        raise WorkflowError(f"parameter s3-endpoint '{endpoint}' must be HOST[:PORT] or http(s)://HOST[:PORT]")
    region = values.get("aws-region", "")
    if region and not _REGION.fullmatch(region):
        raise WorkflowError(f"parameter aws-region '{region}' is not a region name (e.g. us-east-1)")


def _check_builtin_meanings(values: Mapping[str, str]) -> None:
    """What the built-in pipelines' parameters must also be, beyond their types."""
    if "model-learning-rate" in values:
        _positive_float("model-learning-rate", values["model-learning-rate"])
    if "model-name" in values:
        check_model_name(values["model-name"])
    if values.get("namespace"):
        check_dns_label(values["namespace"], "namespace")
    if values.get("model"):
        _model_factory(values["model"])


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


def _positive_float(key: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise WorkflowError(f"parameter {key} must be a number, not '{raw}'") from None
    if not (math.isfinite(value) and value > 0):
        raise WorkflowError(f"parameter {key} must be a finite number greater than 0 (e.g. 0.01), not {raw}")
    return value


def _model_factory(raw: str) -> str:
    if raw not in BUILTIN_MODELS and not _MODEL_FACTORY.fullmatch(raw):
        raise WorkflowError(
            f"parameter model '{raw[:100]}' is neither {' nor '.join(BUILTIN_MODELS)} nor "
            "module:attr (e.g. mypkg.models:build)"
        )
    return raw
