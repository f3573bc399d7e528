"""Pipelines as plain data (dicts, YAML) and back: the YAML form, and what the local runner stores.

The YAML form mirrors the Python API: `name`, `params` (list of Param fields), `steps` (list of step
fields plus `kind`: command, call, train or service). References are placeholders such as
`{{params.lr}}` and `{{steps.prep.outputs.rows}}`. `pipeline.schema.json` describes it.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from functools import cache
from pathlib import Path
from typing import Any

from trainflow.pipelines.errors import PipelineError
from trainflow.pipelines.limits import check_step_count
from trainflow.pipelines.notify import Notify
from trainflow.pipelines.params import Param
from trainflow.pipelines.pipeline import Pipeline
from trainflow.pipelines.refs import PLACEHOLDER, OutputRef, ParamRef
from trainflow.pipelines.steps import KINDS, Port, Probe, Resources, Step
from trainflow.pipelines.tuning import SETTINGS, Tune

SCHEMA_PATH = Path(__file__).with_name("pipeline.schema.json")
_PAIRS = ("inputs", "urls", "kinds")
_ONLY = {  # fields one kind of step has, refused on the others with a line naming the kind
    "service": ("ports", "probe", "urls", "ready_timeout", "liveness", "service_type", "serves", "model_name"),
    "train": ("train_dir",),
    "tune": ("trial", "budget_param", *SETTINGS),
    "notify": ("url", "url_env", "url_secret", "on", "log_lines"),
}
_KINDS: dict[str, type[Step]] = {**KINDS, Notify.kind: Notify, Tune.kind: Tune}


def to_dict(pipeline: Pipeline) -> dict[str, Any]:
    """The pipeline as JSON-ready data (what `from_dict` reads back)."""
    return {
        "name": pipeline.name,
        "description": pipeline.description,
        "name_param": pipeline.name_param,
        "name_suffix": pipeline.name_suffix,
        "inherit_from": pipeline.inherit_from,
        "artifacts_url": pipeline.artifacts_url,
        "params": [{k: v for k, v in dataclasses.asdict(p).items() if k != "choices" or v} for p in pipeline.params],
        "steps": [_step_dict(s) for s in pipeline.steps],
        **({"parallelism": pipeline.parallelism} if pipeline.parallelism is not None else {}),
        **({"on_exit": [_step_dict(s) for s in pipeline.on_exit]} if pipeline.on_exit else {}),
    }


def _step_dict(step: Step) -> dict[str, Any]:
    data: dict[str, Any] = {"kind": step.kind}
    for f in dataclasses.fields(step):
        value = getattr(step, f.name)
        if isinstance(value, Step):
            value = _step_dict(value)  # a Tune step's trial
        elif f.name in _PAIRS:
            value = dict(value)
        elif isinstance(value, ParamRef | OutputRef):
            value = str(value)
        elif f.name in ("ports",):
            value = [dataclasses.asdict(p) for p in value]
        elif dataclasses.is_dataclass(value):
            value = dataclasses.asdict(value)  # type: ignore[arg-type]
        elif isinstance(value, tuple):
            value = list(value)
        data[f.name] = value
    return data


def from_dict(data: Any, check: bool = True) -> Pipeline:
    """A Pipeline from data shaped like `to_dict`'s, checked against the JSON Schema first unless `check` is False."""
    data = _on_as_written(data)
    if check:
        if isinstance(data, dict) and isinstance(data.get("steps"), list):
            check_step_count(len(data["steps"]))  # before the schema check, whose time grows with the steps
        _check_schema(data)
    params = tuple(Param(**{**p, "choices": tuple(p.get("choices", ()))}) for p in data.get("params", []))
    steps = tuple(_step(s) for s in data["steps"])
    on_exit = tuple(_step(s) for s in data.get("on_exit") or ())
    return Pipeline(
        name=data["name"],
        params=params,
        steps=steps,
        name_param=data.get("name_param"),
        description=data.get("description", ""),
        name_suffix=data.get("name_suffix", ""),
        inherit_from=data.get("inherit_from"),
        artifacts_url=data.get("artifacts_url", ""),
        parallelism=data.get("parallelism"),
        on_exit=on_exit,
    )


def _on_as_written(data: Any) -> Any:
    """A Notify step's `on:` as written: YAML 1.1 reads the bare key `on` as the boolean true."""
    if not isinstance(data, dict) or not isinstance(data.get("on_exit"), list):
        return data
    steps = [
        {("on" if k is True else k): v for k, v in s.items()} if isinstance(s, dict) else s for s in data["on_exit"]
    ]
    return {**data, "on_exit": steps}


def _step(data: dict[str, Any]) -> Step:
    fields: dict[str, Any] = {k: v for k, v in data.items() if k != "kind"}
    cls = _KINDS[data.get("kind", "command")]
    if "resources" in fields:
        fields["resources"] = Resources(**fields["resources"])
    if "ports" in fields:
        fields["ports"] = tuple(Port(**p) for p in fields["ports"])
    for key in ("probe", "liveness"):
        if fields.get(key):
            fields[key] = Probe(**fields[key])
    if isinstance(fields.get("url_secret"), list):
        fields["url_secret"] = tuple(fields["url_secret"])
    image = fields.get("image")
    if isinstance(image, str) and PLACEHOLDER.fullmatch(image) and PLACEHOLDER.fullmatch(image)["param"]:  # type: ignore[index]
        fields["image"] = ParamRef(PLACEHOLDER.fullmatch(image)["param"])  # type: ignore[index]
    for key in _PAIRS:
        if key in fields:
            fields[key] = tuple((k, _text(v)) for k, v in fields[key].items())
    for key in ("argv",):
        if key in fields:
            fields[key] = tuple(_text(a) for a in fields[key])
    if isinstance(fields.get("trial"), dict):
        fields["trial"] = _trial(data["name"], fields["trial"])
    if isinstance(fields.get("search_space"), dict):  # YAML may give the ranges as a mapping
        fields["search_space"] = json.dumps(fields["search_space"])
    for kind, keys in _ONLY.items():
        for key in keys:
            if cls.kind != kind and key in fields:
                raise PipelineError(f"step {data['name']}: '{key}' belongs to a {kind} step (kind: {kind})")
    try:
        return cls(**fields)
    except TypeError as exc:
        raise PipelineError(f"step {data.get('name')}: {exc} (see `trainflow pipeline show` and the schema)") from None


def _trial(name: str, data: dict[str, Any]) -> Step:
    if data.get("kind", "train") != "train":
        raise PipelineError(f"step {name}: its trial is a train step (kind: train), not {str(data.get('kind'))[:40]}")
    return _step({**data, "kind": "train"})


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@cache
def schema() -> dict[str, Any]:
    """The JSON Schema of the YAML form."""
    return json.loads(SCHEMA_PATH.read_text())


def _check_schema(data: Any) -> None:
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema())
    # A few errors are enough to name the first in the file; a hostile file could have one per value.
    errors = sorted(itertools.islice(validator.iter_errors(data), _ERRORS_LOOKED_AT), key=_path_order)
    if errors:
        error = errors[0]
        where = _where(data, list(error.absolute_path))
        raise PipelineError(f"{_cut(where + error.message)} (see {SCHEMA_PATH.name} shipped with trainflow)")


_ERRORS_LOOKED_AT = 20
_MESSAGE_CHARS = 300


def _path_order(error: Any) -> list[str]:
    return [f"{p:09d}" if isinstance(p, int) else str(p) for p in error.absolute_path]


def _cut(message: str) -> str:
    """The message on one line, its middle left out when a long value made it long."""
    message = message.replace("\n", "\\n")
    if len(message) <= _MESSAGE_CHARS:
        return message
    return f"{message[: _MESSAGE_CHARS - 80]} ... {message[-70:]}"


def _where(data: Any, path: list[Any]) -> str:
    if len(path) >= 2 and path[0] == "steps" and isinstance(path[1], int):
        try:
            name = data["steps"][path[1]].get("name", f"#{path[1] + 1}")
        except (AttributeError, IndexError, KeyError, TypeError):
            name = f"#{path[1] + 1}"
        rest = ".".join(str(p) for p in path[2:])
        return f"step {name}: {rest + ': ' if rest else ''}"
    return f"{'.'.join(str(p) for p in path)}: " if path else ""
