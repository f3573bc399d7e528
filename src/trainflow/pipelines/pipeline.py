"""A pipeline: typed parameters and steps; `validate()` refuses one that cannot run, before anything runs."""

from __future__ import annotations

import heapq
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass

from trainflow.pipelines.conditions import parse_condition
from trainflow.pipelines.errors import PipelineError
from trainflow.pipelines.k8s_names import DNS_1123_LABEL
from trainflow.pipelines.limits import check_item_count, check_step_count
from trainflow.pipelines.params import Param, check_param, fallback_param, resolve_values
from trainflow.pipelines.programs import check_program
from trainflow.pipelines.refs import (
    HostRef,
    ItemRef,
    OutputRef,
    ParamRef,
    PortRef,
    WorkflowRef,
    refs_in,
    unknown_placeholders,
)
from trainflow.pipelines.roles import check_roles
from trainflow.pipelines.steps import Call, Service, Step, Train, pairs

_PARAM_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*\Z")
_FUNCTION = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*\Z")
RETRY_ON = ("transient", "any")


@dataclass(frozen=True)
class Pipeline:
    """A named DAG of steps with typed parameters.

    name: a DNS label; what `trainflow submit NAME` and `list` show.
    params: the `Param`s steps reference.
    steps: `Command`, `Call`, `Train` and `Service` steps, in the order `get` lists them.
    name_param: the parameter whose value names each submitted run (default: NAME-<random>).
    name_suffix: appended to that value (model-deploy runs are `<workflow>-deploy`).
    inherit_from: a parameter naming an earlier workflow; the parameters a submission leaves out take
      that workflow's values (model-deploy serves from where the model-train run wrote).
    artifacts_url: where steps publish their artifacts (a folder, file:// or s3:// URL; may use
      `param(...)`): each step's go under `<artifacts_url>/<workflow>/<step>/<key>` (in an object store,
      in a folder named by the content's digest below it). Default: locally
      `$TRAINFLOW_HOME/store/artifacts`; on Kubernetes give an s3:// URL, as pods share no disk.
    parallelism: at most this many steps (fan-out items included) run at once (Argo's workflow `parallelism`).
    on_exit: exit steps, run after every other step has ended, whatever happened (also after a failure or
      `trainflow stop`); they read `workflow(...)` / `{{workflow.status}}`, `{{workflow.failed_step}}`,
      `{{workflow.failure_message}}`, `{{workflow.duration}}`, `{{workflow.name}}` and parameters, not other
      steps' outputs (Argo's `onExit`). `Notify` is a ready-made one. Their outcome never changes the run's status.
    """

    name: str
    params: tuple[Param, ...]
    steps: tuple[Step, ...]
    name_param: str | None = None
    description: str = ""
    name_suffix: str = ""
    inherit_from: str | None = None
    artifacts_url: str | ParamRef = ""
    parallelism: int | None = None
    on_exit: tuple[Step, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", tuple(self.params))
        object.__setattr__(self, "artifacts_url", str(self.artifacts_url))
        object.__setattr__(self, "steps", tuple(self.steps))
        object.__setattr__(self, "on_exit", tuple(self.on_exit))

    @property
    def all_steps(self) -> tuple[Step, ...]:
        """The steps, then the exit steps."""
        return (*self.steps, *self.on_exit)

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise PipelineError(f"pipeline {self.name} has no parameter '{name}'")

    def step(self, name: str) -> Step:
        for s in self.all_steps:
            if s.name == name:
                return s
        raise PipelineError(
            f"pipeline {self.name} has no step '{name}': its steps are {', '.join(s.name for s in self.steps)}"
        )

    @property
    def defaults(self) -> dict[str, str]:
        return {p.name: "" if p.default is None else str(p.default) for p in self.params}

    def resolve(self, given: Mapping[str, object]) -> dict[str, str]:
        """Parameter values: defaults overlaid with `given`, each checked against its type and fan-out size."""
        values = resolve_values(self.params, given, self.name)
        for step in self.steps:
            if isinstance(step.for_each, ParamRef) and step.for_each.name in values:
                name = step.for_each.name
                check_item_count(_item_count(values[name]), f"parameter {name} (the fan-out of step {step.name})")
        for step in self.steps:
            step.check_values(values, self.params)  # what only the step can judge (a study's ranges against its trial)
        return values

    def order(self) -> list[Step]:
        """Steps in an order that runs every step after the ones it waits for (declaration order otherwise)."""
        return _order(self.name, self.steps)

    def exit_order(self) -> list[Step]:
        """The exit steps in the order they run (after `order()`'s, whatever happened there)."""
        return _order(self.name, self.on_exit)

    def validate(self) -> Pipeline:
        """Check names, references, conditions and the DAG; returns self, or raises PipelineError."""
        if not DNS_1123_LABEL.fullmatch(self.name) or len(self.name) > 52:
            raise PipelineError(f"pipeline name '{self.name}': use at most 52 lowercase letters, digits or '-'")
        names = [p.name for p in self.params]
        for p in self.params:
            if not _PARAM_NAME.match(p.name):
                raise PipelineError(f"parameter name '{p.name}': use letters, digits, '-' or '_'")
            check_param(p)
        _no_duplicates(names, "parameter")
        _check_fallbacks(self.params)
        for field, value in (("name_param", self.name_param), ("inherit_from", self.inherit_from)):
            if value is not None and value not in names:
                raise PipelineError(f"{field} '{value}' is not a parameter of {self.name}")
        if not self.steps:
            raise PipelineError(f"pipeline {self.name} has no steps: add at least one")
        try:
            check_step_count(len(self.steps))
        except PipelineError as exc:
            raise PipelineError(f"pipeline {self.name}: {exc.message}") from None
        _check_artifacts_url(str(self.artifacts_url), set(names))
        _no_duplicates([s.name for s in self.all_steps], "step")
        if self.parallelism is not None and (not isinstance(self.parallelism, int) or self.parallelism < 1):
            raise PipelineError(f"pipeline {self.name}: parallelism {self.parallelism!r}: give a whole number >= 1")
        for group, exiting in ((self.steps, False), (self.on_exit, True)):
            steps = {s.name: s for s in group}
            for step in group:
                try:
                    _check_step(step, steps, set(names), exiting)
                except PipelineError as exc:
                    raise PipelineError(f"step {step.name}: {exc.message}") from None
        self.order()
        self.exit_order()
        return self


def _order(pipeline: str, steps: tuple[Step, ...]) -> list[Step]:
    left = [set(s.upstream()) for s in steps]
    waiting: dict[str, list[int]] = {}
    for i, names in enumerate(left):
        for name in names:
            waiting.setdefault(name, []).append(i)
    ready = [i for i, names in enumerate(left) if not names]  # by declaration index, so a heap keeps that order
    done: list[int] = []
    while ready:
        i = heapq.heappop(ready)
        done.append(i)
        name = steps[i].name
        for j in waiting.pop(name, []):
            left[j].discard(name)
            if not left[j]:
                heapq.heappush(ready, j)
    if len(done) < len(steps):
        placed = set(done)
        pending = [s.name for i, s in enumerate(steps) if i not in placed]
        raise PipelineError(
            f"pipeline {pipeline}: steps {', '.join(pending)} wait for each other (a cycle): remove one of the dependencies"
        )
    return [steps[i] for i in done]


def _item_count(value: str) -> int:
    """How many items a fan-out parameter's value holds: a JSON list, or comma-separated values."""
    raw = value.strip()
    if raw.startswith("["):
        try:
            parsed = json.loads(raw)
        except ValueError:
            return 0  # not a list: the runner says so when it fans out
        return len(parsed) if isinstance(parsed, list) else 0
    return sum(1 for part in raw.split(",") if part.strip())


def _check_artifacts_url(text: str, params: set[str]) -> None:
    bad = unknown_placeholders(text)
    refs = refs_in(text)
    if bad or not all(isinstance(r, ParamRef) and r.name in params for r in refs):
        raise PipelineError(
            f"artifacts_url '{text}': it may only reference the pipeline's parameters, as {{{{params.NAME}}}}"
        )


def _check_fallbacks(params: tuple[Param, ...]) -> None:
    """A fallback is a literal or another declared parameter that has no fallback itself."""
    by_name = {p.name: p for p in params}
    for p in params:
        other = fallback_param(p)
        if other is None and "{{" in str(p.fallback):
            raise PipelineError(
                f"parameter {p.name}: fallback '{p.fallback}' may only be a value or {{{{params.NAME}}}}"
            )
        if other is not None and (other not in by_name or other == p.name or by_name[other].fallback):
            raise PipelineError(
                f"parameter {p.name} falls back to '{other}': name another parameter of the pipeline without a fallback"
            )


def _no_duplicates(names: list[str], what: str) -> None:
    seen = {n for n in names if names.count(n) > 1}
    if seen:
        raise PipelineError(f"two {what}s are named {', '.join(sorted(seen))}: give each a unique name")


def _check_step(step: Step, steps: Mapping[str, Step], params: set[str], exiting: bool = False) -> None:
    if not DNS_1123_LABEL.fullmatch(step.name) or len(step.name) > 40:
        raise PipelineError("name: use at most 40 lowercase letters, digits or '-' (a DNS label)")
    function = getattr(step, "function", None)
    if (function is not None or isinstance(step, Call)) and not (
        isinstance(function, str) and _FUNCTION.fullmatch(function)
    ):
        raise PipelineError(f"function '{function}': write it as module:function, e.g. mypkg.steps:prepare")
    if not step.command:
        raise PipelineError("no command: give argv=(...) (or function= for a Call or Train step)")
    check_program(step.command)
    for dep in step.depends:
        if dep not in steps:
            raise PipelineError(f"depends on '{dep}', which is not a step: its steps are {', '.join(steps)}")
    declared = [str(getattr(step, "train_dir", "")), str(getattr(step, "model_name", ""))]
    for text in [*step.command, str(getattr(step, "workers", "")), *declared]:
        bad = unknown_placeholders(text)
        if bad:
            raise PipelineError(
                f"unknown placeholder {bad[0]}: use {{{{params.NAME}}}}, {{{{steps.STEP.outputs.KEY}}}}, "
                "{{item}}, {{item.FIELD}}, {{ports.NAME}}, {{host}} or (in an exit step) {{workflow.status}}"
            )
    check_fan_out(step, exiting)
    refs = step.refs() + (parse_condition(step.when).refs() if step.when else [])
    if isinstance(step.for_each, ParamRef | OutputRef):
        refs.append(step.for_each)
    elif step.for_each is not None:
        check_item_count(len(step.for_each), "for_each")
    for ref in [*refs, *(r for text in declared for r in refs_in(text))]:
        _check_ref(ref, step, steps, params)
        if isinstance(ref, WorkflowRef) and not exiting:
            raise PipelineError(f"uses {ref}, which only an exit step has: list the step in on_exit")
    check_roles(step)
    if step.retries < 0 or step.backoff < 0 or (step.timeout is not None and step.timeout <= 0):
        raise PipelineError("retries and backoff must be at least 0, and a timeout more than 0 seconds")
    if step.retry_on not in RETRY_ON:
        raise PipelineError(f"retry_on '{step.retry_on}': use 'transient' or 'any'")
    if step.kube_name is not None and not DNS_1123_LABEL.fullmatch(step.kube_name.replace("{workflow}", "w")):
        raise PipelineError(f"kube_name '{step.kube_name}': use lowercase letters, digits, '-' and {{workflow}}")
    if isinstance(step, Service):
        _check_service(step)
    if isinstance(step, Train) and step.function is None and step.inputs:
        raise PipelineError("inputs need a function: give function='module:function' or put them in argv")
    if isinstance(step, Call | Train):
        _no_duplicates([k for k, _ in pairs(step.inputs)], "input")


def _check_ref(ref: object, step: Step, steps: Mapping[str, Step], params: set[str]) -> None:
    if isinstance(ref, ParamRef) and ref.name not in params:
        raise PipelineError(
            f"uses parameter '{ref.name}', which the pipeline does not declare: add Param('{ref.name}')"
        )
    if isinstance(ref, OutputRef):
        source = steps.get(ref.step)
        if source is None:
            raise PipelineError(
                f"reads an output of '{ref.step}', which is not a step: its steps are {', '.join(steps)}"
            )
        if source is step:
            raise PipelineError("reads its own output: read an earlier step's output")
        declared = (*source.declared_outputs(), *(k for k, _ in pairs(getattr(source, "urls", ()))))
        if ref.key not in declared:
            raise PipelineError(
                f"reads output '{ref.key}' of {ref.step}, which declares only "
                f"{', '.join(declared) or 'none'}: add it to {ref.step}'s outputs"
            )
    if isinstance(ref, ItemRef) and step.for_each is None:
        raise PipelineError(f"uses {ref} without for_each: give for_each=[...] to fan out")
    if isinstance(ref, ItemRef) and ref.field is not None and isinstance(step.for_each, tuple):
        for item in step.for_each:
            if ref.field not in _as_object(item):
                raise PipelineError(f"uses {ref}, but item {item[:60]!r} is not an object with a field '{ref.field}'")
    if isinstance(ref, PortRef | HostRef) and not isinstance(step, Service):
        raise PipelineError("uses a port or the host, which only a Service step has")
    if isinstance(ref, PortRef) and ref.name not in {p.name for p in step.ports}:  # type: ignore[attr-defined]
        raise PipelineError(f"uses port '{ref.name}', which it does not declare: add Port('{ref.name}', ...)")


def _as_object(item: str) -> dict[str, object]:
    try:
        found = json.loads(item)
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def check_fan_out(step: Step, exiting: bool) -> None:
    """A parallelism caps a fan-out; an exit step runs once, after the others."""
    if step.parallelism is not None and (not isinstance(step.parallelism, int) or step.parallelism < 1):
        raise PipelineError(f"parallelism {step.parallelism!r}: give a whole number >= 1")
    if step.parallelism is not None and step.for_each is None:
        raise PipelineError("parallelism caps a fan-out: give for_each as well, or remove parallelism")
    if exiting and (step.for_each is not None or isinstance(step, Service | Train)):
        raise PipelineError(
            "an exit step is one command, call or notify that runs once: no fan-out, service or training"
        )
    if exiting and step.output_refs():
        raise PipelineError(
            f"an exit step reads no other step's outputs ({step.output_refs()[0]}): they may never have been "
            "written; read {{workflow.status}}, {{workflow.failed_step}} or parameters"
        )


def _check_service(step: Service) -> None:
    ports = {p.name for p in step.ports}
    _no_duplicates([p.name for p in step.ports], "port")
    for probe in (step.probe, step.liveness):
        if probe is not None and probe.port not in ports:
            raise PipelineError(f"probes port '{probe.port}', which it does not declare")
    for key, template in pairs(step.urls):
        try:
            template.format(host="h", **{p: 1 for p in ports})
        except (KeyError, IndexError, ValueError):
            raise PipelineError(
                f"url '{key}' = '{template}': use {{host}} and the port names ({', '.join(sorted(ports))}) in braces"
            ) from None
    if step.for_each is not None:
        raise PipelineError("a service cannot fan out: remove for_each")
