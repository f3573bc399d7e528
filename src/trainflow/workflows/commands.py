"""The argv of a pipeline step, resolved: the one thing both backends must agree on."""

from __future__ import annotations

from collections.abc import Mapping

from trainflow.workflows.errors import WorkflowError
from trainflow.workflows.spec import OutputRef, ParamRef, PortRef, Step, render_args


def step_command(
    step: Step,
    values: Mapping[str, str],
    outputs: Mapping[str, Mapping[str, object]],
    ports: Mapping[str, int] | None = None,
) -> list[str]:
    """`trainflow step <name> ...` with parameters, earlier outputs and ports filled in.

    `ports` maps a step's port names to what it should listen on; a port not given gets its
    container port (what Kubernetes uses). The local runner passes 0 ("pick a free port").
    """

    def resolve(ref: ParamRef | OutputRef | PortRef) -> str:
        if isinstance(ref, ParamRef):
            return values[ref.name]
        if isinstance(ref, OutputRef):
            try:
                return str(outputs[ref.step][ref.key])
            except KeyError:
                raise WorkflowError(f"step {step.name} needs output '{ref.key}' of step {ref.step}, which it did not write") from None
        if ports is not None and ref.name in ports:
            return str(ports[ref.name])
        return str(next(p.container_port for p in step.ports if p.name == ref.name))

    return [*step.command, *render_args(step, resolve)]
