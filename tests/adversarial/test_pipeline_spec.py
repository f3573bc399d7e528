"""Hostile pipeline specs (issue 22): keys that are paths, YAML bombs, imports while checking, sizes, symlinks.

Each is refused with one line before anything runs (or, at run time, before anything is written), and
what was there before is left as it was.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from textwrap import dedent

import pytest

from tests.commands import trainflow
from trainflow.pipelines import Call, Command, Param, Pipeline, PipelineError, Service, param
from trainflow.pipelines.artifacts import publish
from trainflow.pipelines.limits import MAX_FAN_OUT_ITEMS, MAX_PIPELINE_FILE_BYTES, MAX_STEPS
from trainflow.pipelines.loading import load_pipeline

BAD_KEYS = ["../../../../../victim", "../x", "a/b", "/etc/passwd", "", ".hidden", "outputs.json", "a b", "x" * 64]


def write(path: Path, text: str) -> Path:
    path.write_text(dedent(text))
    return path


def refused(source: Path | str, *args: str) -> str:
    """The one `error:` line `trainflow pipeline validate SOURCE` exits 2 with."""
    out = trainflow("pipeline", "validate", str(source), *args)
    assert out.returncode == 2, out.stdout + out.stderr
    assert out.stderr.startswith("error: ") and out.stderr.count("\n") == 1, out.stderr
    return out.stderr


# Item 2: output and artifact keys are names.


@pytest.mark.parametrize("key", BAD_KEYS)
@pytest.mark.parametrize("field", ["outputs", "artifacts", "locations"])
def test_an_output_or_artifact_key_that_is_not_a_name_is_refused_where_the_step_is_built(field: str, key: str) -> None:
    with pytest.raises(PipelineError, match=r"step a: .*key .*: use at most 63 letters, digits, '-' or '_'"):
        Call(name="a", function="m:f", **{field: (key,)})  # type: ignore[arg-type]


def test_a_service_url_key_that_is_not_a_name_is_refused_where_the_step_is_built() -> None:
    with pytest.raises(PipelineError, match="url key '../up'"):
        Service(name="s", argv=("serve",), urls={"../up": "http://{host}/"})


def test_artifact_key_with_dotdot_is_refused_by_validate(tmp_path: Path) -> None:
    source = write(
        tmp_path / "pipe.py",
        """
        from trainflow.pipelines import Call, Pipeline
        PIPELINE = Pipeline(name="p", params=(), steps=(
            Call(name="a", function="m:f", artifacts=("../../../../../victim",)),))
        """,
    )
    assert "step a: artifact key '../../../../../victim'" in refused(source)


@pytest.mark.parametrize("field", ["outputs", "artifacts", "locations"])
def test_a_yaml_output_key_that_is_a_path_is_refused_by_validate(tmp_path: Path, field: str) -> None:
    source = write(
        tmp_path / "pipe.yaml",
        f"""
        name: p
        steps:
          - {{name: a, argv: [echo], {field}: [../../etc/passwd]}}
        """,
    )
    message = refused(source)
    assert "step a:" in message and "../../etc/passwd" in message


def test_compile_of_a_path_like_output_key_emits_nothing(tmp_path: Path) -> None:
    source = write(
        tmp_path / "pipe.yaml", "name: p\nsteps:\n  - {name: a, argv: [echo], outputs: [../../etc/passwd]}\n"
    )
    out = trainflow("compile", str(source))
    assert out.returncode == 2 and "etc/passwd" not in out.stdout and out.stderr.count("\n") == 1


def test_publish_refuses_a_key_that_is_not_a_name_and_deletes_nothing(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("mine")
    made = tmp_path / "made"
    made.mkdir()
    (made / "file.txt").write_text("new")
    base = tmp_path / "store" / "wf" / "step"
    with pytest.raises(PipelineError, match="artifact key '../../../victim'"):
        publish({"../../../victim": str(made)}, ["../../../victim"], str(base))
    assert (victim / "keep.txt").read_text() == "mine" and not (victim / "file.txt").exists()


def test_a_function_returning_a_path_like_output_key_fails_and_writes_nothing_outside(tmp_path: Path) -> None:
    write(tmp_path / "evil_steps.py", "def run() -> dict:\n    return {'../escaped': 'x', 'ok': 1}\n")
    outputs = tmp_path / "work" / "outputs"
    outputs.mkdir(parents=True)
    out = subprocess.run(
        [sys.executable, "-m", "trainflow", "step", "call", "evil_steps:run", "--outputs", f"{outputs}/"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**__import__("os").environ, "PYTHONPATH": str(tmp_path)},
        check=False,
    )
    assert out.returncode == 2 and "output key '../escaped'" in out.stderr, out.stderr
    assert not (tmp_path / "work" / "escaped").exists() and list(outputs.iterdir()) == []


# Item 3: YAML that expands, duplicates or is not UTF-8.

BILLION_LAUGHS = """\
name: bomb
steps:
  - name: a
    argv: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]
a1: &a1 [*a0, *a0, *a0, *a0, *a0, *a0, *a0, *a0, *a0, *a0]
a2: &a2 [*a1, *a1, *a1, *a1, *a1, *a1, *a1, *a1, *a1, *a1]
a3: &a3 [*a2, *a2, *a2, *a2, *a2, *a2, *a2, *a2, *a2, *a2]
a4: &a4 [*a3, *a3, *a3, *a3, *a3, *a3, *a3, *a3, *a3, *a3]
a5: &a5 [*a4, *a4, *a4, *a4, *a4, *a4, *a4, *a4, *a4, *a4]
a6: &a6 [*a5, *a5, *a5, *a5, *a5, *a5, *a5, *a5, *a5, *a5]
a7: &a7 [*a6, *a6, *a6, *a6, *a6, *a6, *a6, *a6, *a6, *a6]
a8: &a8 [*a7, *a7, *a7, *a7, *a7, *a7, *a7, *a7, *a7, *a7]
"""


def _limit_memory_to_2_gib() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))


@pytest.mark.parametrize("command", ["validate", "show"])
def test_a_billion_laughs_yaml_is_one_line_under_a_memory_limit(tmp_path: Path, command: str) -> None:
    source = tmp_path / "bomb.yaml"
    source.write_text(BILLION_LAUGHS)
    started = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-m", "trainflow", "pipeline", command, str(source)],
        capture_output=True,
        text=True,
        preexec_fn=_limit_memory_to_2_gib,
        timeout=120,
        check=False,
    )
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr[-2000:]
    assert "alias" in out.stderr and time.monotonic() - started < 30


def test_any_yaml_alias_is_refused(tmp_path: Path) -> None:
    source = write(tmp_path / "pipe.yaml", "name: p\nsteps:\n  - &s {name: a, argv: [echo]}\n  - *s\n")
    with pytest.raises(PipelineError, match=r"line 4.*alias"):
        load_pipeline(str(source))


def test_a_utf16_yaml_file_is_one_line(tmp_path: Path) -> None:
    source = tmp_path / "pipe.yaml"
    source.write_text("name: p\nsteps:\n  - {name: a, argv: [echo]}\n", encoding="utf-16")
    assert "is not UTF-8 text" in refused(source)


@pytest.mark.parametrize(
    ("suffix", "text"),
    [
        (".yaml", "name: p\nname: q\nsteps:\n  - {name: a, argv: [echo]}\n"),
        (".yaml", "name: p\nsteps:\n  - {name: a, argv: [echo], name: b}\n"),
        (".json", '{"name": "p", "name": "q", "steps": [{"name": "a", "argv": ["echo"]}]}'),
    ],
)
def test_a_duplicate_key_is_refused_not_last_wins(tmp_path: Path, suffix: str, text: str) -> None:
    source = tmp_path / f"pipe{suffix}"
    source.write_text(text)
    assert "duplicate key 'name'" in refused(source)


def test_a_pipeline_file_over_the_size_limit_is_refused_without_reading_it_whole(tmp_path: Path) -> None:
    source = tmp_path / "pipe.yaml"
    source.write_text("name: p\nsteps:\n  - {name: a, argv: [echo]}\n" + "#" * MAX_PIPELINE_FILE_BYTES)
    with pytest.raises(PipelineError, match=f"larger than {MAX_PIPELINE_FILE_BYTES} bytes"):
        load_pipeline(str(source))


@pytest.mark.parametrize(("suffix", "depth"), [(".yaml", 50), (".json", 50), (".json", 100_000)])
def test_deeply_nested_data_is_refused_with_one_line(tmp_path: Path, suffix: str, depth: int) -> None:
    source = tmp_path / f"pipe{suffix}"
    source.write_text('{"name": "p", "steps": ' + "[" * depth + "]" * depth + "}")
    with pytest.raises(PipelineError, match="nested deeper than"):
        load_pipeline(str(source))


def test_a_schema_error_on_a_large_value_is_a_short_line(tmp_path: Path) -> None:
    source = tmp_path / "pipe.json"
    source.write_text(
        json.dumps({"name": "p", "steps": [{"name": "a", "argv": ["x" * 100_000], "retries": "y" * 100_000}]})
    )
    with pytest.raises(PipelineError) as caught:
        load_pipeline(str(source))
    assert "retries" in caught.value.message and len(caught.value.message) < 500


# Item 10: checking functions runs none of the user's code.


@pytest.mark.parametrize("command", ["show", "validate"])
def test_showing_a_yaml_pipeline_imports_no_package_of_its_functions(tmp_path: Path, command: str) -> None:
    marker = tmp_path / "imported"
    package = tmp_path / "userpkg"
    package.mkdir()
    (package / "__init__.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    (package / "steps.py").write_text("def run() -> dict:\n    return {}\n")
    source = write(
        tmp_path / "pipe.yaml", "name: p\nsteps:\n  - {name: a, kind: call, function: 'userpkg.steps:run'}\n"
    )
    out = trainflow("pipeline", command, str(source))
    assert out.returncode == 0, out.stderr
    assert not marker.exists()


def test_a_function_in_a_missing_submodule_is_still_refused(tmp_path: Path) -> None:
    (tmp_path / "userpkg2").mkdir()
    (tmp_path / "userpkg2" / "__init__.py").write_text("")
    source = write(
        tmp_path / "pipe.yaml", "name: p\nsteps:\n  - {name: a, kind: call, function: 'userpkg2.nope:run'}\n"
    )
    assert "cannot import module 'userpkg2.nope'" in refused(source)


def test_validate_of_a_yaml_pipeline_finds_its_functions_from_another_folder(tmp_path: Path) -> None:
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "far_steps.py").write_text("def run() -> dict:\n    return {}\n")
    source = write(folder / "pipe.yaml", "name: p\nsteps:\n  - {name: a, kind: call, function: 'far_steps:run'}\n")
    out = trainflow("pipeline", "validate", str(source), cwd=tmp_path)
    assert out.returncode == 0 and "is valid" in out.stdout, out.stderr


# Item 11: bounded steps and fan-out items.


def test_a_pipeline_over_the_step_limit_is_refused_naming_the_limit() -> None:
    steps = tuple(Command(name=f"s{i}", argv=("echo",)) for i in range(MAX_STEPS + 1))
    with pytest.raises(PipelineError, match=f"{MAX_STEPS + 1} steps: at most {MAX_STEPS}"):
        Pipeline(name="big", params=(), steps=steps).validate()


def test_a_yaml_pipeline_over_the_step_limit_is_refused_quickly(tmp_path: Path) -> None:
    steps = [{"name": f"s{i}", "argv": ["echo"], "depends": [f"s{i - 1}"] if i else []} for i in range(3000)]
    source = tmp_path / "pipe.json"
    source.write_text(json.dumps({"name": "big", "steps": steps}))
    started = time.monotonic()
    assert f"3000 steps: at most {MAX_STEPS}" in refused(source)
    assert time.monotonic() - started < 15


def test_a_pipeline_at_the_step_limit_is_shown_in_seconds(tmp_path: Path) -> None:
    steps = [{"name": f"s{i}", "argv": ["echo"], "depends": [f"s{i - 1}"] if i else []} for i in range(MAX_STEPS)]
    source = tmp_path / "pipe.json"
    source.write_text(json.dumps({"name": "big", "steps": steps}))
    started = time.monotonic()
    out = trainflow("pipeline", "show", str(source))
    assert out.returncode == 0, out.stderr
    assert time.monotonic() - started < 15


def test_a_fan_out_over_the_item_limit_is_refused_naming_the_limit() -> None:
    step = Call(name="fan", function="m:f", for_each=[str(i) for i in range(MAX_FAN_OUT_ITEMS + 1)])
    with pytest.raises(PipelineError, match=f"step fan: .*{MAX_FAN_OUT_ITEMS + 1} items: at most {MAX_FAN_OUT_ITEMS}"):
        Pipeline(name="big", params=(), steps=(step,)).validate()


@pytest.mark.parametrize(
    "value", [",".join(["x"] * (MAX_FAN_OUT_ITEMS + 1)), json.dumps([1] * (MAX_FAN_OUT_ITEMS + 1))]
)
def test_a_fan_out_parameter_over_the_item_limit_is_refused_before_submission(value: str) -> None:
    pipeline = Pipeline(
        name="fan",
        params=(Param("items", "a,b"),),
        steps=(Call(name="fan", function="m:f", for_each=param("items")),),
    ).validate()
    with pytest.raises(PipelineError, match=f"parameter items .* {MAX_FAN_OUT_ITEMS + 1} items: at most"):
        pipeline.resolve({"items": value})


# Item 14a: symlinks inside an artifact folder.


@pytest.mark.parametrize("target", ["outside", "inside"])
def test_a_symlink_inside_an_artifact_folder_is_refused_naming_the_link(tmp_path: Path, target: str) -> None:
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "key.pem").write_text("private")
    model = tmp_path / "model"
    (model / "sub").mkdir(parents=True)
    (model / "weights.bin").write_text("w")
    (model / "sub" / "link").symlink_to(secret if target == "outside" else model / "weights.bin")
    base = tmp_path / "store" / "wf" / "step"
    with pytest.raises(PipelineError, match="artifact model: .*'sub/link' is a symlink"):
        publish({"model": str(model)}, ["model"], str(base))
    assert not (base / "model").exists()


def test_the_schema_and_the_code_hold_the_same_key_rule() -> None:
    from trainflow.pipelines.keys import KEY
    from trainflow.pipelines.serial import schema

    assert schema()["$defs"]["key"]["pattern"] == f"^{KEY.pattern}$"


def test_steps_run_in_declaration_order_after_what_they_wait_for() -> None:
    steps = (
        Command(name="c", argv=("echo",), depends=("b",)),
        Command(name="a", argv=("echo",)),
        Command(name="b", argv=("echo",), depends=("a",)),
        Command(name="d", argv=("echo",)),
    )
    assert [s.name for s in Pipeline(name="p", params=(), steps=steps).order()] == ["a", "b", "c", "d"]
    cycle = (Command(name="x", argv=("echo",), depends=("y",)), Command(name="y", argv=("echo",), depends=("x",)))
    with pytest.raises(PipelineError, match="steps x, y wait for each other"):
        Pipeline(name="p", params=(), steps=cycle).order()
