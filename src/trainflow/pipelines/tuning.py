"""The `Tune` step kind: a hyperparameter study whose trials are runs of a `Train` step.

Locally the step is one program, `trainflow step tune ...`, that runs an Optuna study stored in the
workflow's folder (so `retry` resumes it); on Kubernetes it compiles to a Katib Experiment whose trial
template is the job the trial step compiles to. Both read the same fields, checked here once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

from trainflow.pipelines.errors import PipelineError
from trainflow.pipelines.params import Param
from trainflow.pipelines.programs import STEP
from trainflow.pipelines.refs import PLACEHOLDER, Arg, ParamRef, Ref, substitute
from trainflow.pipelines.roles import METRIC, TRAIN_DIR, TRIALS
from trainflow.pipelines.search_space import CHOICE, FLOAT, INT, Dimension, parse_search_space
from trainflow.pipelines.steps import Step, Train

ALGORITHMS = ("random", "grid", "tpe", "cmaes")
EARLY_STOPPING = ("none", "median", "hyperband")
DIRECTIONS = ("maximize", "minimize")
MAX_TRIALS = 10_000
MAX_GRID = 10_000
# What a study writes, whatever the pipeline: the best trial's parameters (a JSON object), its objective value,
# its number and train dir, and the path of study.json (every trial: parameters, value, state, duration).
BEST_PARAMS, BEST_VALUE, BEST_TRIAL, BEST_TRAIN_DIR = "best-params", "best-value", "best-trial", "best-train-dir"
TRIALS_FILE = "trials-file"
STUDY_OUTPUTS = (BEST_PARAMS, BEST_VALUE, BEST_TRIAL, BEST_TRAIN_DIR, TRIALS_FILE)
# How one argument of the trial's command reaches the `tune` program: text as is, a whole parameter the study
# may set, or the trial's train dir (each trial gets its own folder below it).
ARG_TEXT, ARG_PARAM, ARG_TRAIN_DIR = "text", "param:", "train-dir"


@dataclass(frozen=True, kw_only=True)
class Tune(Step):
    """Search the trial step's parameters for the best objective; trials run as full training jobs.

    trial: the `Train` step each trial runs; a tuned parameter must be a whole argument of its command
      (`param("model-learning-rate")` as one item of argv or as an input's value).
    search_space: JSON text (or `param(...)`) from parameter names to ranges: {"NAME": {"type": "float",
      "low": 1e-4, "high": 0.1, "log": true}, "N": {"type": "int", "low": 32, "high": 256},
      "C": {"type": "choice", "values": ["adam", "sgd"]}} (see `trainflow.pipelines.search_space`).
    objective: the metric to optimize: an output the trial writes (its final value) and, while it trains, the
      same metric (or `eval/<objective>`) it reports with `report_progress` (intermediate values, for pruning).
    direction: maximize or minimize. max_trials, parallel_trials: the budget and how many run at once.
    time_budget: seconds after which no new trial starts (empty: none).
    algorithm: random, grid, tpe or cmaes, with `seed`. early_stopping: none, median or hyperband.
    budget_param: the trial parameter that sets how long a trial trains (e.g. its training steps): Katib's
      hyperband, what early_stopping="hyperband" becomes on Kubernetes, sets it per trial.
    Every field but `trial` and `budget_param` may be text or `param(...)`. The step's outputs are `STUDY_OUTPUTS`.
    """

    kind: ClassVar[str] = "tune"
    trial: Train
    search_space: Arg
    objective: Arg = "accuracy"
    direction: Arg = "maximize"
    max_trials: int | Arg = 10
    parallel_trials: int | Arg = 1
    time_budget: float | Arg = ""
    algorithm: Arg = "tpe"
    early_stopping: Arg = "none"
    seed: int | Arg = 0
    budget_param: str = ""

    def __post_init__(self) -> None:
        for name in SETTINGS:
            object.__setattr__(self, name, str(getattr(self, name)))
        object.__setattr__(self, "depends", tuple(dict.fromkeys([*self.depends, *self.trial.depends])))
        object.__setattr__(self, "outputs", tuple(dict.fromkeys([*self.outputs, *STUDY_OUTPUTS])))
        kinds = dict(self.kinds if isinstance(self.kinds, Mapping) else [(str(k), str(v)) for k, v in self.kinds])
        kinds = {BEST_TRAIN_DIR: TRAIN_DIR, BEST_VALUE: METRIC, TRIALS_FILE: TRIALS, **kinds}
        object.__setattr__(self, "kinds", kinds)
        super().__post_init__()

    @property
    def command(self) -> tuple[str, ...]:
        settings = [t for name in SETTINGS for t in (f"--{name.replace('_', '-')}", str(getattr(self, name)))]
        trial = [t for kind, text in trial_args(self.trial) for t in ("--trial-arg", kind, text)]
        return (*STEP, "tune", "--study", self.name, *settings, *trial)

    def refs(self) -> list[Ref]:
        return [*super().refs(), *self.trial.refs()]

    def settings(self, values: Mapping[str, str]) -> StudySettings:
        """The study's settings with `values` (the run's parameters) filled in, checked; PipelineError if bad."""
        try:
            return _settings(self, values)
        except PipelineError as exc:
            raise PipelineError(f"step {self.name}: {exc.message}") from None

    def check_values(self, values: Mapping[str, str], params: Sequence[object] = ()) -> None:
        settings = self.settings(values)
        declared = {p.name: p for p in params if isinstance(p, Param)}
        for dimension in settings.dimensions:
            if dimension.name in declared:
                _check_against(dimension, declared[dimension.name], self.name)


SETTINGS = (
    "search_space",
    "objective",
    "direction",
    "max_trials",
    "parallel_trials",
    "time_budget",
    "algorithm",
    "early_stopping",
    "seed",
)


def trial_args(trial: Train) -> list[tuple[str, str]]:
    """The trial's command as (how, text) pairs: text, a whole parameter the study may set, or its train dir."""
    found = []
    for text in trial.command:
        match = PLACEHOLDER.fullmatch(text.strip())
        if trial.train_dir and text == trial.train_dir:
            found.append((ARG_TRAIN_DIR, text))
        elif match and match["param"]:
            found.append((f"{ARG_PARAM}{match['param']}", text))
        else:
            found.append((ARG_TEXT, text))
    return found


def tunable(trial: Train) -> tuple[str, ...]:
    """The parameters a study may set: those that are whole arguments of the trial's command."""
    return tuple(dict.fromkeys(k[len(ARG_PARAM) :] for k, _ in trial_args(trial) if k.startswith(ARG_PARAM)))


@dataclass(frozen=True)
class StudySettings:
    """A study's settings as the runners use them."""

    dimensions: tuple[Dimension, ...]
    objective: str
    direction: str
    max_trials: int
    parallel_trials: int
    time_budget: float | None
    algorithm: str
    early_stopping: str
    seed: int


def _settings(step: Tune, values: Mapping[str, str]) -> StudySettings:
    def value(text: str) -> str:
        return substitute(
            text, lambda ref: values[ref.name] if isinstance(ref, ParamRef) and ref.name in values else ""
        )

    texts = {name: value(str(getattr(step, name))) for name in SETTINGS}
    can_tune = tunable(step.trial)
    if step.budget_param and step.budget_param not in can_tune:
        raise PipelineError(
            f"budget_param '{step.budget_param[:80]}' is not a parameter trial step {step.trial.name} takes"
        )
    return study_settings(texts, can_tune, step.trial.declared_outputs(), step.trial.name)


def study_settings(
    texts: Mapping[str, str], can_tune: tuple[str, ...], reported: tuple[str, ...] | None, trial: str = "trial"
) -> StudySettings:
    """The settings `texts` (field name -> resolved text) give; `reported`: the trial's outputs (None: unknown)."""
    dimensions = parse_search_space(texts["search_space"])
    for d in dimensions:
        if d.name not in can_tune:
            raise PipelineError(
                f"search space: trial step {trial} does not take parameter '{d.name[:80]}': "
                f"tune one of {', '.join(can_tune) or 'none (no parameter is a whole argument of its command)'}"
            )
    objective = texts["objective"]
    if reported is not None and objective not in reported:
        raise PipelineError(
            f"objective '{objective[:80]}' is never reported by trial step {trial}: "
            f"use one of its outputs ({', '.join(reported) or 'none'})"
        )
    max_trials = _count(texts["max_trials"], "max-trials", 1, MAX_TRIALS)
    parallel = _count(texts["parallel_trials"], "parallel-trials", 1, MAX_TRIALS)
    if parallel > max_trials:
        raise PipelineError(
            f"parallel-trials {parallel} is above max-trials {max_trials}: run at most max-trials at once"
        )
    algorithm = _one_of(texts["algorithm"], "algorithm", ALGORITHMS)
    if algorithm == "grid":
        max_trials = min(max_trials, _grid_size(dimensions))
    return StudySettings(
        dimensions=dimensions,
        objective=objective,
        direction=_one_of(texts["direction"], "direction", DIRECTIONS),
        max_trials=max_trials,
        parallel_trials=min(parallel, max_trials),
        time_budget=_budget(texts["time_budget"]),
        algorithm=algorithm,
        early_stopping=_one_of(texts["early_stopping"], "early-stopping", EARLY_STOPPING),
        seed=_count(texts["seed"], "seed", 0, 2**31 - 1),
    )


def _check_against(dimension: Dimension, param: Param, step: str) -> None:
    """Every value the range may give is one the parameter takes (its type's checker): a trial gets nothing a
    submission could not give; a parameter of a meaning (a URL, an image) is not tuned."""
    if param.type not in ("str", "int", "float", "bool", "choice"):
        raise PipelineError(
            f"step {step}: search space: parameter {param.name} has type {param.type}: tune numbers or choices"
        )
    if dimension.type == FLOAT and param.type not in ("float", "str"):
        raise PipelineError(
            f"step {step}: search space: {param.name} is a float range but the parameter is {param.type}"
        )
    samples = dimension.values if dimension.type == CHOICE else (str(dimension.low), str(dimension.high))
    if dimension.type == INT:
        samples = tuple(str(int(float(v))) for v in samples)
    for value in samples:
        try:
            param.parse(value)
        except PipelineError as exc:
            raise PipelineError(f"step {step}: search space: {exc.message}") from None


def _count(text: str, what: str, low: int, high: int) -> int:
    try:
        number = int(text)
    except ValueError:
        raise PipelineError(f"{what} '{text[:40]}' is not a whole number") from None
    if not low <= number <= high:
        raise PipelineError(f"{what} {number} is out of range: give {low} to {high}")
    return number


def _one_of(text: str, what: str, choices: tuple[str, ...]) -> str:
    if text not in choices:
        raise PipelineError(f"{what} '{text[:40]}': use one of {', '.join(choices)}")
    return text


def _budget(text: str) -> float | None:
    if not text.strip():
        return None
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not 0 < seconds < float("inf"):
        raise PipelineError(f"time-budget '{text[:40]}' must be a number of seconds above 0 (or empty: none)")
    return seconds


def _grid_size(dimensions: tuple[Dimension, ...]) -> int:
    """How many points a grid search visits (a study on a grid runs at most that many trials)."""
    size = 1
    for d in dimensions:
        if d.type == FLOAT:
            raise PipelineError(
                f"algorithm grid: '{d.name[:80]}' is a float range, which has no grid: use an int or choice"
            )
        size *= len(d.values) if d.type == CHOICE else int((d.high - d.low) // d.step) + 1
        if size > MAX_GRID:
            raise PipelineError(f"algorithm grid: the grid has more than {MAX_GRID} points: narrow it or use tpe")
    return size


def grid_values(dimension: Dimension) -> list[str]:
    """The points of `dimension` a grid search visits, as text."""
    if dimension.type == CHOICE:
        return list(dimension.values)
    return [str(int(v)) for v in range(int(dimension.low), int(dimension.high) + 1, dimension.step)]
