"""Where a run's things are, from what its steps declare (`trainflow.pipelines.roles`) and what they recorded.

The CLI, the dashboard and both backends ask here for a run's model server (REST and gRPC, the model name), its
TensorBoard, its train dirs, its dataset, its model version and the training steps that report progress. Nothing
here knows a step's or an output's name: a user's pipeline is read the way the built-in one is.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from trainflow.pipelines.refs import ItemRef, OutputRef, ParamRef, Ref, substitute
from trainflow.pipelines.roles import DATASET, GRPC, HTTP, METRIC, MODEL, MODEL_VERSION, REST, TENSORBOARD, TRAIN_DIR
from trainflow.workflows.backend import DONE, StepInfo, WorkflowInfo


@dataclass(frozen=True)
class ModelServer:
    """A step serving a model: its name, its port names, and where they listen on this machine (None on a cluster)."""

    step: str
    model_name: str
    rest_port: str | None = None
    grpc_port: str | None = None
    rest: str | None = None  # host:port
    grpc: str | None = None
    version: int | None = None

    @property
    def rest_url(self) -> str | None:
        return f"http://{self.rest}" if self.rest else None

    def address(self, protocol: str) -> str | None:
        """The host:port that speaks `protocol` (rest, grpc, v2-rest, v2-grpc)."""
        return self.grpc if protocol.endswith("grpc") else self.rest

    def port_for(self, protocol: str) -> str | None:
        """The name of the port that speaks `protocol` (what a cluster's Service calls it)."""
        return self.grpc_port if protocol.endswith("grpc") else self.rest_port


@dataclass(frozen=True)
class TensorBoard:
    """A step serving TensorBoard: its http port's name and, on this machine, its URL."""

    step: str
    port: str
    url: str | None = None


class _Missing(Exception):
    """A reference whose value the run has not recorded (yet)."""


def resolve(info: WorkflowInfo, template: str, item: str | None = None) -> str | None:
    """`template` with the run's parameter values and recorded outputs filled in; None while one is missing."""

    def value(ref: Ref) -> str:
        if isinstance(ref, ParamRef) and ref.name in info.params:
            return str(info.params[ref.name])
        if isinstance(ref, OutputRef):
            found = step_output(info, ref.step, ref.key)
            if found is not None:
                return found if isinstance(found, str) else json.dumps(found)
        if isinstance(ref, ItemRef) and item is not None:
            return item
        raise _Missing

    try:
        return substitute(template, value)
    except _Missing:
        return None


def step_output(info: WorkflowInfo, step: str, key: str) -> Any:
    """Output `key` of spec step `step`: its value, or the list of its fan-out items' values; None if unrecorded."""
    done = [s for s in instances(info, step) if s.status in DONE and key in s.outputs]
    if not done:
        return None
    if len(done) == 1 and done[0].name == step:
        return done[0].outputs[key]
    return [s.outputs[key] for s in done]


def instances(info: WorkflowInfo, step: str) -> list[StepInfo]:
    """The step itself, or its fan-out instances `step[i]`."""
    return [s for s in info.steps if s.name == step or (s.name.startswith(f"{step}[") and s.name.endswith("]"))]


def model_server(info: WorkflowInfo, up: bool = True) -> ModelServer | None:
    """The run's model server once it serves (any declared one unless `up`); None if the run serves no model."""
    declared = [s for s in info.steps if s.provides.get("serves") == MODEL]
    step = next(reversed([s for s in declared if s.status in DONE or not up]), None)
    if step is None:
        return None
    ports = step.provides.get("ports", {})
    rest, grpc = ports.get(REST), ports.get(GRPC)
    version = _kind_of(step, MODEL_VERSION)
    return ModelServer(
        step=step.name,
        model_name=resolve(info, str(step.provides.get("model_name", ""))) or "",
        rest_port=rest,
        grpc_port=grpc,
        rest=step.addresses.get(rest) if rest else None,
        grpc=step.addresses.get(grpc) if grpc else None,
        version=version if isinstance(version, int) else None,
    )


def serves_model(info: WorkflowInfo) -> bool:
    """True when a step of the run is declared to serve a model (whether it is up yet or not)."""
    return any(s.provides.get("serves") == MODEL for s in info.steps)


def tensorboard(info: WorkflowInfo) -> TensorBoard | None:
    """The run's TensorBoard once it is up."""
    step = next(reversed([s for s in info.steps if s.provides.get("serves") == TENSORBOARD and s.status in DONE]), None)
    if step is None:
        return None
    port = str(step.provides.get("ports", {}).get(HTTP, ""))
    address = step.addresses.get(port)
    return TensorBoard(step.name, port, f"http://{address}/" if address else None)


def training_steps(info: WorkflowInfo) -> list[StepInfo]:
    """The training steps (fan-out instances each), in the run's order: their progress is what training did."""
    return [s for s in info.steps if s.kind == "train"]


def train_dirs(info: WorkflowInfo) -> list[str]:
    """The train dirs the run's training steps declare and those steps wrote as outputs of kind train-dir, as far
    as the run has recorded them (each once)."""
    found = []
    for step in info.steps:
        template = step.provides.get("train_dir")
        if template:
            found.append(resolve(info, str(template)))  # a train dir naming {{item}} stays unresolved
        if step.status in DONE:
            written = _kind_of(step, TRAIN_DIR)
            found.append(str(written) if written else None)
    return list(dict.fromkeys(d for d in found if d))


def dataset(info: WorkflowInfo) -> str | None:
    """The synced dataset folder a step declared as its output of kind dataset (the last one)."""
    found = [v for s in info.steps if s.status in DONE if (v := _kind_of(s, DATASET))]
    return str(found[-1]) if found else None


def model_version(info: WorkflowInfo) -> int | None:
    """The model version the run exported or serves last."""
    found = [v for s in info.steps if s.status in DONE if isinstance(v := _kind_of(s, MODEL_VERSION), int)]
    return found[-1] if found else None


def metric_outputs(info: WorkflowInfo) -> dict[str, Any]:
    """Outputs declared as metrics, by key (a fan-out instance's as `key[i]`)."""
    found: dict[str, Any] = {}
    for step in info.steps:
        if step.status not in DONE:
            continue
        for key, kind in step.provides.get("kinds", {}).items():
            if kind == METRIC and key in step.outputs:
                label = key if "[" not in step.name else f"{key}{step.name[step.name.index('[') :]}"
                found[label] = step.outputs[key]
    return found


def _kind_of(step: StepInfo, kind: str) -> Any:
    """The value of the step's output of declared `kind`, if it wrote one."""
    keys = [k for k, v in step.provides.get("kinds", {}).items() if v == kind]
    return next((step.outputs[k] for k in keys if k in step.outputs), None)


def store_settings(info: WorkflowInfo) -> tuple[str | None, str | None]:
    """The object store endpoint and region the run's parameters give (by their declared types), None where unset."""

    def first(kind: str) -> str | None:
        return next((info.params[n] for n, t in info.param_types.items() if t == kind and info.params.get(n)), None)

    return first("endpoint"), first("region")
