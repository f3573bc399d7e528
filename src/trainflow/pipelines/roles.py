"""What steps provide, declared in the spec: the CLI, the dashboard and both backends read this, never output names.

A `Service` says what it serves: `serves=MODEL` is a model server (its REST port, TF Serving and KServe V2, is its
port of protocol "http", its gRPC port the one of protocol "grpc"; it serves `model_name`), `serves=TENSORBOARD` is
TensorBoard on its "http" port. A `Train` step says where it leaves its train dir (`train_dir`: checkpoints, `logs/`
with TensorBoard events and `metrics.json` with the final metrics) and reports progress with `report_progress`. Any
step may give an output a kind (`kinds`) where a consumer needs one. A recorded run keeps `provided(step)` for each
step, so a finished run is read back without its pipeline file.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from trainflow.pipelines.errors import PipelineError
from trainflow.pipelines.steps import Service, Step, pairs

if TYPE_CHECKING:
    from trainflow.pipelines.pipeline import Pipeline

MODEL = "model"
TENSORBOARD = "tensorboard"
SERVES = (MODEL, TENSORBOARD)

REST, GRPC, HTTP = "rest", "grpc", "http"  # a served thing's port roles

DATASET = "dataset"  # a synced dataset folder: the model's input form, `predict --data-dir`'s test examples
MODEL_VERSION = "model-version"  # the model version a step exported or serves
METRIC = "metric"  # a final number `compare` and `list -o wide` show beside the train dir's metrics.json
TRAIN_DIR = "train-dir"  # a train dir a step wrote (where `Train(train_dir=...)` cannot say it beforehand)
TRIALS = "trials"  # the path of a study's study.json (a `Tune` step's trials: parameters, value, state, duration)
OUTPUT_KINDS = (DATASET, MODEL_VERSION, METRIC, TRAIN_DIR, TRIALS)


def port_roles(step: Service) -> dict[str, str]:
    """Role -> port name of what a service serves: a model's REST and gRPC ports, TensorBoard's HTTP port."""
    first: dict[str, str] = {}
    for port in step.ports:
        first.setdefault(port.protocol, port.name)
    if step.serves == MODEL:
        return {role: first[protocol] for role, protocol in ((REST, "http"), (GRPC, "grpc")) if protocol in first}
    if step.serves == TENSORBOARD and "http" in first:
        return {HTTP: first["http"]}
    return {}


def check_roles(step: Step) -> None:
    """Refuse a declaration a consumer could not use (an unknown kind, a model server without a port or a name)."""
    declared = step.declared_outputs()
    for key, kind in pairs(step.kinds):
        if kind not in OUTPUT_KINDS:
            raise PipelineError(f"output '{key}' has kind '{kind}': use one of {', '.join(OUTPUT_KINDS)}")
        if key not in declared:
            raise PipelineError(f"gives output '{key}' a kind but does not declare it: add it to outputs")
    if not isinstance(step, Service) or step.serves is None:
        return
    serves = step.serves
    if serves not in SERVES:
        raise PipelineError(f"serves '{serves}': use one of {', '.join(SERVES)}")
    roles = port_roles(step)
    if serves == MODEL and not roles:
        raise PipelineError("serves a model but has no port of protocol http (REST) or grpc (gRPC)")
    if serves == MODEL and not str(step.model_name):
        raise PipelineError("serves a model: say which name with model_name=... (text or param(...))")
    if serves == TENSORBOARD and not roles:
        raise PipelineError("serves TensorBoard but has no port of protocol http")


def provided(step: Step) -> dict[str, Any]:
    """What `step` provides, JSON-ready, references as placeholders: empty for a step that declares nothing."""
    found: dict[str, Any] = {}
    if step.kinds:
        found["kinds"] = dict(pairs(step.kinds))
    if isinstance(step, Service) and step.serves:
        found["serves"] = step.serves
        found["ports"] = port_roles(step)
        if step.serves == MODEL:
            found["model_name"] = str(step.model_name)
    if getattr(step, "train_dir", ""):
        found["train_dir"] = str(step.train_dir)  # type: ignore[attr-defined]
    return found


def param_types(pipeline: Pipeline) -> dict[str, str]:
    """Each typed parameter's declared type (pipelines.param_types), what a recorded run keeps so a reader finds a
    parameter by its meaning (the store's endpoint, its region), never by its name."""
    return {p.name: p.type for p in pipeline.params if p.type != "str"}
