"""The per-node cache mode: each node keeps its own copy of the datasets, as the example's KVC did.

A step that downloads into the cache runs on one node; a training pod on another node would find
nothing at the path it is given. So each training pod first runs, as an init container on its own
node, every upstream step whose artifacts (local paths) it reads: the cache makes that a no-op where
the node's copy is current. Training steps' outputs are not read back (rank 0 may run on any node,
and nothing is shared between nodes), so a later step may not read them in this mode.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from trainflow.pipelines import Command, Pipeline, Step, Train
from trainflow.pipelines.conditions import parse_condition
from trainflow.pipelines.refs import OutputRef
from trainflow.workflows.errors import WorkflowError
from trainflow.workflows.kubernetes import resources as k8s

SCRATCH_OUTPUTS = "/tmp/outputs/"  # the init container's outputs: the DAG already has the step's own


def seeds(pipeline: Pipeline, step: Train) -> list[Command]:
    """Upstream command steps whose artifacts `step` reads: what each training pod runs on its node first."""
    found = []
    for ref in step.output_refs():
        source = pipeline.step(ref.step)
        # Function steps publish their artifacts as URLs under the pipeline's artifacts_url: nothing to re-make.
        if not isinstance(source, Command) or ref.key not in source.artifacts or source in found:
            continue
        if source.output_refs() or source.for_each is not None:
            raise WorkflowError(
                f"--cache-mode per-node: training step {step.name} reads {source.name}'s local files, which a pod "
                f"on another node can make only if {source.name} is a command without inputs; "
                "use --cache-mode shared (a ReadWriteMany claim)"
            )
        found.append(source)
    return found


def sync_containers(target: k8s.Target, commands: Sequence[Command], run: Any) -> list[dict[str, Any]]:
    """Init containers re-running `commands` on the pod's own node (`run` renders a step's command)."""
    containers = []
    for source in commands:
        init = k8s.container(target, f"sync-{source.name}", source, run(source))
        init["env"].append({"name": "TRAINFLOW_OUTPUTS", "value": SCRATCH_OUTPUTS})
        init.pop("resources", None)
        containers.append(init)
    return containers


def check_unread_outputs(steps: Sequence[Step]) -> None:
    """In per-node mode no step may read a training step's outputs (they stay on rank 0's node)."""
    trainers = {s.name for s in steps if isinstance(s, Train)}
    for step in steps:
        refs = [*step.refs(), *(parse_condition(step.when).refs() if step.when else [])]
        read = sorted({r.step for r in refs if isinstance(r, OutputRef) and r.step in trainers})
        if read:
            raise WorkflowError(
                f"--cache-mode per-node: step {step.name} reads the outputs of training step {read[0]}, which are "
                "not read back in this mode (nothing is shared between nodes): use --cache-mode shared"
            )
