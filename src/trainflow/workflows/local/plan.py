"""What the local runner derives from a pipeline: fan-out instances, step outputs on disk, artifact digests, its plan.

A fanned-out step `sweep` runs as instances `sweep[0]`, `sweep[1]`, ...; a later step reading
`sweep`'s output gets the JSON list of every instance's value, in item order.

A step's cache key is made in `cache_keys`. A result is reused only while each local artifact it
names still has the digest recorded when the step succeeded (`<output>-digest`: the step's own, or
one the runner computes then), so a file changed on disk since makes its step run again.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from trainflow.pipelines import Pipeline, Step
from trainflow.pipelines.artifacts import DIGEST_PREFIX, DIGEST_SUFFIX, digest
from trainflow.pipelines.digests import HashFile, file_sha256
from trainflow.pipelines.refs import OutputRef, ParamRef, substitute
from trainflow.storage import StorageError, canonical_url, local_path_of
from trainflow.workflows.errors import WorkflowError
from trainflow.workflows.local.commands import as_text, step_command


def items(step: Step, values: Mapping[str, str]) -> list[str] | None:
    """The fan-out items of `step` (None when it does not fan out, or over an output: known once that step ran)."""
    if step.for_each is None or isinstance(step.for_each, OutputRef):
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
    """The names the step runs under: itself, or one `name[i]` per fan-out item (a fan-out over an output is recorded
    as itself until the runner expands it)."""
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


def artifact_digests(step: Step, outputs: Mapping[str, Any], hash_file: HashFile = file_sha256) -> dict[str, str]:
    """`<output>-digest` for each local file or directory artifact of `step` that the step did not digest itself."""
    found = {}
    for key in step.artifacts:
        path = _local_path(outputs.get(key))
        if f"{key}{DIGEST_SUFFIX}" not in outputs and path is not None and path.exists():
            found[f"{key}{DIGEST_SUFFIX}"] = digest(path, hash_file)
    return found


def _local_path(value: object) -> Path | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return local_path_of(value)
    except StorageError:
        return None


def artifacts_unchanged(step: Step, outputs: Mapping[str, Any], hash_file: HashFile = file_sha256) -> bool:
    """False when a local artifact a cached result names is gone or differs from when it was recorded.

    Artifacts in a remote store are trusted as published: reading them back to check would cost
    what the cache saves.
    """
    if not artifacts_exist(step, outputs):
        return False
    for key in step.artifacts:
        recorded = str(outputs.get(f"{key}{DIGEST_SUFFIX}", ""))
        path = _local_path(outputs.get(key))
        if recorded.startswith(DIGEST_PREFIX) and path is not None and digest(path, hash_file) != recorded:
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


class _Placeholders(Mapping[str, Mapping[str, object]]):
    """Every step's outputs as the placeholders a dry plan shows until the step has run."""

    def __init__(self, steps: Iterable[str]) -> None:
        self.steps = list(steps)

    def __getitem__(self, step: str) -> Mapping[str, object]:
        return _OutputPlaceholders(step)

    def __iter__(self) -> Iterator[str]:
        return iter(self.steps)

    def __len__(self) -> int:
        return len(self.steps)


class _OutputPlaceholders(dict[str, object]):
    def __init__(self, step: str) -> None:
        super().__init__()
        self.step = step

    def __missing__(self, key: str) -> str:
        return "{{steps.%s.outputs.%s}}" % (self.step, key)


def dry_plan(pipeline: Pipeline, values: Mapping[str, str]) -> list[dict[str, Any]]:
    """Each step instance the runner would start, in order: its command (outputs it reads as placeholders), the
    instances it waits for, and whether it is a service."""
    outputs = _Placeholders(s.name for s in pipeline.all_steps)
    instances = {s.name: instance_names(s, values) for s in pipeline.all_steps}
    found = []
    for step in [*pipeline.order(), *pipeline.exit_order()]:
        names, fanned = instances[step.name], items(step, values)
        for index, name in enumerate(names):
            item = fanned[index] if fanned is not None else None
            found.append(
                {
                    "name": name,
                    "kind": step.kind,
                    "command": step_command(step, values, outputs, item=item),
                    "after": [i for d in step.upstream() for i in instances[d]],
                    "service": step.service,
                    **({"items_from": str(step.for_each)} if isinstance(step.for_each, OutputRef) else {}),
                    **({"on_exit": True} if step in pipeline.on_exit else {}),
                }
            )
    return found
