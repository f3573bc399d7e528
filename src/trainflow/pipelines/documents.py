"""A YAML or JSON pipeline file as plain data, read within bounds: a hostile file is one PipelineError.

The file is at most `MAX_PIPELINE_FILE_BYTES` of UTF-8. YAML aliases are refused (nested ones expand
a few hundred bytes into gigabytes: "billion laughs"), so the data is never larger than the file;
lists and mappings nest at most `MAX_NESTING` deep, and a key appears once per mapping (YAML and JSON
would otherwise keep the last one silently).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from trainflow.pipelines.errors import PipelineError
from trainflow.pipelines.limits import MAX_NESTING, MAX_PIPELINE_FILE_BYTES
from trainflow.storage.names import shown

_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def read_document(path: Path) -> Any:
    """The data in the YAML or JSON file at `path` (`.json` is JSON, anything else YAML)."""
    text = _text(_bounded_bytes(path))
    if path.suffix == ".json":
        return _from_json(text)
    return _from_yaml(text)


def _bounded_bytes(path: Path) -> bytes:
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_PIPELINE_FILE_BYTES + 1)
    except OSError as exc:
        raise PipelineError(f"cannot read it: {exc.strerror}") from None
    if len(raw) > MAX_PIPELINE_FILE_BYTES:
        raise PipelineError(f"is larger than {MAX_PIPELINE_FILE_BYTES} bytes: a pipeline file must be smaller")
    return raw


def _text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise PipelineError(f"is not UTF-8 text (byte {exc.start}): save it as UTF-8") from None


def _from_json(text: str) -> Any:
    try:
        data = json.loads(text, object_pairs_hook=_json_object, parse_constant=_json_constant)
    except RecursionError:
        raise PipelineError(f"is nested deeper than {MAX_NESTING} lists and objects") from None
    except ValueError as exc:
        raise PipelineError(f"not valid JSON: {str(exc).splitlines()[0]}") from None
    _check_depth(data)
    return data


def _json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    data = dict(pairs)
    if len(data) < len(pairs):
        key = next(k for i, (k, _) in enumerate(pairs) if k in dict(pairs[:i]))
        raise PipelineError(f"duplicate key {shown(key, 80)}: give each key once per object")
    return data


def _json_constant(name: str) -> Any:
    raise PipelineError(f"not valid JSON: {name} is not a JSON number")


def _check_depth(data: Any) -> None:
    """Refuse JSON nested deeper than the limit (walked without recursion: the data may be deep)."""
    pending: list[tuple[Any, int]] = [(data, 0)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, dict | list):
            if depth >= MAX_NESTING:
                raise PipelineError(f"is nested deeper than {MAX_NESTING} lists and objects")
            children = value.values() if isinstance(value, dict) else value
            pending.extend((child, depth + 1) for child in children)


def _from_yaml(text: str) -> Any:
    try:
        _check_events(yaml.parse(text, Loader=_Loader))
        return yaml.load(text, Loader=_StrictLoader)  # a SafeLoader that also refuses duplicate keys
    except PipelineError:
        raise
    except RecursionError:
        raise PipelineError(f"is nested deeper than {MAX_NESTING} lists and mappings") from None
    except Exception as exc:  # noqa: BLE001 - yaml.YAMLError, and ValueError from a value's constructor alike
        raise PipelineError(f"not valid YAML: {_first_line(exc)}") from None


def _check_events(events: Iterator[yaml.Event]) -> None:
    """Refuse any alias and nesting past the limit, from the parser's events, before anything is built."""
    depth = 0
    for event in events:
        line = event.start_mark.line + 1 if event.start_mark else 0
        if isinstance(event, yaml.AliasEvent):
            raise PipelineError(
                f"line {line}: the alias *{shown(str(event.anchor), 40)[1:-1]} is not allowed "
                "(aliases can expand without bound): write the value out"
            )
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_NESTING:
                raise PipelineError(f"line {line}: nested deeper than {MAX_NESTING} lists and mappings")
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


class _StrictLoader(_Loader):  # type: ignore[valid-type,misc]
    """The safe loader, refusing a key given twice in one mapping."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:  # an unhashable key: the safe loader refuses it below
                continue
            if duplicate:
                raise PipelineError(
                    f"line {key_node.start_mark.line + 1}: duplicate key {shown(str(key), 80)}: "
                    "give each key once per mapping"
                )
        return super().construct_mapping(node, deep=deep)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).splitlines()
    return lines[0][:200] if lines else type(exc).__name__
