"""The local step cache reuses a result only while what the step really runs and reads is unchanged.

Each test edits one thing a step depends on (an artifact's bytes, a hidden file, the code it imports,
the script or input file it names, an environment variable) and expects the step to run again.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from textwrap import dedent

import pytest

from tests.commands import trainflow
from trainflow.pipelines import Call, Command, Param, Pipeline, PipelineError, output, param
from trainflow.pipelines.digests import DigestMemo, file_sha256
from trainflow.pipelines.serial import from_dict
from trainflow.workflows.backend import FINISHED
from trainflow.workflows.local.backend import LocalBackend

MIB = 1024 * 1024

ARTIFACT_STEPS = """
import hashlib, tempfile, time
from pathlib import Path
from trainflow.pipelines.artifacts import local_path

def make_big() -> dict:
    out = Path(tempfile.mkdtemp()) / "big.bin"
    out.write_bytes(str(time.time_ns()).encode().ljust(2 * 1024 * 1024, b"x"))
    return {"data": str(out)}

def make_folder() -> dict:
    out = Path(tempfile.mkdtemp()) / "model"
    out.mkdir()
    (out / "weights.txt").write_text("w")
    (out / ".cfg").write_text(str(time.time_ns()))
    return {"data": str(out)}

def checksum(data: str) -> dict:
    return {"sha": hashlib.sha256(local_path(data).read_bytes()).hexdigest()}

def read_cfg(data: str) -> dict:
    return {"cfg": (local_path(data) / ".cfg").read_text()}
"""


@pytest.fixture
def backend(trainflow_home: Path) -> Iterator[LocalBackend]:
    yield LocalBackend(trainflow_home)
    trainflow("delete", "--all")


def run(backend: LocalBackend, pipeline: Pipeline, folder: Path, **params: str) -> dict[str, tuple[str, dict]]:
    """Submit as `trainflow submit FOLDER/pipeline.py` does and wait: each step's (status, outputs)."""
    info = backend.submit(pipeline, params, python_path=[str(folder)])
    deadline = time.monotonic() + 120
    while (info := backend.get(info.name)).status not in FINISHED and time.monotonic() < deadline:
        time.sleep(0.1)
    assert info.status == "Succeeded", info.message
    return {s.name: (s.status, s.outputs) for s in info.steps}


def statuses(result: dict[str, tuple[str, dict]]) -> dict[str, str]:
    return {name: status for name, (status, _) in result.items()}


def producer_and_consumer(make: str, read: str, out: str) -> Pipeline:
    return Pipeline(
        name="artifacts",
        params=(),
        steps=(
            Call(name="make", function=f"art_steps:{make}", artifacts=("data",)),
            Call(name="read", function=f"art_steps:{read}", inputs={"data": output("make", "data")}, outputs=(out,)),
        ),
    )


@pytest.mark.slow  # runs small pipelines through the local runner (seconds)
def test_a_same_size_edit_of_a_large_artifact_file_reruns_its_producer_and_consumer(
    tmp_path: Path, backend: LocalBackend
) -> None:
    (tmp_path / "art_steps.py").write_text(ARTIFACT_STEPS)
    pipeline = producer_and_consumer("make_big", "checksum", "sha")
    first = run(backend, pipeline, tmp_path)
    assert statuses(run(backend, pipeline, tmp_path)) == {"make": "Cached", "read": "Cached"}
    published = Path(first["make"][1]["data"])
    data = bytearray(published.read_bytes())
    assert len(data) > MIB
    data[MIB + 10] ^= 0xFF  # same size, same name, one byte past the first MiB
    published.write_bytes(bytes(data))

    again = run(backend, pipeline, tmp_path)
    assert statuses(again) == {"make": "Succeeded", "read": "Succeeded"}
    assert again["read"][1]["sha"] != first["read"][1]["sha"]


@pytest.mark.slow  # runs small pipelines through the local runner (seconds)
def test_an_edit_to_a_hidden_file_in_an_artifact_folder_reruns_its_producer_and_consumer(
    tmp_path: Path, backend: LocalBackend
) -> None:
    (tmp_path / "art_steps.py").write_text(ARTIFACT_STEPS)
    pipeline = producer_and_consumer("make_folder", "read_cfg", "cfg")
    first = run(backend, pipeline, tmp_path)
    (Path(first["make"][1]["data"]) / ".cfg").write_text("edited by hand")

    again = run(backend, pipeline, tmp_path)
    assert statuses(again) == {"make": "Succeeded", "read": "Succeeded"}
    assert again["read"][1]["cfg"] == (Path(again["make"][1]["data"]) / ".cfg").read_text() != "edited by hand"


COMMAND_PIPELINE = """
name: project
steps:
  - name: run
    kind: command
    argv: [python3, run.py]
    outputs: [text]
"""
RUN_PY = "import os, pathlib; pathlib.Path(os.environ['TRAINFLOW_OUTPUTS'], 'text').write_text({!r})"


def submit_in(folder: Path) -> dict[str, dict]:
    """`trainflow submit pipeline.yaml --wait` from inside `folder`; each step's record."""
    out = trainflow("submit", "pipeline.yaml", "--wait", cwd=folder)
    assert out.returncode == 0, out.stdout + out.stderr
    name = next(line.split()[1] for line in out.stdout.splitlines() if line.startswith("Name:"))
    got = trainflow("get", name, "-o", "json")
    return {s["name"]: s for s in json.loads(got.stdout)["steps"]}


@pytest.mark.slow  # runs small pipelines through the local runner (seconds)
def test_two_folders_with_the_same_command_each_get_their_own_output(tmp_path: Path) -> None:
    for project in ("a", "b"):
        (tmp_path / project).mkdir()
        (tmp_path / project / "pipeline.yaml").write_text(COMMAND_PIPELINE)
        (tmp_path / project / "run.py").write_text(RUN_PY.format(f"from {project}"))
    try:
        assert submit_in(tmp_path / "a")["run"]["outputs"] == {"text": "from a"}
        b = submit_in(tmp_path / "b")["run"]
        assert (b["status"], b["outputs"]) == ("Succeeded", {"text": "from b"})
        assert submit_in(tmp_path / "b")["run"]["status"] == "Cached"  # its own earlier result is still reused
    finally:
        trainflow("delete", "--all")


@pytest.mark.slow  # runs small pipelines through the local runner (seconds)
def test_editing_a_helper_module_the_function_imports_reruns_the_step(tmp_path: Path, backend: LocalBackend) -> None:
    (tmp_path / "user_steps.py").write_text("import helper\ndef value() -> dict:\n    return {'v': helper.V}\n")
    (tmp_path / "helper.py").write_text("V = 1\n")
    pipeline = Pipeline(name="helper", params=(), steps=(Call(name="v", function="user_steps:value", outputs=("v",)),))
    assert run(backend, pipeline, tmp_path)["v"] == ("Succeeded", {"v": 1})
    (tmp_path / "helper.py").write_text("V = 2\n")
    assert run(backend, pipeline, tmp_path)["v"] == ("Succeeded", {"v": 2})


@pytest.mark.slow  # runs small pipelines through the local runner (seconds)
def test_editing_a_sibling_module_in_the_functions_package_reruns_the_step(
    tmp_path: Path, backend: LocalBackend
) -> None:
    package = tmp_path / "proj"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "steps.py").write_text(
        "import importlib\ndef value() -> dict:\n    return {'v': importlib.import_module('proj.constants').V}\n"
    )
    (package / "constants.py").write_text("V = 1\n")
    pipeline = Pipeline(name="package", params=(), steps=(Call(name="v", function="proj.steps:value", outputs=("v",)),))
    assert run(backend, pipeline, tmp_path)["v"] == ("Succeeded", {"v": 1})
    (package / "constants.py").write_text("V = 2\n")
    assert run(backend, pipeline, tmp_path)["v"] == ("Succeeded", {"v": 2})


@pytest.mark.slow  # runs small pipelines through the local runner (seconds)
def test_editing_the_script_a_command_runs_reruns_it(
    tmp_path: Path, backend: LocalBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "run.sh").write_text('echo one > "$TRAINFLOW_OUTPUTS/text"\n')
    pipeline = Pipeline(name="script", params=(), steps=(Command(name="sh", argv=("sh", "run.sh"), outputs=("text",)),))
    assert run(backend, pipeline, tmp_path)["sh"] == ("Succeeded", {"text": "one"})
    (tmp_path / "run.sh").write_text('echo two > "$TRAINFLOW_OUTPUTS/text"\n')
    assert run(backend, pipeline, tmp_path)["sh"] == ("Succeeded", {"text": "two"})


@pytest.mark.slow  # runs small pipelines through the local runner (seconds)
def test_editing_an_input_file_passed_by_path_reruns_the_step(tmp_path: Path, backend: LocalBackend) -> None:
    code, data = tmp_path / "code", tmp_path / "data"
    code.mkdir()
    data.mkdir()
    (code / "reader.py").write_text("def read(path: str) -> dict:\n    return {'text': open(path).read()}\n")
    (data / "input.txt").write_text("first")
    pipeline = Pipeline(
        name="input-file",
        params=(Param("path", str(data / "input.txt")),),
        steps=(Call(name="read", function="reader:read", inputs={"path": param("path")}, outputs=("text",)),),
    )
    assert run(backend, pipeline, code)["read"] == ("Succeeded", {"text": "first"})
    assert run(backend, pipeline, code)["read"][0] == "Cached"
    (data / "input.txt").write_text("other")  # the same size
    assert run(backend, pipeline, code)["read"] == ("Succeeded", {"text": "other"})


@pytest.mark.slow  # runs small pipelines through the local runner (seconds)
def test_cache_key_env_and_cache_key_files_change_the_key(
    tmp_path: Path, backend: LocalBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "words.txt").write_text("hello")
    script = 'echo "$GREETING $(cat data/words.txt)" > "$TRAINFLOW_OUTPUTS/text"'
    step = Command(
        name="greet",
        argv=("sh", "-c", script),
        outputs=("text",),
        cache_key_env=("GREETING",),
        cache_key_files=("data/*.txt",),
    )
    pipeline = Pipeline(name="opt-ins", params=(), steps=(step,))
    monkeypatch.setenv("GREETING", "hi")
    assert run(backend, pipeline, tmp_path)["greet"] == ("Succeeded", {"text": "hi hello"})
    assert run(backend, pipeline, tmp_path)["greet"][0] == "Cached"
    monkeypatch.setenv("GREETING", "bye")
    assert run(backend, pipeline, tmp_path)["greet"] == ("Succeeded", {"text": "bye hello"})
    (tmp_path / "data" / "words.txt").write_text("world")
    assert run(backend, pipeline, tmp_path)["greet"] == ("Succeeded", {"text": "bye world"})


def test_a_yaml_step_with_a_bad_cache_key_env_name_is_refused_in_one_line() -> None:
    data = {"name": "p", "steps": [{"name": "s", "argv": ["true"], "cache_key_env": ["NOT-A-NAME"]}]}
    with pytest.raises(PipelineError) as caught:
        from_dict(data)
    assert "cache_key_env" in caught.value.message and "\n" not in caught.value.message


def test_the_yaml_form_keeps_the_cache_key_opt_ins() -> None:
    text = dedent("""
        {"name": "p", "steps": [{"name": "s", "argv": ["true"], "cache_key_env": ["A_B"],
         "cache_key_files": ["conf/*.yaml", "weights.bin"]}]}
    """)
    step = from_dict(json.loads(text)).steps[0]
    assert (step.cache_key_env, step.cache_key_files) == (("A_B",), ("conf/*.yaml", "weights.bin"))


def test_a_same_size_edit_that_puts_the_old_mtime_back_is_still_seen_by_the_digest_memo(tmp_path: Path) -> None:
    data = tmp_path / "weights.bin"
    data.write_bytes(b"a" * MIB)
    time.sleep(2.1)  # only files left alone for a while are remembered
    memo = DigestMemo(tmp_path / "memo.db")
    assert memo(data) == file_sha256(data)
    before = data.stat()
    data.write_bytes(b"b" * MIB)
    os.utime(data, ns=(before.st_atime_ns, before.st_mtime_ns))  # as `cp -p` or a tar extract would leave it
    assert data.stat().st_mtime_ns == before.st_mtime_ns
    assert memo(data) == DigestMemo(tmp_path / "memo.db")(data) == file_sha256(data)


def test_keying_a_function_from_a_package_outside_the_folder_runs_none_of_its_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from trainflow.workflows.local.cache_keys import StepKeys

    outside = tmp_path / "site"
    (outside / "outpkg").mkdir(parents=True)
    marker = tmp_path / "imported"
    (outside / "outpkg" / "__init__.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    (outside / "outpkg" / "steps.py").write_text("def value() -> dict:\n    return {'v': 1}\n")
    monkeypatch.syspath_prepend(str(outside))
    folder = tmp_path / "project"
    folder.mkdir()
    step = Call(name="v", function="outpkg.steps:value", outputs=("v",))
    keys = StepKeys(Pipeline(name="outside", params=(), steps=(step,)), {}, [str(folder)], tmp_path / "home")
    first = keys.make(step, None, {})
    (outside / "outpkg" / "steps.py").write_text("def value() -> dict:\n    return {'v': 2}\n")
    again = StepKeys(Pipeline(name="outside", params=(), steps=(step,)), {}, [str(folder)], tmp_path / "home")
    assert not marker.exists() and "outpkg" not in sys.modules
    assert first is not None and again.make(step, None, {}) != first  # the module's code is still in the key
