"""Typed pipeline parameters: str, int, float, bool or choice, with defaults, checked before anything runs.

Values travel as strings (what `-p NAME=VALUE` gives and what Argo passes); `Param.parse` checks a
value against the type and returns its canonical text (`"1e-2"` -> `"0.01"`, `"yes"` -> `"true"`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

from trainflow.pipelines.errors import PipelineError

TYPES = ("str", "int", "float", "bool", "choice")
# No value needs a line break or a control character, and each is a way to end a string where it lands.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
Default = str | int | float | bool | None


@dataclass(frozen=True)
class Param:
    """A pipeline parameter.

    name: what `-p NAME=VALUE` and `param(NAME)` use.
    default: the value when none is given; None makes the parameter required.
    help: one line shown by `trainflow pipeline show`.
    type: "str", "int", "float" (finite), "bool" (true/false/yes/no/1/0) or "choice" (one of `choices`).
    minimum: the smallest value an int or float may take.
    above: a bound a float must exceed (a learning rate: above=0).
    cache_key: False for a parameter that only names the run (a job name): it never makes a step re-run.
    """

    name: str
    default: Default = ""
    help: str = ""
    type: str = "str"
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    above: float | None = None
    cache_key: bool = True

    @property
    def required(self) -> bool:
        return self.default is None

    def parse(self, raw: object) -> str:
        """`raw` checked against the type, as canonical text; a bad value raises PipelineError."""
        text = _text(raw)
        if _CONTROL.search(text):
            raise PipelineError(
                f"parameter {self.name} holds a line break or control character: give it on one line ({text[:60]!r})"
            )
        if self.type == "str":
            return text
        if self.type == "choice":
            if text not in self.choices:
                raise PipelineError(f"parameter {self.name} must be one of {', '.join(self.choices)}, not '{text}'")
            return text
        if self.type == "bool":
            lowered = text.lower()
            if lowered in ("true", "1", "yes"):
                return "true"
            if lowered in ("false", "0", "no"):
                return "false"
            raise PipelineError(f"parameter {self.name} must be true or false, not '{text}'")
        return self._number(text)

    def _number(self, text: str) -> str:
        try:
            value: float = int(text) if self.type == "int" else float(text)
        except ValueError:
            kind = "a whole number" if self.type == "int" else "a number"
            raise PipelineError(f"parameter {self.name} must be {kind}, not '{text}'") from None
        if not math.isfinite(value) or (self.above is not None and not value > self.above):
            bound = f" greater than {_text(self.above)}" if self.above is not None else ""
            raise PipelineError(f"parameter {self.name} must be a finite number{bound}, not '{text}'")
        if self.minimum is not None and value < self.minimum:
            raise PipelineError(f"parameter {self.name} must be at least {_text(self.minimum)}, not {text}")
        return str(value) if self.type == "int" else repr(float(value))


def _text(raw: object) -> str:
    if isinstance(raw, bool):
        return "true" if raw else "false"
    if isinstance(raw, float) and raw.is_integer() and abs(raw) < 1e15:
        return repr(raw)
    return str(raw).strip()


def check_param(p: Param) -> None:
    """A parameter whose own declaration is wrong (unknown type, a default of the wrong type)."""
    if p.type not in TYPES:
        raise PipelineError(f"parameter {p.name} has type '{p.type}': use one of {', '.join(TYPES)}")
    if p.type == "choice" and not p.choices:
        raise PipelineError(f"parameter {p.name} is a choice without choices: give choices=(...)")
    if p.default is not None and not (p.type == "str" and p.default == ""):
        try:
            p.parse(p.default)
        except PipelineError as exc:
            raise PipelineError(f"the default of {exc.message}") from None


def resolve_values(params: tuple[Param, ...], given: Mapping[str, object], pipeline: str) -> dict[str, str]:
    """Defaults overlaid with `given`, each value parsed; unknown or missing names are refused."""
    known = [p.name for p in params]
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise PipelineError(f"unknown parameter(s) {', '.join(unknown)} for {pipeline}; known: {', '.join(known)}")
    values = {}
    for p in params:
        raw = given.get(p.name, p.default)
        if raw is None:
            raise PipelineError(f"{pipeline} needs -p {p.name}=VALUE ({p.help or p.type})")
        values[p.name] = p.parse(raw)
    return values
