"""The runner's fan-out: each step's instances and items, a fan-out over an earlier step's output expanded once that
step has run, and how many instances may run at once.

A step fanning out over `output("list", "items")` is recorded as one row, `each`, until `list` succeeds; the runner
then reads the list, replaces the row with `each[0]`, `each[1]`, ... in the state (a retried run finds them there)
and starts them like any fan-out. An output that is not a JSON list fails the step with one line naming it.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping

from trainflow.cores import usable_cores
from trainflow.pipelines import Pipeline, PipelineError, Step
from trainflow.pipelines.limits import check_item_count
from trainflow.pipelines.refs import OutputRef
from trainflow.workflows.backend import FAILED, OMITTED, PENDING, RUNNING, SKIPPED, SUCCEEDED
from trainflow.workflows.errors import WorkflowError
from trainflow.workflows.local import plan
from trainflow.workflows.local.commands import as_text


def instances_in(step: str, recorded: Iterable[str]) -> list[str]:
    """The recorded rows of `step`: itself, or its expanded `step[i]` instances in item order."""
    pattern = re.compile(rf"{re.escape(step)}\[(\d+)\]")
    expanded = sorted(((int(m[1]), n) for n in recorded if (m := pattern.fullmatch(n))), key=lambda p: p[0])
    return [n for _, n in expanded] or [step]


def items_of(step: Step, value: object) -> list[str]:
    """The items an output holds (a JSON list, or a list already); WorkflowError naming the output otherwise."""
    assert isinstance(step.for_each, OutputRef)
    ref = step.for_each
    parsed = value
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except ValueError:
            parsed = None
    if value is None:
        raise WorkflowError(f"step {step.name} fans out over output {ref.key} of {ref.step}, which it did not write")
    if not isinstance(parsed, list):
        shown = as_text(value)
        raise WorkflowError(
            f"step {step.name} fans out over output {ref.key} of {ref.step}, which is not a JSON list: "
            f"{shown[:80]!r}{'...' if len(shown) > 80 else ''}"
        )
    try:
        check_item_count(len(parsed), f"output {ref.key} of {ref.step} (the fan-out of step {step.name})")
    except PipelineError as exc:
        raise WorkflowError(exc.message) from None
    return [as_text(v) for v in parsed]


def default_parallelism() -> int:
    """Locally, a fan-out without a parallelism runs as many items at once as this process has cores."""
    return usable_cores()


class FanOut:
    """Each step's instances (the names it runs under) and items; dynamic fan-outs expand as the run goes."""

    def __init__(self, pipeline: Pipeline, values: Mapping[str, str], recorded: Iterable[str]) -> None:
        names = list(recorded)
        self.instances: dict[str, list[str]] = {}
        self.items: dict[str, list[str | None]] = {}
        self.waiting: set[str] = set()  # dynamic fan-outs not expanded yet
        self.limits: dict[str, int] = {}
        for step in pipeline.all_steps:
            if isinstance(step.for_each, OutputRef):
                self.instances[step.name] = instances_in(step.name, names)
                self.items[step.name] = [None] * len(self.instances[step.name])
                if self.instances[step.name] == [step.name]:
                    self.waiting.add(step.name)
            else:
                found = plan.items(step, values)
                self.items[step.name] = [None] if found is None else list(found)
                self.instances[step.name] = plan.instance_names(step, values)
            if step.for_each is not None:
                self.limits[step.name] = step.parallelism or default_parallelism()

    def refill(self, step: Step, value: object) -> bool:
        """The items of an already expanded dynamic fan-out (a retried run), read again from its source's output;
        False when they no longer match its instances."""
        try:
            found = items_of(step, value)
        except WorkflowError:
            return False
        if len(found) != len(self.instances[step.name]):
            return False
        self.items[step.name] = list(found)
        return True

    def fold(self, step: Step) -> list[str]:
        """Take an expanded dynamic fan-out back to one waiting row (its source runs again); its former instances."""
        former = self.instances[step.name]
        self.instances[step.name], self.items[step.name] = [step.name], [None]
        self.waiting.add(step.name)
        return former

    def expand(self, step: Step, value: object) -> list[str]:
        """Expand a dynamic fan-out from its source's output: its instance names (none for an empty list)."""
        found = items_of(step, value)
        self.waiting.discard(step.name)
        if not found:
            return []
        self.items[step.name] = list(found)
        self.instances[step.name] = [f"{step.name}[{i}]" for i in range(len(found))]
        return self.instances[step.name]

    def state_of(self, step: str, status: Mapping[str, str]) -> str:
        """A step's state over its instances: Succeeded only once all are done."""
        found = {status[i] for i in self.instances[step]}
        for state in (FAILED, OMITTED, RUNNING, PENDING, SKIPPED):
            if state in found:
                return state
        return SUCCEEDED

    def gathered(self, outputs: Mapping[str, Mapping[str, object]], step: str) -> dict[str, object]:
        """A step's outputs; a fanned-out step's are lists over its instances."""
        instances = self.instances[step]
        if instances == [step]:
            return dict(outputs.get(step, {}))
        keys = dict.fromkeys(k for i in instances for k in outputs.get(i, {}))
        return {k: [outputs.get(i, {}).get(k) for i in instances] for k in keys}

    def room(self, step: Step, running: Counter[str], parallelism: int | None) -> int:
        """How many more instances of `step` may start now: its fan-out's parallelism, then the pipeline's."""
        room = self.limits.get(step.name, len(self.instances[step.name])) - running[step.name]
        if parallelism is not None:
            room = min(room, parallelism - sum(running.values()))
        return room
