"""A run's MLflow settings from its typed parameters, for every backend.

A `tracking-uri` parameter (built-ins: `-p mlflow-tracking-uri=`, `--tracking-uri`) and a `tracking-experiment`
parameter (`-p mlflow-experiment=`) stand for MLFLOW_TRACKING_URI and MLFLOW_EXPERIMENT_NAME and win over them:
where steps run on this machine, the submitting command and the runner see them as those variables, so tracking
works exactly as with the variables set. A `registry-model` parameter (`model-deploy`'s `-p model-uri=`) is
looked up in the registry before anything runs. Parameters are found by their type, never by their name.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from trainflow.pipelines import Pipeline
from trainflow.tracking import EXPERIMENT_ENV, URI_ENV, tracking_uri
from trainflow.tracking.errors import TrackingError
from trainflow.workflows.errors import WorkflowError

URI_TYPE = "tracking-uri"
EXPERIMENT_TYPE = "tracking-experiment"
SECRET_TYPE = "tracking-secret"
REGISTRY_TYPE = "registry-model"
_VARIABLES = {URI_TYPE: URI_ENV, EXPERIMENT_TYPE: EXPERIMENT_ENV}


def tracking_variables(types: Mapping[str, str], values: Mapping[str, str]) -> dict[str, str]:
    """The variables a run's parameters set (MLFLOW_TRACKING_URI, MLFLOW_EXPERIMENT_NAME); an empty value sets none."""
    return {_VARIABLES[t]: values[n] for n, t in types.items() if t in _VARIABLES and values.get(n)}


def pods_track(types: Mapping[str, str], values: Mapping[str, str]) -> bool:
    """Whether the run's pods get a tracking server of their own (a Secret or a URI parameter) on a cluster."""
    return any(t in (SECRET_TYPE, URI_TYPE) and values.get(n) for n, t in types.items())


@contextmanager
def applied(variables: Mapping[str, str]) -> Iterator[None]:
    """While the block runs, `variables` set in this process's environment (as they were before, afterwards)."""
    before = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def registry_models(types: Mapping[str, str], values: Mapping[str, str]) -> list[tuple[str, str]]:
    """The run's `registry-model` parameters that name a model, with their values."""
    return [(n, values[n]) for n, t in types.items() if t == REGISTRY_TYPE and values.get(n)]


def check_server(types: Mapping[str, str], variables: Mapping[str, str]) -> None:
    """When a parameter names the tracking server: TrackingError (exit 2) before anything runs unless it answers."""
    uri = variables.get(URI_ENV)
    if not uri:
        return
    from trainflow.tracking.client import client, reason_of  # loads mlflow: only with tracking on

    name = next(n for n, t in types.items() if t == URI_TYPE)
    try:
        client(uri).search_experiments(max_results=1)
    except Exception as exc:  # noqa: BLE001 - any failure to talk to the server is the same answer to the user
        raise TrackingError(
            f"cannot reach the MLflow tracking server at {uri} (-p {name}): {reason_of(exc)}; start it, or give "
            f"another -p {name}=URI (--tracking-uri)"
        ) from None


def check_registry_models(types: Mapping[str, str], values: Mapping[str, str], elsewhere: bool) -> None:
    """TrackingError (exit 2) before anything runs for a `registry-model` value the registry does not hold, or with
    no tracking server to look it up in (`elsewhere`: the run's pods get one from the cluster, which they ask)."""
    refs = registry_models(types, values)
    if not refs or elsewhere:
        return
    uri = tracking_uri()
    if not uri:
        option = next((f"-p {n}=URI" for n, t in types.items() if t == URI_TYPE), "")
        given = f"give {option} (or --tracking-uri URI), or set {URI_ENV}" if option else f"set {URI_ENV}"
        name, value = refs[0]
        raise TrackingError(f"-p {name}={value} is in the MLflow registry, but no tracking server is set: {given}")
    from trainflow.tracking.client import reachable  # loads mlflow: only where a registry model is named
    from trainflow.tracking.registry import parse_model_ref, resolve

    reachable(uri)
    for _, value in refs:
        ref = parse_model_ref(value)
        if ref is not None:
            resolve(uri, ref)


def with_tracking_uri(pipeline: Pipeline, values: Mapping[str, str], uri: str | None) -> dict[str, str]:
    """`values` with `--tracking-uri URI` given as the pipeline's `tracking-uri` parameter; WorkflowError (exit 2)
    when the pipeline has none or `-p` gave that parameter another value."""
    if not uri:
        return dict(values)
    name = next((p.name for p in pipeline.params if p.type == URI_TYPE), None)
    if name is None:
        raise WorkflowError(
            f"--tracking-uri: {pipeline.name} has no parameter of type {URI_TYPE}: declare one "
            f'(Param(NAME, "", type="{URI_TYPE}")), or set {URI_ENV} instead'
        )
    if values.get(name) and values[name] != uri:
        raise WorkflowError(f"--tracking-uri and -p {name}= give two tracking servers: give one of them")
    return {**values, name: uri}
