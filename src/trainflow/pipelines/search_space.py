"""A tuning study's search space: parameter names to ranges, as the JSON a `Tune` step or `-p search-space=` gives.

`{"model-learning-rate": {"type": "float", "low": 0.0001, "high": 0.1, "log": true},
  "model-hidden-units": {"type": "int", "low": 32, "high": 256},
  "model-optimizer": {"type": "choice", "values": ["adam", "sgd"]}}`

A float or int range has `low` < `high` (`log`: sampled on a log scale, both bounds above 0; `step` for an int
range, default 1); a choice has at least one value (text or numbers). Parsed here once, so the local study
(Optuna) and the Katib Experiment get the same ranges.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

from trainflow.pipelines.errors import PipelineError

FLOAT, INT, CHOICE = "float", "int", "choice"
TYPES = (FLOAT, INT, CHOICE)
MAX_DIMENSIONS = 64
MAX_CHOICES = 256
_MAX_TEXT = 100_000


@dataclass(frozen=True)
class Dimension:
    """One parameter's range: float/int between `low` and `high` (inclusive), or one of `values`."""

    name: str
    type: str
    low: float = 0.0
    high: float = 0.0
    log: bool = False
    step: int = 1
    values: tuple[str, ...] = ()

    def as_json(self) -> dict[str, object]:
        if self.type == CHOICE:
            return {"type": CHOICE, "values": list(self.values)}
        bound = int if self.type == INT else float
        found: dict[str, object] = {"type": self.type, "low": bound(self.low), "high": bound(self.high)}
        if self.log:
            found["log"] = True
        if self.type == INT and self.step != 1:
            found["step"] = self.step
        return found


def parse_search_space(text: str, what: str = "search space") -> tuple[Dimension, ...]:
    """The dimensions `text` (a JSON object) describes, in its order; PipelineError in one line naming the bad one."""
    if len(text) > _MAX_TEXT:
        raise PipelineError(f"{what} is {len(text)} characters: keep it under {_MAX_TEXT}")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PipelineError(f"{what} is not JSON ({exc.msg}): give an object such as {_EXAMPLE}") from None
    if not isinstance(data, dict) or not data:
        raise PipelineError(f"{what} must be a JSON object with at least one parameter, e.g. {_EXAMPLE}")
    if len(data) > MAX_DIMENSIONS:
        raise PipelineError(f"{what} has {len(data)} parameters: tune at most {MAX_DIMENSIONS}")
    return tuple(_dimension(str(name), spec, what) for name, spec in data.items())


def canonical(dimensions: tuple[Dimension, ...]) -> str:
    """The search space as compact JSON (what a parameter's value becomes once checked)."""
    return json.dumps({d.name: d.as_json() for d in dimensions}, separators=(",", ":"))


_EXAMPLE = '{"model-learning-rate": {"type": "float", "low": 0.0001, "high": 0.1, "log": true}}'


def _dimension(name: str, spec: object, what: str) -> Dimension:
    where = f"{what}: parameter '{name[:80]}'"
    if not isinstance(spec, dict):
        raise PipelineError(f"{where} must be an object with a type ({', '.join(TYPES)})")
    kind = spec.get("type")
    if kind not in TYPES:
        raise PipelineError(f"{where} has type {json.dumps(kind)[:40]}: use one of {', '.join(TYPES)}")
    allowed = (
        {"type", "values"} if kind == CHOICE else {"type", "low", "high", "log", *(("step",) if kind == INT else ())}
    )
    extra = sorted(set(spec) - allowed)
    if extra:
        raise PipelineError(f"{where} ({kind}) does not take '{extra[0][:40]}': it takes {', '.join(sorted(allowed))}")
    if kind == CHOICE:
        return _choice(name, spec.get("values"), where)
    return _range(name, kind, spec, where)


def _choice(name: str, values: object, where: str) -> Dimension:
    if not isinstance(values, list) or not values:
        raise PipelineError(f'{where} is a choice with no values: give "values": [...] with at least one')
    if len(values) > MAX_CHOICES:
        raise PipelineError(f"{where} has {len(values)} values: give at most {MAX_CHOICES}")
    texts = []
    for value in values:
        if isinstance(value, bool) or not isinstance(value, str | int | float) or value != value:
            raise PipelineError(f"{where}: a choice's values are text or numbers, not {json.dumps(value)[:40]}")
        texts.append(value if isinstance(value, str) else json.dumps(value))
    if len(set(texts)) < len(texts):
        raise PipelineError(f"{where} lists a value twice: give each once")
    return Dimension(name, CHOICE, values=tuple(texts))


def _range(name: str, kind: str, spec: dict[str, object], where: str) -> Dimension:
    bounds = []
    for key in ("low", "high"):
        value = spec.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise PipelineError(f"{where} needs a finite number '{key}'")
        if kind == INT and value != int(value):
            raise PipelineError(f"{where} is an int range: '{key}' {value} is not a whole number")
        bounds.append(float(value))
    low, high = bounds
    log = spec.get("log", False)
    step = spec.get("step", 1)
    if not isinstance(log, bool):
        raise PipelineError(f"{where}: 'log' is true or false")
    if low >= high:
        raise PipelineError(f"{where} has an empty or inverted range [{low:g}, {high:g}]: give low < high")
    if log and low <= 0:
        raise PipelineError(f"{where} is on a log scale: give low above 0 (got {low:g})")
    if isinstance(step, bool) or not isinstance(step, int) or step < 1 or (log and step != 1):
        raise PipelineError(f"{where}: 'step' is a whole number of at least 1 (and 1 on a log scale)")
    return Dimension(name, kind, low=low, high=high, log=log, step=step)
