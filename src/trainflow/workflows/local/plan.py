"""What the local runner derives from a pipeline: fan-out instances, step outputs on disk, cache keys.

A fanned-out step `sweep` runs as instances `sweep[0]`, `sweep[1]`, ...; a later step reading
`sweep`'s output gets the JSON list of every instance's value, in item order.

A cache key hashes what decides a step's result: trainflow's version, the step's kind and command
with parameters filled in (parameters marked `cache_key=False` left out), the source of the function
it calls, and for each earlier step it reads or waits for, that step's own key (a step that is
never cached contributes the values it wrote; an output that is only a location contributes nothing)
and the digest of each local artifact it reads (`<output>-digest`: the step's own, or one the runner
computes when the step succeeds and checks again before reusing it, so a file changed on disk since
makes its step run again).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from trainflow import __version__
from trainflow.pipelines import Pipeline, Step
from trainflow.pipelines.artifacts import DIGEST_PREFIX, DIGEST_SUFFIX, digest
from trainflow.pipelines.refs import ItemRef, OutputRef, ParamRef, Ref, substitute
from trainflow.storage import StorageError, canonical_url, parse_url
from trainflow.workflows.commands import as_text
from trainflow.workflows.errors import WorkflowError


def items(step: Step, values: Mapping[str, str]) -> list[str] | None:
    """The fan-out items of `step` (None when it does not fan out)."""
    if step.for_each is None:
        return None
    if not isinstance(step.for_each, ParamRef):
        return list(step.for_each)
    raw = values[step.for_each.name].strip()
    if raw.startswith("["):
        try:
            parsed = json.loads(raw)
        except ValueError:
            raise WorkflowError(f"step {step.name}: parameter {step.for_each.name} is not a JSON list: {raw}") from None
        return [as_text(v) for v in parsed]
    return [part.strip() for part in raw.split(",") if part.strip()]


def instance_names(step: Step, values: Mapping[str, str]) -> list[str]:
    """The names the step runs under: itself, or one `name[i]` per fan-out item."""
    found = items(step, values)
    return [step.name] if found is None else [f"{step.name}[{i}]" for i in range(len(found))]


def read_outputs(directory: Path) -> dict[str, Any]:
    """What a step wrote into its outputs directory: `outputs.json`, else one file per key."""
    try:
        data = json.loads((directory / "outputs.json").read_text())
        if isinstance(data, dict):
            return data
    except (FileNotFoundError, ValueError):
        pass
    if not directory.is_dir():
        return {}
    return {
        f.name: f.read_text(errors="replace").strip()
        for f in sorted(directory.iterdir())
        if f.is_file() and not f.name.startswith(".")
    }


def function_digest(step: Step) -> str:
    """The hash of the source file of the function a step calls ('' when it calls none or it cannot be found)."""
    function = getattr(step, "function", None)
    if not function:
        return ""
    try:
        spec = importlib.util.find_spec(function.partition(":")[0])
    except (ImportError, ValueError):
        return ""
    if spec is None or not spec.origin or not Path(spec.origin).is_file():
        return ""
    return hashlib.sha256(Path(spec.origin).read_bytes()).hexdigest()


def cache_key(
    pipeline: Pipeline,
    step: Step,
    values: Mapping[str, str],
    item: str | None,
    keys: Mapping[str, str],
    outputs: Mapping[str, Mapping[str, Any]],
) -> str:
    """The key an earlier equal run of `step` was recorded under (see the module docstring)."""

    def resolve(ref: Ref) -> str:
        if isinstance(ref, ParamRef):
            return values[ref.name] if pipeline.param(ref.name).cache_key else "<run name>"
        if isinstance(ref, OutputRef):
            source = pipeline.step(ref.step)
            if ref.key in source.locations:
                return "<location>"
            recorded = outputs.get(ref.step, {}).get(f"{ref.key}{DIGEST_SUFFIX}")
            if source.name in keys:
                return f"<{keys[source.name]}:{ref.key}:{recorded or ''}>"
            return as_text(outputs.get(ref.step, {}).get(ref.key))
        if isinstance(ref, ItemRef):
            return item or ""
        return ""

    upstream = sorted(keys[d] for d in step.upstream() if d in keys)
    parts = [__version__, step.kind, [substitute(a, resolve) for a in step.command], function_digest(step), upstream]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()


def artifact_digests(step: Step, outputs: Mapping[str, Any]) -> dict[str, str]:
    """`<output>-digest` for each local file or directory artifact of `step` that the step did not digest itself."""
    found = {}
    for key in step.artifacts:
        path = _local_path(outputs.get(key))
        if f"{key}{DIGEST_SUFFIX}" not in outputs and path is not None and path.exists():
            found[f"{key}{DIGEST_SUFFIX}"] = digest(path)
    return found


def _local_path(value: object) -> Path | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        loc = parse_url(value)
    except StorageError:
        return None
    return Path(loc.local_path) if loc.scheme == "file" else None


def artifacts_unchanged(step: Step, outputs: Mapping[str, Any]) -> bool:
    """False when a local artifact a cached result names is gone or differs from when it was recorded.

    Artifacts in a remote store are trusted as published: reading them back to check would cost
    what the cache saves.
    """
    if not artifacts_exist(step, outputs):
        return False
    for key in step.artifacts:
        recorded = str(outputs.get(f"{key}{DIGEST_SUFFIX}", ""))
        path = _local_path(outputs.get(key))
        if recorded.startswith(DIGEST_PREFIX) and path is not None and digest(path) != recorded:
            return False
    return True


def artifacts_exist(step: Step, outputs: Mapping[str, Any]) -> bool:
    """False when an artifact output names a local path that is gone (a cached result is then not reused)."""
    for key in step.artifacts:
        path = _local_path(outputs.get(key))
        if path is not None and not path.exists():
            return False
    return True


def artifacts_base(pipeline: Pipeline, values: Mapping[str, str], default: Path) -> str:
    """Where this run's steps publish artifacts: the pipeline's artifacts_url with parameters filled in."""
    text = substitute(str(pipeline.artifacts_url), lambda ref: values.get(getattr(ref, "name", ""), ""))
    if not text.strip():
        return str(default)
    try:
        return canonical_url(text)
    except StorageError as exc:
        raise WorkflowError(f"artifacts_url of {pipeline.name}: {exc.message}") from None


def reached_by(pipeline: Pipeline, changed: set[str]) -> set[str]:
    """The steps a change of the parameters `changed` reaches: those reading one, and every step after them."""
    from trainflow.pipelines.conditions import parse_condition

    def reads(step: Step) -> set[str]:
        found = [*step.refs(), *(parse_condition(step.when).refs() if step.when else [])]
        if isinstance(step.for_each, ParamRef):
            found.append(step.for_each)
        return {r.name for r in found if isinstance(r, ParamRef)}

    reached = {s.name for s in pipeline.steps if reads(s) & changed}
    for step in pipeline.order():  # upstream steps come first, so one pass carries the change downstream
        if set(step.upstream()) & reached:
            reached.add(step.name)
    return reached
