"""`when` conditions: `evaluate.accuracy >= 0.97`, `params.serve == true and train.loss < 0.5`.

A condition is comparisons (or bare true/false operands) joined by `and` / `or` (`and` binds
tighter). An operand is `params.NAME`, `STEP.OUTPUT`, a number, true/false, or 'quoted text'. Two
numbers compare as numbers, anything else as text. The local runner evaluates it; the Argo renderer
writes the same expression for Argo's `when`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from trainflow.pipelines.errors import PipelineError
from trainflow.pipelines.refs import OutputRef, ParamRef, Ref

_TOKEN = re.compile(r"\s*(?:(?P<op>==|!=|<=|>=|<|>)|(?P<quoted>'[^']*')|(?P<word>[^\s=!<>']+))")
_NUMBER = re.compile(r"^-?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?\Z")
OPERATORS = ("==", "!=", "<=", ">=", "<", ">")


@dataclass(frozen=True)
class Operand:
    """A reference, or a literal (`literal` holds its text; `quoted` for 'text')."""

    ref: Ref | None = None
    literal: str = ""
    quoted: bool = False


@dataclass(frozen=True)
class Comparison:
    left: Operand
    op: str | None = None  # None: `left` alone must be true
    right: Operand | None = None


@dataclass(frozen=True)
class Condition:
    """`any` of groups, each group `all` of its comparisons."""

    text: str
    groups: tuple[tuple[Comparison, ...], ...]

    def refs(self) -> list[Ref]:
        found: list[Ref] = []
        for group in self.groups:
            for c in group:
                found += [o.ref for o in (c.left, c.right) if o is not None and o.ref is not None]
        return found

    def evaluate(self, resolve: Callable[[Ref], str]) -> bool:
        """True when the condition holds with references resolved by `resolve`."""
        return any(all(_holds(c, resolve) for c in group) for group in self.groups)


@lru_cache(maxsize=1024)  # conditions are immutable; DAG walks ask for the same step's again and again
def parse_condition(text: str) -> Condition:
    """Parse a `when` text; a malformed one raises PipelineError saying what is wrong."""
    tokens = _tokens(text)
    groups: list[list[Comparison]] = [[]]
    i = 0
    while i < len(tokens):
        left = _operand(tokens[i], text)
        if i + 1 < len(tokens) and tokens[i + 1] in OPERATORS:
            if i + 2 >= len(tokens):
                raise PipelineError(f"condition '{text}' ends after '{tokens[i + 1]}': compare with a value")
            groups[-1].append(Comparison(left, tokens[i + 1], _operand(tokens[i + 2], text)))
            i += 3
        else:
            groups[-1].append(Comparison(left))
            i += 1
        if i < len(tokens):
            if tokens[i] not in ("and", "or"):
                raise PipelineError(f"condition '{text}': expected 'and' or 'or' before '{tokens[i]}'")
            if tokens[i] == "or":
                groups.append([])
            i += 1
            if i == len(tokens):
                raise PipelineError(f"condition '{text}' ends with '{tokens[i - 1]}'")
    return Condition(text, tuple(tuple(g) for g in groups))


def _tokens(text: str) -> list[str]:
    tokens, pos = [], 0
    text = text.strip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise PipelineError(f"condition '{text}': cannot read it from '{text[pos:]}' on (quote text with '...')")
        tokens.append(match.group(0).strip())
        pos = match.end()
    if not tokens:
        raise PipelineError("an empty condition: write e.g. when='evaluate.accuracy >= 0.97' or leave it out")
    return tokens


def _operand(token: str, text: str) -> Operand:
    if token in OPERATORS or token in ("and", "or"):
        raise PipelineError(f"condition '{text}': '{token}' where a value or reference belongs")
    if token.startswith("'"):
        return Operand(literal=token[1:-1], quoted=True)
    if _NUMBER.match(token) or token in ("true", "false"):
        return Operand(literal=token)
    head, dot, tail = token.partition(".")
    if not dot or not tail:
        raise PipelineError(
            f"condition '{text}': '{token}' is neither params.NAME, STEP.OUTPUT, a number, true/false nor 'quoted text'"
        )
    return Operand(ref=ParamRef(tail) if head == "params" else OutputRef(head, tail))


def _value(operand: Operand, resolve: Callable[[Ref], str]) -> str:
    return resolve(operand.ref) if operand.ref is not None else operand.literal


def _holds(c: Comparison, resolve: Callable[[Ref], str]) -> bool:
    left = _value(c.left, resolve)
    if c.op is None or c.right is None:
        return left.strip().lower() == "true"
    right = _value(c.right, resolve)
    a, b = _number(left), _number(right)
    if a is not None and b is not None and not (c.left.quoted or c.right.quoted):
        return _compare(a, b, c.op)
    return _compare(left, right, c.op)


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _compare(a: object, b: object, op: str) -> bool:
    return {"==": a == b, "!=": a != b, "<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]  # type: ignore[operator]
