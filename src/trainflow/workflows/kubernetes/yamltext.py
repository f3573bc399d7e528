"""YAML as people and kubectl read it: multi-line strings as blocks, no anchors, fields in build order."""

from __future__ import annotations

import re
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
    """An Argo placeholder standing for a number: written unquoted, so that once Argo fills it in it reads as one."""


RAW_TAG = "!trainflow-raw"
_RAW = re.compile(r"%s '([^'\n]*)'" % re.escape(RAW_TAG))


def _raw(dumper: yaml.SafeDumper, value: Raw) -> yaml.ScalarNode:
    return dumper.represent_scalar(RAW_TAG, str(value), style="'")


_Dumper.add_representer(str, _string)
_Dumper.add_representer(Raw, _raw)


def dump(obj: Any) -> str:
    """YAML text; a `Raw` value is left bare (`replicas: {{workflow.parameters.n}}`), which is YAML only once filled in."""
    text = yaml.dump(obj, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=120)
    return _RAW.sub(lambda m: m.group(1), text)


def dump_all(objects: list[Any]) -> str:
    return yaml.dump_all(objects, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=120)


def load(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)
