"""Step kinds: a command, a Python callable, a distributed training job, a long-running service.

Every step runs one command (its `argv`): the local runner starts it as a process, the Argo workflow
runs the same argv in a container. A step tells the runner what it produced by writing files into
the directory `$TRAINFLOW_OUTPUTS` names: one file per output key holding the value as text (or a
JSON object in `outputs.json`). `Call` and `Train` steps with a function do that for you.

Arguments are strings that may hold references (`param("lr")`, `output("prep", "rows")`, `ITEM`,
`port("http")`, `HOST`, or the same as `{{params.lr}}` placeholders); see `trainflow.pipelines.refs`.
"""

from __future__ import annotations

import json
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, cast

from trainflow.pipelines.errors import PipelineError
from trainflow.pipelines.keys import check_keys
from trainflow.pipelines.programs import STEP
from trainflow.pipelines.refs import Arg, OutputRef, ParamRef, Ref, reference, refs_in


@dataclass(frozen=True)
class Resources:
    """What one process of the step needs on Kubernetes: cpu ("500m", "2"), memory ("4Gi"), gpu (count).

    Each may be `param(NAME)` (kept as `{{params.NAME}}`): a Train or Service step's job or Deployment then
    requests the parameter's value, settable at `argo submit -p NAME=...` time (an empty value: no request).
    """

    cpu: str | ParamRef | None = None
    memory: str | ParamRef | None = None
    gpu: int | str | ParamRef = 0

    def __post_init__(self) -> None:
        for name in ("cpu", "memory", "gpu"):
            value = getattr(self, name)
            if isinstance(value, ParamRef):
                object.__setattr__(self, name, str(value))


@dataclass(frozen=True)
class Port:
    """A named port a service listens on; `container_port` is what Kubernetes uses ("http" or "grpc" protocol)."""

    name: str
    container_port: int
    protocol: str = "http"


@dataclass(frozen=True)
class Probe:
    """Readiness: an HTTP GET of `path` on the named port answers 2xx."""

    port: str
    path: str = "/"


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _texts(values: Sequence[str] | str) -> tuple[str, ...]:
    """A tuple of strings (one string given alone counts as one, not as its letters)."""
    return (values,) if isinstance(values, str) else tuple(str(v) for v in values)


def _args(values: Sequence[Arg]) -> tuple[str, ...]:
    return tuple(str(v) for v in values)


Pairs = Mapping[str, Arg] | Sequence[tuple[str, Arg]]


def _inputs(values: Pairs) -> tuple[tuple[str, str], ...]:
    pairs = values.items() if isinstance(values, Mapping) else values
    return tuple((str(k), str(v)) for k, v in pairs)


def _input_args(inputs: Pairs) -> tuple[str, ...]:
    return tuple(t for k, v in pairs(inputs) for t in ("--input", k, v))


def _artifact_args(keys: Sequence[str]) -> tuple[str, ...]:
    """A function step publishes its artifacts itself (see `trainflow.pipelines.artifacts`)."""
    return tuple(t for k in keys for t in ("--artifact", k))


def _for_each(step: str, value: object) -> tuple[str, ...] | ParamRef | OutputRef | None:
    """A fan-out as a step holds it: a reference, or the items as text (an object or a list as its JSON)."""
    if value is None or isinstance(value, ParamRef | OutputRef):
        return value
    found = reference(value) if isinstance(value, str) else None
    if isinstance(found, ParamRef | OutputRef):
        return found
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, Iterable):
        raise PipelineError(
            f"step {step}: for_each {str(value)[:80]!r} is neither a list nor a reference to one: give a list, "
            "param(NAME) or output(STEP, KEY) ({{params.NAME}} or {{steps.STEP.outputs.KEY}} in YAML)"
        )
    return tuple(i if isinstance(i, str) else json.dumps(i) if isinstance(i, dict | list) else str(i) for i in value)


def pairs(values: Pairs) -> tuple[tuple[str, str], ...]:
    """Inputs or URLs as the (name, text) pairs a step holds once built."""
    return cast("tuple[tuple[str, str], ...]", values)


@dataclass(frozen=True, kw_only=True)
class Step(ABC):
    """What every step kind shares.

    name: a DNS label, unique in the pipeline (`trainflow logs --step NAME`).
    depends: steps that must finish first (steps whose outputs it uses are added for you).
    when: run only if this holds, e.g. `"evaluate.accuracy >= 0.97"` or `"params.serve == true"`:
      one comparison (== != < <= > >=) or a bare true/false operand, joined by `and` / `or`;
      operands are `params.NAME`, `STEP.OUTPUT`, numbers, true/false or 'quoted text'. Else Skipped.
    retries, backoff: extra attempts after a failure, the first `backoff` seconds later, doubling.
    retry_on: "transient" (killed, exit code >= 128: what trainflow's own steps use) or "any" failure.
    timeout: seconds before the step is stopped and fails (None: no limit).
    resources: cpu, memory and gpu per process (the Kubernetes backend requests them).
    for_each: fan-out: run once per item: a list, a parameter holding a JSON list or comma-separated values
      (`param(NAME)`), or an earlier step's output holding a JSON list (`output(STEP, KEY)`: the items are known
      once that step ran). The item is `ITEM`; when items are objects, `ITEM["lr"]` is one field. A later step
      reading an output gets the JSON list of every item's value.
    parallelism: at most this many of the step's items run at once (locally the default is what the machine's
      cores allow; on Kubernetes none unless given).
    cache: False to always run; otherwise an earlier successful run with the same key is reused (`trainflow
      submit --no-cache` turns it off for one run). Locally the key covers the command with its parameter
      values, the Python code in the pipeline's folder, the files the command names (by content), the
      keys and artifact digests of the steps it reads, and the two opt-ins below; not other environment
      variables, network data or files the step opens without naming them (see
      `trainflow.workflows.local.cache_keys`).
    cache_key_files: paths or globs (relative to the pipeline file's folder; a folder counts with all its
      files) whose content joins the cache key, for files the step reads without naming them.
    cache_key_env: names of environment variables whose values join the cache key.
    outputs: the keys the step writes (later steps and conditions may read only these).
    artifacts: outputs that are local paths or URLs of files or directories a later step reads: a cached
      result is reused only while its local artifacts still exist.
    locations: outputs that only say where later steps write (a run's directory named after the job):
      they never make a later step re-run, so a resubmission under a new name reuses cached results.
    image: the container image on Kubernetes (text or `param(...)`; default: trainflow's own image).
    kube_name: the name of the Kubernetes objects a training job or service creates, `{workflow}` standing
      for the run's name (default: `{workflow}-STEP`).
    kinds: what some outputs are, where the CLI or the dashboard needs to know (see `trainflow.pipelines.roles`):
      {"path": "dataset"} (a synced dataset folder), {"version": "model-version"}, {"loss": "metric"},
      {"dir": "train-dir"} (a train dir the step wrote: its metrics.json and logs/ are the run's).
    """

    kind: ClassVar[str] = ""
    name: str
    depends: tuple[str, ...] = ()
    when: str | None = None
    retries: int = 0
    backoff: float = 2.0
    retry_on: str = "transient"
    timeout: float | None = None
    resources: Resources = field(default_factory=Resources)
    for_each: Sequence[Any] | ParamRef | OutputRef | None = None
    parallelism: int | None = None
    cache: bool = True
    cache_key_files: tuple[str, ...] = ()
    cache_key_env: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    artifacts: tuple[str, ...] = ()
    locations: tuple[str, ...] = ()
    image: str | ParamRef | None = None
    kube_name: str | None = None
    kinds: Pairs = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "kinds", _inputs(self.kinds))
        object.__setattr__(self, "depends", tuple(self.depends))
        object.__setattr__(self, "outputs", tuple(self.outputs))
        object.__setattr__(self, "artifacts", tuple(self.artifacts))
        object.__setattr__(self, "locations", tuple(self.locations))
        object.__setattr__(self, "cache_key_files", _texts(self.cache_key_files))
        object.__setattr__(self, "cache_key_env", _texts(self.cache_key_env))
        for name in self.cache_key_env:
            if not _ENV_NAME.fullmatch(name):
                raise PipelineError(
                    f"step {self.name}: cache_key_env '{name}' is not an environment variable name: "
                    "use letters, digits and '_', not starting with a digit"
                )
        object.__setattr__(self, "for_each", _for_each(self.name, self.for_each))
        try:
            self._check_keys()
        except PipelineError as exc:
            raise PipelineError(f"step {self.name}: {exc.message}") from None

    def _check_keys(self) -> None:
        """Output keys become file and folder names: refuse one that is a path before anything runs."""
        check_keys("output", self.outputs)
        check_keys("artifact", self.artifacts)
        check_keys("location", self.locations)

    @property
    @abstractmethod
    def command(self) -> tuple[str, ...]:
        """The argv this step runs, references still as placeholders."""

    @property
    def service(self) -> bool:
        return False

    @property
    def cacheable(self) -> bool:
        return self.cache

    def check_values(self, values: Mapping[str, str], params: Sequence[object] = ()) -> None:
        """Refuse parameter values (of the pipeline's `params`) this step cannot run with, before anything runs."""
        return None  # most steps take any value their parameters' types allow

    def refs(self) -> list[Ref]:
        """Every reference in the step's command."""
        return [r for arg in self.command for r in refs_in(arg)]

    def declared_outputs(self) -> tuple[str, ...]:
        """Every output key later steps may read."""
        return tuple(dict.fromkeys([*self.outputs, *self.artifacts, *self.locations]))

    def output_refs(self) -> list[OutputRef]:
        found = [r for r in self.refs() if isinstance(r, OutputRef)]
        return list(dict.fromkeys(found))

    def upstream(self) -> tuple[str, ...]:
        """Steps this one waits for: its `depends`, the steps whose outputs it reads, those its `when` reads."""
        from trainflow.pipelines.conditions import parse_condition

        when_steps = (
            [r.step for r in parse_condition(self.when).refs() if isinstance(r, OutputRef)] if self.when else []
        )
        listing = [self.for_each.step] if isinstance(self.for_each, OutputRef) else []
        return tuple(dict.fromkeys([*self.depends, *(r.step for r in self.output_refs()), *when_steps, *listing]))


@dataclass(frozen=True, kw_only=True)
class Command(Step):
    """Run any program: `argv` (the first item is the program; `trainflow ...` runs this trainflow)."""

    kind: ClassVar[str] = "command"
    argv: Sequence[Arg]

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "argv", _args(self.argv))

    @property
    def command(self) -> tuple[str, ...]:
        return cast("tuple[str, ...]", self.argv)


@dataclass(frozen=True, kw_only=True)
class Call(Step):
    """Call a Python function `module:function` in its own process.

    `inputs` become its keyword arguments (text, converted to int, float, bool, list or dict when the
    function's annotation says so); a returned dict becomes the step's outputs.
    """

    kind: ClassVar[str] = "call"
    function: str
    inputs: Pairs = ()

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "inputs", _inputs(self.inputs))

    @property
    def command(self) -> tuple[str, ...]:
        return (*STEP, "call", self.function, *_input_args(self.inputs), *_artifact_args(self.artifacts))


@dataclass(frozen=True, kw_only=True)
class Train(Step):
    """Distributed training on `workers` processes (locally the launcher; on Kubernetes a PyTorchJob or TFJob).

    Give either `function` (`module:function`, called in every worker once torch.distributed is set up,
    with `inputs` as keyword arguments; rank 0's returned dict becomes the outputs) or `argv` (a trainer
    command that starts its own workers, as the built-in `trainflow step train-model` does).
    ps: parameter-server replicas a TFJob gets (they do not train; kept for the Kubeflow example).
    train_dir: where it leaves checkpoints, `logs/` (TensorBoard events) and `metrics.json` (the final metrics),
      text or a reference such as `output("paths", "train-dir")`: the dashboard's curves, `compare` and
      `list -o wide` read it. Progress it reports with `report_progress` is shown for any training step.
    On Kubernetes later steps cannot read a training step's outputs: pass results through storage.
    """

    kind: ClassVar[str] = "train"
    workers: int | str | ParamRef = 1
    ps: int | str | ParamRef = 0
    function: str | None = None
    inputs: Pairs = ()
    argv: Sequence[Arg] = ()
    train_dir: Arg = ""

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "inputs", _inputs(self.inputs))
        object.__setattr__(self, "argv", _args(self.argv))
        object.__setattr__(self, "train_dir", str(self.train_dir))
        object.__setattr__(self, "workers", str(self.workers))
        object.__setattr__(self, "ps", str(self.ps))

    @property
    def command(self) -> tuple[str, ...]:
        if self.function is None:
            return cast("tuple[str, ...]", self.argv)
        return (
            *STEP,
            "train-function",
            self.function,
            "--workers",
            str(self.workers),
            *_input_args(self.inputs),
            *_artifact_args(self.artifacts),
        )

    def refs(self) -> list[Ref]:
        return [*super().refs(), *refs_in(str(self.workers)), *refs_in(str(self.ps))]


@dataclass(frozen=True, kw_only=True)
class Service(Step):
    """A long-running process (a server, TensorBoard) that keeps running after the workflow ends.

    ports: the named ports it listens on (pass them with `port(NAME)`, the address with `HOST`).
    probe: ready once an HTTP GET of the probe's path answers 2xx (without a probe: once it wrote its outputs).
    urls: outputs the runner fills in, as templates over `{host}` and the port names, e.g.
      `{"url": "http://{host}:{http}/"}`.
    ready_timeout: seconds it may take to become ready before the step fails.
    liveness: a probe Kubernetes uses to restart a stuck server.
    service_type: the Kubernetes Service type (ClusterIP, NodePort, LoadBalancer), text or `param(...)`.
    serves: what it serves, for `trainflow predict --workflow`, `trainflow tensorboard`, the dashboard and the
      cluster's labels: "model" (its REST port is its port of protocol http, its gRPC port the one of protocol
      grpc) or "tensorboard" (its http port); None for anything else.
    model_name: the name a model server serves its model under (text or `param(...)`), with serves="model".
    """

    kind: ClassVar[str] = "service"
    argv: Sequence[Arg]
    ports: Sequence[Port] = ()
    probe: Probe | None = None
    urls: Pairs = ()
    ready_timeout: float = 180.0
    liveness: Probe | None = None
    service_type: str | ParamRef = "ClusterIP"
    serves: str | None = None
    model_name: Arg = ""

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "argv", _args(self.argv))
        object.__setattr__(self, "service_type", str(self.service_type))
        object.__setattr__(self, "model_name", str(self.model_name))
        object.__setattr__(self, "ports", tuple(self.ports))
        object.__setattr__(self, "urls", _inputs(self.urls))

    def _check_keys(self) -> None:
        super()._check_keys()
        check_keys("url", (k for k, _ in _inputs(self.urls)))  # runs before urls become pairs

    @property
    def command(self) -> tuple[str, ...]:
        return cast("tuple[str, ...]", self.argv)

    @property
    def service(self) -> bool:
        return True

    @property
    def cacheable(self) -> bool:
        return False

    def port(self, name: str) -> Port:
        return next(p for p in self.ports if p.name == name)


KINDS: dict[str, type[Step]] = {k.kind: k for k in (Command, Call, Train, Service)}
