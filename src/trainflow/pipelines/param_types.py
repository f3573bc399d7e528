"""What a parameter's value means beyond its text: one checker per declared type, the only home of each rule.

A pipeline declares the meaning (`Param("ns", type="dns-label")`); every backend then checks a value
the same way before anything runs. A checker takes the value's text and returns its canonical form,
or raises PipelineError in one line naming the parameter. Values are matched whole (`fullmatch`).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from trainflow.pipelines.errors import PipelineError
from trainflow.pipelines.k8s_names import LABEL_RULE, SUBDOMAIN_RULE, is_dns_label, is_dns_subdomain
from trainflow.training.choices import MODEL_CHOICES

_MODEL_FACTORY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*")
# A region as S3 and S3-compatible stores name them (us-east-1, eu-central-1, garage, default).
_REGION = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
_HOST = r"([A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?"
_ENDPOINT_URL = re.compile(rf"https?://{_HOST}(/[A-Za-z0-9._~%/-]*)?")
_ENDPOINT_HOST = re.compile(_HOST)
# An image reference as docker parses it: [registry[:port]/]path[:tag][@digest], lowercase path components.
IMAGE_REFERENCE = re.compile(
    r"(?:[A-Za-z0-9.-]+(?::[0-9]+)?/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@[a-z0-9]+:[a-f0-9]{32,})?"
)
IMAGE_EXAMPLE = "registry.example.com/ml/trainflow:0.1.0"
TRAINING_RUNTIME = "training-runtime"  # the type of a parameter naming a Kubeflow ClusterTrainingRuntime
# A Kubernetes resource.Quantity that is not negative: 500m, 2, 1.5, 4Gi, 1e3.
# An MLflow experiment name: printable (no control character: those are refused for every value), trimmed.
_EXPERIMENT = re.compile(r"\S(.{0,254}\S)?")
QUANTITY = re.compile(r"([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+|Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?")


def _url(name: str, text: str) -> str:
    from trainflow.storage import StorageError, canonical_url  # the URL rules are storage's

    try:
        return canonical_url(text)
    except StorageError as exc:
        raise PipelineError(f"parameter {name}: {exc.message}") from None


def _dns_label(name: str, text: str) -> str:
    if not is_dns_label(text):
        raise PipelineError(f"parameter {name} '{text}' is not a DNS-1123 label: use {LABEL_RULE}")
    return text


def _training_runtime(name: str, text: str) -> str:
    if not is_dns_label(text):
        raise PipelineError(
            f"parameter {name} '{text}' is not a ClusterTrainingRuntime name (e.g. torch-distributed): use {LABEL_RULE}"
        )
    return text


def _search_space(name: str, text: str) -> str:
    from trainflow.pipelines.search_space import canonical, parse_search_space  # the ranges' one home

    return canonical(parse_search_space(text, f"parameter {name}"))


def _quantity(name: str, text: str) -> str:
    if not QUANTITY.fullmatch(text):
        raise PipelineError(
            f"parameter {name} '{text[:100]}' is not a Kubernetes quantity: give e.g. 500m or 2 (cpu), 4Gi (memory)"
        )
    return text


def _secret_name(name: str, text: str) -> str:
    if not is_dns_subdomain(text):
        raise PipelineError(f"parameter {name} '{text}' is not a valid name: {SUBDOMAIN_RULE}")
    return text


def _model_name(name: str, text: str) -> str:
    from trainflow.serving.errors import ServingError  # the names a model server takes are serving's rule
    from trainflow.serving.names import check_model_name

    try:
        return check_model_name(text)
    except ServingError as exc:
        raise PipelineError(f"parameter {name}: {exc.message}") from None


def _model_factory(name: str, text: str) -> str:
    if text not in MODEL_CHOICES and not _MODEL_FACTORY.fullmatch(text):
        raise PipelineError(
            f"parameter {name} '{text[:100]}' is neither {', '.join(MODEL_CHOICES)} nor "
            "module:attr (e.g. mypkg.models:build)"
        )
    return text


def _image(name: str, text: str) -> str:
    if not IMAGE_REFERENCE.fullmatch(text):
        raise PipelineError(f"parameter {name} '{text}' is not an image reference: give e.g. {IMAGE_EXAMPLE}")
    return text


def _region(name: str, text: str) -> str:
    if not _REGION.fullmatch(text):
        raise PipelineError(f"parameter {name} '{text}' is not a region name (e.g. us-east-1)")
    return text


def _endpoint(name: str, text: str) -> str:
    if not _ENDPOINT_URL.fullmatch(text):
        raise PipelineError(f"parameter {name} '{text}' must be http(s)://HOST[:PORT][/PATH]")
    return text


def _host(name: str, text: str) -> str:
    if not (_ENDPOINT_URL.fullmatch(text) or _ENDPOINT_HOST.fullmatch(text)):
        raise PipelineError(f"parameter {name} '{text}' must be HOST[:PORT] or http(s)://HOST[:PORT]")
    return text


def _tracking_uri(name: str, text: str) -> str:
    from trainflow.tracking.uri import has_credentials, is_parameter_uri  # the tracking URI's one parser

    if has_credentials(text):
        raise PipelineError(
            f"parameter {name} holds a user name or password: give the URI without them and the credentials in "
            "MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD (on Kubernetes: -p mlflow-secret=SECRET)"
        )
    if not is_parameter_uri(text):
        raise PipelineError(
            f"parameter {name} '{text[:100]}' is not a tracking URI: give http(s)://HOST:PORT of an MLflow server "
            "(or file:// / sqlite://)"
        )
    return text


def _experiment(name: str, text: str) -> str:
    if not _EXPERIMENT.fullmatch(text):
        raise PipelineError(
            f"parameter {name} '{text[:100]}' is not an MLflow experiment name: 1 to 256 characters, "
            "no leading or trailing space"
        )
    return text


def _registry_model(name: str, text: str) -> str:
    from trainflow.tracking.errors import TrackingError
    from trainflow.tracking.registry import parse_model_ref  # the registry URI's one home

    try:
        ref = parse_model_ref(text)
    except TrackingError as exc:
        raise PipelineError(f"parameter {name}: {exc.message}") from None
    if ref is None:
        raise PipelineError(
            f"parameter {name} '{text[:100]}' is not a registry URI: give models:/NAME@ALIAS or models:/NAME/VERSION"
        )
    return text


# type -> its checker; what `Param(type=...)` and the YAML schema's `type` accept beyond the plain types
CHECKERS: dict[str, Callable[[str, str], str]] = {
    "url": _url,
    "dns-label": _dns_label,
    "secret-name": _secret_name,
    "tracking-secret": _secret_name,  # a Secret with MLFLOW_TRACKING_URI (and credentials) every pod reads
    "tracking-uri": _tracking_uri,  # an MLflow tracking server, no credentials in it: wins over MLFLOW_TRACKING_URI
    "tracking-experiment": _experiment,  # the MLflow experiment: wins over MLFLOW_EXPERIMENT_NAME
    "registry-model": _registry_model,  # models:/NAME@ALIAS or models:/NAME/VERSION in the MLflow registry
    "model-name": _model_name,
    "model-factory": _model_factory,
    "image": _image,
    "region": _region,
    "endpoint": _endpoint,
    "host": _host,
    "search-space": _search_space,
    TRAINING_RUNTIME: _training_runtime,
    "quantity": _quantity,
}
MEANINGS = tuple(CHECKERS)


def check_meaning(type_: str, name: str, text: str) -> str:
    """`text` checked as a value of the meaning `type_`, in canonical form."""
    return CHECKERS[type_](name, text)


def filled_from(type_: str, text: str) -> str:
    """The value another parameter's `text` gives a parameter of `type_` that falls back to it.

    An `endpoint` falling back to a `host` takes https:// when the host names no scheme (the example's S3_ENDPOINT).
    """
    if type_ == "endpoint" and text and "://" not in text:
        return f"https://{text}"
    return text
