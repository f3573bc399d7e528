"""Typed pipeline parameters, with defaults, checked before anything runs.

Values travel as strings (what `-p NAME=VALUE` gives and what Argo passes); `Param.parse` checks a
value against the type and returns its canonical text (`"1e-2"` -> `"0.01"`, `"yes"` -> `"true"`).
Types are plain (str, int, float, bool, choice) or say what the value means (url, dns-label,
model-name, ...: see `param_types`), so every backend checks a pipeline's values by its declarations.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

from trainflow.pipelines.errors import PipelineError
from trainflow.pipelines.param_types import MEANINGS, check_meaning, filled_from
from trainflow.pipelines.refs import PLACEHOLDER, ParamRef

PLAIN_TYPES = ("str", "int", "float", "bool", "choice")
TYPES = (*PLAIN_TYPES, *MEANINGS)
_LOCAL_STORE = re.compile(r"[a-z0-9][a-z0-9-]*")
# No value needs a line break or a control character, and each is a way to end a string where it lands.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
Default = str | int | float | bool | None


@dataclass(frozen=True)
class Param:
    """A pipeline parameter.

    name: what `-p NAME=VALUE` and `param(NAME)` use.
    default: the value when none is given; None makes the parameter required.
    help: one line shown by `trainflow pipeline show`.
    type: "str", "int", "float" (finite), "bool" (true/false/yes/no/1/0), "choice" (one of `choices`), or a
      meaning: "url" (a path, file://, s3:// or http(s)://; paths made absolute), "dns-label" (a Kubernetes
      name), "secret-name", "tracking-secret" (a Secret every pod reads MLflow's tracking URI and credentials
      from), "tracking-uri" (an MLflow server, no credentials in it), "tracking-experiment" (an MLflow
      experiment), "registry-model" (models:/NAME@ALIAS or models:/NAME/N), "model-name" (what a model
      server takes), "model-factory" (auto, cnn, mlp or module:attr), "image", "region", "endpoint" (an http(s) URL), "host" (HOST[:PORT] or a URL) or
      "training-runtime" (a Kubeflow ClusterTrainingRuntime that `--job-kind trainjob` references) or
      "quantity" (a Kubernetes quantity, 500m or 4Gi: a step's `Resources(cpu=param(...))`).
      An empty value of a meaning is "not given" where the default is empty too.
    minimum: the smallest value an int or float may take.
    above: a bound a float must exceed (a learning rate: above=0).
    cache_key: False for a parameter that only names the run (a job name): it never makes a step re-run.
    fallback: what an empty value becomes: a literal (a default URL) or `param(OTHER)`, another
      parameter's value (an endpoint URL given as the example's S3_ENDPOINT host).
    local_store: left empty, a run on this machine uses this folder of its own object store
      (`$TRAINFLOW_HOME/store/<local_store>`); a cluster has no such store.
    """

    name: str
    default: Default = ""
    help: str = ""
    type: str = "str"
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    above: float | None = None
    cache_key: bool = True
    fallback: str | ParamRef = ""
    local_store: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "fallback", str(self.fallback))

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
        if self.type in MEANINGS:
            return "" if text == "" and self.default == "" else check_meaning(self.type, self.name, text)
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
    if p.local_store and not _LOCAL_STORE.fullmatch(p.local_store):
        raise PipelineError(f"parameter {p.name}: local_store '{p.local_store}' must be a folder name (e.g. models)")
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
    for p in params:
        if p.fallback and values[p.name] == "":
            values[p.name] = p.parse(filled_from(p.type, _fallback_value(p, values)))
    return values


def fallback_param(p: Param) -> str | None:
    """The parameter `p` falls back to, when its fallback is `param(NAME)`; None for a literal or no fallback."""
    match = PLACEHOLDER.fullmatch(str(p.fallback))
    return match["param"] if match and match["param"] else None


def _fallback_value(p: Param, values: Mapping[str, str]) -> str:
    other = fallback_param(p)
    return str(p.fallback) if other is None else values[other]
