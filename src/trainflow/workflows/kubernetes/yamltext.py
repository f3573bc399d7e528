"""YAML as people and kubectl read it: multi-line strings as blocks, no anchors, fields in build order."""

from __future__ import annotations

import re
import secrets
from typing import Any

import yaml

# libyaml's C emitter and parser where installed: pure-Python YAML takes most of a compile's time.
_BaseDumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Dumper(_BaseDumper):  # type: ignore[misc, valid-type]
    def ignore_aliases(self, data: Any) -> bool:
        return True  # a container shared by two replica specs is written out twice, not as &id001/*id001


def _string(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if "\n" in value:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


class Raw(str):
    """Text written bare into the YAML (an Argo expression tag), which is YAML only once Argo fills it in."""


_Dumper.add_representer(str, _string)


def dump(obj: Any) -> str:
    """YAML text; a `Raw` value is left bare (`replicas: {{=asInt(...)}}`), which is YAML only once filled in."""
    nonce = secrets.token_hex(8)
    bare: list[str] = []

    def mark(value: Any) -> Any:
        if isinstance(value, Raw):
            bare.append(str(value))
            return f"trainflow-raw-{nonce}-{len(bare) - 1}"
        if isinstance(value, dict):
            return {k: mark(v) for k, v in value.items()}
        if isinstance(value, list):
            return [mark(v) for v in value]
        return value

    text = yaml.dump(mark(obj), Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=120)
    return re.sub(rf"trainflow-raw-{nonce}-(\d+)", lambda m: bare[int(m.group(1))], text)


def dump_all(objects: list[Any]) -> str:
    return yaml.dump_all(objects, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=120)


def load(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)
