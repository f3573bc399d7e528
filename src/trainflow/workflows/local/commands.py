"""The argv of a pipeline step, resolved as the local runner runs it (the Kubernetes compiler must agree: see the parity tests)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from trainflow.pipelines.refs import (
    HostRef,
    ItemRef,
    OutputRef,
    ParamRef,
    PortRef,
    Ref,
    WorkflowRef,
    substitute,
)
from trainflow.pipelines.steps import Service, Step
from trainflow.workflows.errors import WorkflowError


def as_text(value: object) -> str:
    """An output value as a command-line argument: text as is, anything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value)


def step_command(
    step: Step,
    values: Mapping[str, str],
    outputs: Mapping[str, Mapping[str, object]],
    ports: Mapping[str, int] | None = None,
    item: str | None = None,
    host: str = "127.0.0.1",
    outcome: Mapping[str, str] | None = None,
) -> list[str]:
    """The step's argv with parameters, earlier outputs, the fan-out item, ports, the host and (in an exit step) the
    run's `outcome` (`{{workflow.status}}`, ...) filled in.

    `ports` maps a service's port names to what it should listen on; a port not given gets its
    container port (what Kubernetes uses). An item or outcome not given stays a placeholder (a dry plan shows it).
    """

    def resolve(ref: Ref) -> str:
        if isinstance(ref, ParamRef):
            return values[ref.name]
        if isinstance(ref, OutputRef):
            try:
                return as_text(outputs[ref.step][ref.key])
            except KeyError:
                raise WorkflowError(
                    f"step {step.name} needs output '{ref.key}' of step {ref.step}, which it did not write"
                ) from None
        if isinstance(ref, ItemRef):
            return str(ref) if item is None else item_field(step, item, ref.field)
        if isinstance(ref, WorkflowRef):
            return str(ref) if outcome is None else outcome.get(ref.field, "")
        if isinstance(ref, PortRef):
            if ports is not None and ref.name in ports:
                return str(ports[ref.name])
            assert isinstance(step, Service)
            return str(step.port(ref.name).container_port)
        assert isinstance(ref, HostRef)
        return host

    return [substitute(arg, resolve) for arg in step.command]


def item_field(step: Step, item: str, field: str | None) -> str:
    """The item, or its field `field` (`{{item.lr}}`) when the item is a JSON object holding one."""
    if field is None:
        return item
    try:
        found = json.loads(item)
    except ValueError:
        found = None
    if not isinstance(found, dict) or field not in found:
        raise WorkflowError(
            f"step {step.name} reads {{{{item.{field}}}}}, but item {item[:60]!r} has no field '{field}'"
        )
    return as_text(found[field])


def package_folder(step: Step, argv: Sequence[str], code: Path | None) -> Path | None:
    """Where a step's own program starts in a run with a code package (`code`, its unpacked folder); None: here.

    The rule `trainflow step run-command` follows on a cluster (`code_packages.runs_in_package`). A study's trials
    start where its step does: a Tune step starts there when its trial's program would, as Katib's trials do.
    """
    from trainflow.pipelines.tuning import Tune
    from trainflow.workflows.code_packages import runs_in_package

    program, words = (step.trial, step.trial.command) if isinstance(step, Tune) else (step, argv)
    return code if code is not None and runs_in_package(program, words) else None
