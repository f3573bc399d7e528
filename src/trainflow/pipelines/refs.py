"""References inside a step's arguments: a parameter, an earlier step's output, a fan-out item (or one of its
fields), a port, the host, and in an exit step the workflow's outcome.

In Python a reference is an object (`param("lr")`); written into a string (an f-string, or YAML) it is a
placeholder such as `{{params.lr}}`. Steps keep their arguments as such strings, and each backend
replaces the placeholders: the local runner with values, the Argo renderer with Argo expressions.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

_NAME = r"[A-Za-z0-9][A-Za-z0-9_.\-]*"
_FIELD = r"[A-Za-z_][A-Za-z0-9_\-]*"
WORKFLOW_FIELDS = ("name", "pipeline", "status", "duration", "failed_step", "failure_message")
PLACEHOLDER = re.compile(
    rf"\{{\{{\s*(params\.(?P<param>{_NAME})|steps\.(?P<step>{_NAME})\.outputs\.(?P<key>{_NAME})"
    rf"|(?P<item>item)(\.(?P<field>{_FIELD}))?|ports\.(?P<port>{_NAME})|(?P<host>host)"
    rf"|workflow\.(?P<workflow>{'|'.join(WORKFLOW_FIELDS)}))\s*\}}\}}"
)
ITEM_FIELD = re.compile(_FIELD)
ANY_PLACEHOLDER = re.compile(r"\{\{.*?\}\}")


@dataclass(frozen=True)
class ParamRef:
    """The value of a pipeline parameter: `param("lr")`, or `{{params.lr}}` in a string."""

    name: str

    def __str__(self) -> str:
        return f"{{{{params.{self.name}}}}}"


@dataclass(frozen=True)
class OutputRef:
    """An output of an earlier step (a fanned-out step's output is the JSON list of its items' outputs)."""

    step: str
    key: str

    def __str__(self) -> str:
        return f"{{{{steps.{self.step}.outputs.{self.key}}}}}"


@dataclass(frozen=True)
class ItemRef:
    """The current item of a fanned-out step (`for_each`), or `ITEM["lr"]`: field `lr` of an item that is an object."""

    field: str | None = None

    def __getitem__(self, field: str) -> ItemRef:
        if self.field is not None or not ITEM_FIELD.fullmatch(field):
            raise TypeError(f"ITEM[{field!r}]: name one field of the item (letters, digits, '_' or '-')")
        return ItemRef(field)

    def __str__(self) -> str:
        return "{{item}}" if self.field is None else f"{{{{item.{self.field}}}}}"


@dataclass(frozen=True)
class PortRef:
    """A port a service listens on: a free port locally, the container port on Kubernetes."""

    name: str

    def __str__(self) -> str:
        return f"{{{{ports.{self.name}}}}}"


@dataclass(frozen=True)
class HostRef:
    """The address a service binds: 127.0.0.1 locally, 0.0.0.0 in a pod."""

    def __str__(self) -> str:
        return "{{host}}"


@dataclass(frozen=True)
class WorkflowRef:
    """In an exit step (`Pipeline(on_exit=...)`): the run's name, its pipeline's, status (Succeeded, Failed), seconds,
    the first failed step and its message (both empty when none failed), e.g. `{{workflow.status}}`."""

    field: str

    def __str__(self) -> str:
        return f"{{{{workflow.{self.field}}}}}"


Ref = ParamRef | OutputRef | ItemRef | PortRef | HostRef | WorkflowRef
Arg = str | int | float | Ref
ITEM = ItemRef()
HOST = HostRef()


def param(name: str) -> ParamRef:
    """Reference the pipeline parameter `name`."""
    return ParamRef(name)


def output(step: str, key: str) -> OutputRef:
    """Reference output `key` of step `step` (the step then runs after it)."""
    return OutputRef(step, key)


def port(name: str) -> PortRef:
    """Reference the port `name` of this service step."""
    return PortRef(name)


def workflow(field: str) -> WorkflowRef:
    """Reference the run's outcome in an exit step: one of name, status, duration, failed_step, failure_message."""
    if field not in WORKFLOW_FIELDS:
        raise ValueError(f"workflow('{field}'): use one of {', '.join(WORKFLOW_FIELDS)}")
    return WorkflowRef(field)


def reference(text: str) -> Ref | None:
    """The reference `text` is as a whole (surrounding blanks aside), or None when it is anything else."""
    match = PLACEHOLDER.fullmatch(text.strip())
    return _ref(match) if match else None


def refs_in(text: str) -> list[Ref]:
    """Every reference written in `text`."""
    return [_ref(m) for m in PLACEHOLDER.finditer(text)]


def unknown_placeholders(text: str) -> list[str]:
    """Placeholders in `text` that name nothing trainflow knows (a typo such as `{{param.lr}}`)."""
    return [m.group(0) for m in ANY_PLACEHOLDER.finditer(text) if not PLACEHOLDER.fullmatch(m.group(0))]


def substitute(text: str, resolve: Callable[[Ref], str]) -> str:
    """`text` with each reference replaced by what `resolve` gives for it."""
    return PLACEHOLDER.sub(lambda m: resolve(_ref(m)), text)


def _ref(match: re.Match[str]) -> Ref:
    if match["param"]:
        return ParamRef(match["param"])
    if match["step"]:
        return OutputRef(match["step"], match["key"])
    if match["item"]:
        return ItemRef(match["field"]) if match["field"] else ITEM
    if match["port"]:
        return PortRef(match["port"])
    if match["workflow"]:
        return WorkflowRef(match["workflow"])
    return HOST
