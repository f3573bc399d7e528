"""Calling a step's Python function: import `module:function`, convert its inputs, turn its result into outputs."""

from __future__ import annotations

import importlib
import inspect
import json
import math
import sys
import traceback
from collections.abc import Callable, Mapping
from typing import Any, get_type_hints

from trainflow.pipelines.errors import PipelineError
from trainflow.pipelines.keys import check_keys

_PARSERS: dict[Any, Callable[[str], Any]] = {
    int: int,
    float: float,
    bool: lambda t: t.strip().lower() in ("true", "1", "yes"),
    list: json.loads,
    dict: json.loads,
}


def import_function(spec: str) -> Callable[..., Any]:
    """The function `module:function` names, or PipelineError saying why it cannot be imported."""
    module_name, _, name = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - the user's module may raise anything on import
        raise PipelineError(f"cannot import {module_name} for {spec}: {_said(exc)}") from None
    function = getattr(module, name, None)
    if not callable(function):
        raise PipelineError(f"module {module_name} has no function '{name}': check {spec}")
    return function


def convert_inputs(function: Callable[..., Any], inputs: Mapping[str, str]) -> dict[str, Any]:
    """Inputs as keyword arguments, each converted to the type the function's annotation names."""
    try:
        hints = get_type_hints(function)
    except Exception:  # noqa: BLE001 - unresolvable annotations: pass text
        hints = {}
    params = inspect.signature(function).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    unknown = [k for k in inputs if k not in params and not takes_any]
    if unknown:
        raise PipelineError(
            f"{function.__name__}() takes no argument '{unknown[0]}': its arguments are {', '.join(params) or 'none'}"
        )
    converted = {}
    for key, text in inputs.items():
        kind = getattr(hints.get(key), "__origin__", None) or hints.get(key)
        parser = _PARSERS.get(kind)
        if parser is None:
            converted[key] = text
            continue
        try:
            converted[key] = parser(text)
        except ValueError:
            raise PipelineError(
                f"input {key}='{text}' is not a {getattr(kind, '__name__', kind)} as {function.__name__}() expects"
            ) from None
    return converted


def as_outputs(result: Any, spec: str) -> dict[str, Any]:
    """A function's return value as step outputs: a dict with text keys and JSON values, or None."""
    if result is None:
        return {}
    if not isinstance(result, dict) or not all(isinstance(k, str) for k in result):
        raise PipelineError(f"{spec} returned {type(result).__name__}: return a dict of outputs (or None)")
    try:
        check_keys("output", result)
    except PipelineError as exc:
        raise PipelineError(f"{spec} returned {exc.message}") from None
    try:
        json.dumps(result, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise PipelineError(
            f"{spec} returned outputs that are not JSON ({exc}): return text, numbers, booleans, lists or dicts"
        ) from None
    return {k: v for k, v in result.items() if not (isinstance(v, float) and not math.isfinite(v))}


def call_function(
    function: Callable[..., Any], inputs: Mapping[str, str], spec: str, *, exit_returns: bool = True
) -> dict[str, Any]:
    """Call `function` with converted inputs; an exception in it is its own traceback on stderr and a PipelineError.

    `sys.exit()`, `sys.exit(0)` in it is a return without a value where `exit_returns` (one process; a rank of a
    distributed world would leave its peers waiting in a collective) and its failure otherwise, as any other code is.
    """
    kwargs = convert_inputs(function, inputs)
    try:
        result = function(**kwargs)
    except SystemExit as exc:
        if not (exit_returns and (exc.code is None or (isinstance(exc.code, int) and exc.code == 0))):
            raise _failed(exc) from None
        result = None
    except Exception as exc:  # noqa: BLE001 - the user's code may raise anything: show where, then fail the step
        raise _failed(exc) from None
    return as_outputs(result, spec)


def _failed(exc: BaseException) -> PipelineError:
    """The function's failure: its traceback (without this module's frames) on stderr, its message the error's."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename != __file__]
    print("Traceback (most recent call last):\n" + "".join(traceback.format_list(frames)).rstrip(), file=sys.stderr)
    return PipelineError(_said(exc), exit_code=1)


def _said(exc: BaseException) -> str:
    """An exception as one line: `sys.exit(3)` for an exit (its code may be None, a number or a text)."""
    if isinstance(exc, SystemExit):
        return f"sys.exit({'' if exc.code is None else repr(exc.code)})"
    return f"{type(exc).__name__}: {exc}"
