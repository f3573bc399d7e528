"""Argo memoization keys what the local cache keys: a step's `cache_key_files` by content, `cache_key_env` by image."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from tests.commands import trainflow
from tests.workflows.kubernetes.test_k8s_manifests import all_schema_errors, template
from trainflow.workflows import MODEL_TRAIN
from trainflow.workflows.kubernetes import compile_pipeline, problems, to_yaml
from trainflow.workflows.kubernetes.options import cluster_options

PIPELINE = """\
from trainflow.pipelines import Command, Param, Pipeline, param

pipeline = Pipeline(
    name="labels",
    params=(Param("image", default="ghcr.io/me/labeler:1"),),
    steps=(
        Command(name="prepare", argv=("python", "prepare.py"), cache_key_files=({files!r},)),
        Command(name="report", argv=("python", "report.py"), depends=("prepare",)),
        Command(name="tag", argv=("python", "tag.py"), cache_key_env=("DATA_VERSION",), image={image}),
    ),
)
"""
# One Argo expression: the step's name, then sha256sum of quoted hex and input/parameter lookups joined by '|'.
SAFE_KEY = re.compile(
    r"[a-z0-9-]+-\{\{=sprig\.sha256sum\('[0-9a-f]{16}'"
    r"( \+ '\|' \+ (inputs|workflow)\.parameters\['[a-z0-9-]+'\])*\)\}\}"
)


def project(tmp_path: Path, files: str = "data/*.csv", image: str = 'param("image")') -> Path:
    folder = tmp_path / "project"
    (folder / "data").mkdir(parents=True, exist_ok=True)
    (folder / "pipeline.py").write_text(PIPELINE.format(files=files, image=image))
    (folder / "data" / "labels.csv").write_text("0,cat\n1,dog\n")
    return folder


def compile_text(folder: Path, env: dict[str, str] | None = None) -> str:
    """`trainflow compile` of the project's pipeline as a user runs it: from another folder than the project's."""
    result = trainflow("compile", str(folder / "pipeline.py"), cwd=folder.parent, env=env)
    assert result.returncode == 0, result.stderr
    return result.stdout


def keys(text: str) -> dict[str, str]:
    [workflow] = yaml.safe_load_all(text)
    return {t["name"]: t["memoize"]["key"] for t in workflow["spec"]["templates"] if "memoize" in t}


def test_an_edited_cache_key_file_changes_the_step_s_memoize_key_and_an_unchanged_one_compiles_identically(
    tmp_path: Path,
) -> None:
    folder = project(tmp_path)
    first = compile_text(folder)
    assert compile_text(folder) == first  # deterministic: same files, same YAML
    (folder / "data" / "labels.csv").write_text("0,cat\n1,dog\n2,bird\n")
    edited = keys(compile_text(folder))
    assert edited["prepare"] != keys(first)["prepare"]
    assert edited["report"] == keys(first)["report"]  # a step without cache_key_files keys as before
    (folder / "data" / "extra.csv").write_text("3,fish\n")  # a new match of the glob counts too
    assert keys(compile_text(folder))["prepare"] not in (edited["prepare"], keys(first)["prepare"])


def test_the_key_reads_files_of_the_pipeline_s_folder_not_of_the_working_directory(tmp_path: Path) -> None:
    folder = project(tmp_path)
    before = keys(compile_text(folder))["prepare"]
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "labels.csv").write_text("elsewhere\n")  # the compiling shell's folder: not the project's
    assert keys(compile_text(folder))["prepare"] == before


def test_a_glob_matching_nothing_compiles_and_keys_as_the_local_runner_does(tmp_path: Path) -> None:
    folder = project(tmp_path, files="missing/*.csv")
    first = keys(compile_text(folder))
    assert keys(compile_text(folder)) == first
    (folder / "missing").mkdir()
    (folder / "missing" / "now.csv").write_text("here\n")
    assert keys(compile_text(folder))["prepare"] != first["prepare"]


def test_cache_key_env_keys_the_image_the_pod_runs_never_the_submitter_s_value(tmp_path: Path) -> None:
    folder = project(tmp_path)
    secretish = "s3cr3t-value-42"
    text = compile_text(folder, env={"DATA_VERSION": secretish})
    assert secretish not in text  # a value never reaches the manifest
    assert keys(text)["tag"] == keys(compile_text(folder, env={"DATA_VERSION": "other"}))["tag"]  # not the pod's
    assert "workflow.parameters['image']" in keys(text)["tag"]  # -p image=... at submit changes the key
    assert "workflow.parameters['image']" not in keys(text)["prepare"]
    literal = project(tmp_path / "literal", image='"ghcr.io/me/labeler:1"')
    first = keys(compile_text(literal))["tag"]
    (literal / "pipeline.py").write_text(PIPELINE.format(files="data/*.csv", image='"ghcr.io/me/labeler:2"'))
    assert keys(compile_text(literal))["tag"] != first


def test_hostile_file_names_stay_out_of_the_key_expression_and_the_workflow_stays_valid(
    tmp_path: Path, validate: Callable[..., list[str]]
) -> None:
    folder = project(tmp_path, files="data/*")
    for name in ("x') + env('HOME", "a'}}{{=1", 'q"uote'):
        (folder / "data" / name).write_text("payload")
    text = compile_text(folder)
    [workflow] = yaml.safe_load_all(text)
    assert all(SAFE_KEY.fullmatch(key) for key in keys(text).values()), keys(text)
    assert "payload" not in text and "env('HOME" not in text
    assert all_schema_errors(workflow, validate) == [] and problems(workflow) == []
    memo: dict[str, Any] = template(workflow, "prepare")["memoize"]
    assert memo["cache"]["configMap"] == {"name": "trainflow-step-cache", "key": "prepare"}


def test_another_code_package_changes_every_memoize_key_and_the_same_one_none() -> None:
    def compiled(package: str) -> str:
        return to_yaml(compile_pipeline(MODEL_TRAIN, {}, options=cluster_options(code_package=package)))

    first, second = (f"s3://team/code/{digit * 64}.tar.gz" for digit in "ab")
    assert keys(compiled(first)) and compiled(first) == compiled(first)
    changed = keys(compiled(second))
    assert all(changed[step] != key for step, key in keys(compiled(first)).items())
