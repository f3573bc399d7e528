"""Property-based fuzz of pipeline file loading (issue 22): YAML and JSON, nearly right or not right at all.

Whatever the file holds (random bytes, random YAML tokens with anchors, aliases and tags, random data,
a valid pipeline with one field changed), `load_pipeline` returns a Pipeline or raises PipelineError
with a one-line message: never another exception, and never more than a bounded amount of memory.
"""

from __future__ import annotations

import json
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trainflow.pipelines import Pipeline, PipelineError
from trainflow.pipelines.loading import load_pipeline

FUZZ = settings(
    max_examples=200,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
PEAK_BYTES = 64 * 1024 * 1024  # far above what a file of a few KB needs, far below what an expanding one takes

VALID: dict[str, Any] = {
    "name": "fuzz",
    "params": [{"name": "n", "type": "int", "default": 2}, {"name": "items", "default": "a,b"}],
    "steps": [
        {"name": "a", "kind": "call", "function": "json:dumps", "inputs": {"obj": "{{params.n}}"}, "outputs": ["x"]},
        {"name": "b", "argv": ["echo", "{{steps.a.outputs.x}}", "{{item}}"], "for_each": "{{params.items}}"},
        {
            "name": "s",
            "kind": "service",
            "argv": ["serve", "{{ports.http}}"],
            "ports": [{"name": "http", "container_port": 80}],
            "urls": {"url": "http://{host}:{http}/"},
            "when": "a.x == 1",
        },
    ],
}
FIELDS = ["name", "params", "steps", "description", "artifacts_url", "name_param", "inherit_from"]
STEP_FIELDS = [
    "name", "kind", "argv", "function", "inputs", "outputs", "artifacts", "locations", "depends", "when",
    "for_each", "retries", "timeout", "resources", "ports", "urls", "probe", "workers", "image", "kube_name",
]  # fmt: skip
TOKENS = [
    "&a ", "&b ", "*a", "*b", "[", "]", "{", "}", ": ", ":", "- ", "\n", "\n  ", "\n    ", ", ", "name", "steps",
    "argv", "outputs", "kind: call", "function: os:getcwd", "!!python/object/apply:os.system ['true']", "<<: ",
    "'", '"', "1e400", "9" * 5000, "~", "? ", "!!binary aGk=", "!!set {a}", "%YAML 1.1\n", "---\n", "...\n", "#",
    "\t", "\x00", "\ufeff", "../../x", "{{params.n}}", ".inf", "- &x [*x]",
]  # fmt: skip

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
data = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield tmp_path_factory.mktemp("pipeline-fuzz")


def loads_or_refuses_in_one_line(path: Path) -> None:
    tracemalloc.start()
    try:
        loaded = load_pipeline(str(path))
        assert isinstance(loaded, Pipeline)
    except PipelineError as exc:
        assert "\n" not in exc.message and exc.message.startswith(str(path)), exc.message
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert peak < PEAK_BYTES


def write(folder: Path, suffix: str, content: bytes) -> Path:
    path = folder / f"pipeline{suffix}"
    path.write_bytes(content)
    return path


@FUZZ
@given(content=st.binary(max_size=2000), suffix=st.sampled_from([".yaml", ".json"]))
def test_random_bytes_load_or_are_refused_in_one_line(folder: Path, content: bytes, suffix: str) -> None:
    loads_or_refuses_in_one_line(write(folder, suffix, content))


@FUZZ
@given(tokens=st.lists(st.sampled_from(TOKENS), max_size=60))
def test_random_yaml_tokens_with_aliases_and_tags_load_or_are_refused(folder: Path, tokens: list[str]) -> None:
    text = "name: fuzz\nsteps:\n  - " + "".join(tokens)
    loads_or_refuses_in_one_line(write(folder, ".yaml", text.encode("utf-8", "surrogatepass")))


@FUZZ
@given(value=data, suffix=st.sampled_from([".yaml", ".json"]))
def test_random_data_loads_or_is_refused_in_one_line(folder: Path, value: Any, suffix: str) -> None:
    loads_or_refuses_in_one_line(write(folder, suffix, _dump(value, suffix)))


@FUZZ
@given(
    field=st.sampled_from(FIELDS),
    step_field=st.sampled_from(STEP_FIELDS),
    step=st.integers(0, 2),
    value=data,
    top=st.booleans(),
    suffix=st.sampled_from([".yaml", ".json"]),
)
def test_a_valid_pipeline_with_one_field_changed_loads_or_is_refused(
    folder: Path, field: str, step_field: str, step: int, value: Any, top: bool, suffix: str
) -> None:
    document = json.loads(json.dumps(VALID))
    if top:
        document[field] = value
    else:
        document["steps"][step][step_field] = value
    loads_or_refuses_in_one_line(write(folder, suffix, _dump(document, suffix)))


def test_the_unchanged_pipeline_loads(folder: Path) -> None:
    for suffix in (".yaml", ".json"):
        assert load_pipeline(str(write(folder, suffix, _dump(VALID, suffix)))).name == "fuzz"


def _dump(value: Any, suffix: str) -> bytes:
    if suffix == ".json":
        return json.dumps(value, allow_nan=True).encode()
    return yaml.safe_dump(value, allow_unicode=True).encode("utf-8", "surrogatepass")
