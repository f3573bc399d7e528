"""`when` conditions as Argo expressions, and the ones a compiler can decide from the parameters alone."""

from __future__ import annotations

from collections.abc import Mapping

from trainflow.pipelines import Pipeline
from trainflow.pipelines.conditions import Comparison, Condition, Operand
from trainflow.pipelines.refs import OutputRef, ParamRef
from trainflow.workflows.kubernetes import manifest_values

_BOOLS = ("true", "false")


def _value(operand: Operand) -> str:
    """The operand as an expr term: a reference into Argo's variables, or a quoted literal."""
    if isinstance(operand.ref, ParamRef):
        return manifest_values.variable(f"workflow.parameters.{operand.ref.name}")
    if isinstance(operand.ref, OutputRef):
        ref = operand.ref
        return f"tasks[{manifest_values.literal(ref.step)}].outputs.parameters[{manifest_values.literal(ref.key)}]"
    return manifest_values.literal(operand.literal)


def _is_number(operand: Operand) -> bool:
    if operand.ref is not None or operand.quoted:
        return False
    try:
        float(operand.literal)
    except ValueError:
        return False
    return True


def _is_bool(operand: Operand) -> bool:
    return operand.ref is None and not operand.quoted and operand.literal in _BOOLS


def _truth(operand: Operand) -> str:
    if _is_bool(operand):
        return _value(operand)
    return f"sprig.lower(sprig.trim({_value(operand)}))"  # as the local runner reads true/false


def _comparison(c: Comparison) -> str:
    if c.op is None or c.right is None:
        return f"{_truth(c.left)} == 'true'"
    literal = c.right if c.right.ref is None else c.left if c.left.ref is None else None
    # Two references: ordering compares numbers, equality text; against a literal, a number compares as one.
    ordered = c.op not in ("==", "!=") if literal is None else _is_number(literal)
    if _is_bool(c.left) or _is_bool(c.right):
        return f"{_truth(c.left)} {c.op} {_truth(c.right)}"
    if ordered:
        return f"asFloat({_value(c.left)}) {c.op} asFloat({_value(c.right)})"
    return f"{_value(c.left)} {c.op} {_value(c.right)}"


def argo_when(condition: Condition, pipeline: Pipeline) -> str:
    """The condition as one Argo expression tag (expr), references read as values, never spliced into the text.

    A value is never part of the expression's text, so a parameter or a step output cannot change what
    it tests (with govaluate over substituted text, an output `1 || true` would have).
    """
    groups = [" && ".join(_comparison(c) for c in group) for group in condition.groups]
    expression = groups[0] if len(groups) == 1 else " || ".join(f"({g})" for g in groups)
    return "{{=%s}}" % expression


def compile_time_value(condition: Condition, values: Mapping[str, str]) -> bool | None:
    """True or False when the condition reads only parameters (known when compiling), else None."""
    if any(not isinstance(r, ParamRef) for r in condition.refs()):
        return None
    return condition.evaluate(lambda ref: values[ref.name])  # type: ignore[union-attr]
