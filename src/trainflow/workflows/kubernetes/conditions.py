"""`when` conditions as Argo expressions, and the ones a compiler can decide from the parameters alone."""

from __future__ import annotations

from collections.abc import Mapping

from trainflow.pipelines import Pipeline
from trainflow.pipelines.conditions import Comparison, Condition, Operand
from trainflow.pipelines.refs import OutputRef, ParamRef
from trainflow.workflows.kubernetes.resources import workflow_param

_BOOLS = ("true", "false")


def _text(operand: Operand) -> str:
    if isinstance(operand.ref, ParamRef):
        return workflow_param(operand.ref.name)
    if isinstance(operand.ref, OutputRef):
        return "{{tasks.%s.outputs.parameters.%s}}" % (operand.ref.step, operand.ref.key)
    return operand.literal


def _is_number(operand: Operand) -> bool:
    if operand.ref is not None or operand.quoted:
        return False
    try:
        float(operand.literal)
    except ValueError:
        return False
    return True


def _comparison(c: Comparison) -> str:
    if c.op is None or c.right is None:
        return f"{_text(c.left)} == true"
    literal = c.right if c.right.ref is None else c.left if c.left.ref is None else None
    if literal is None:
        ordered = c.op not in ("==", "!=")  # two references: ordering compares numbers, equality text
    else:
        ordered = _is_number(literal) or (not literal.quoted and literal.literal in _BOOLS)
    if ordered:
        return f"{_text(c.left)} {c.op} {_text(c.right)}"  # numbers and booleans compare unquoted in govaluate
    return f"'{_text(c.left)}' {c.op} '{_text(c.right)}'"


def argo_when(condition: Condition, pipeline: Pipeline) -> str:
    """The condition in Argo's `when` syntax (govaluate), references as Argo placeholders."""
    groups = [" && ".join(_comparison(c) for c in group) for group in condition.groups]
    return groups[0] if len(groups) == 1 else " || ".join(f"({g})" for g in groups)


def compile_time_value(condition: Condition, values: Mapping[str, str]) -> bool | None:
    """True or False when the condition reads only parameters (known when compiling), else None."""
    if any(not isinstance(r, ParamRef) for r in condition.refs()):
        return None
    return condition.evaluate(lambda ref: values[ref.name])  # type: ignore[union-attr]
