"""Users' own pipelines on the local runner: callable steps, conditions, fan-out, caching, and clear errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from textwrap import dedent

import pytest

from tests.commands import delete_all_workflows, trainflow
from trainflow.pipelines import Call, Param, Pipeline, output, param
from trainflow.workflows.local.backend import LocalBackend

STEPS = """
import json, os, time
def count(n: int) -> dict:
    return {"total": n * 2}
def square(x: int, total: int) -> dict:
    return {"value": x * x + total}
def best(value: list) -> dict:
    return {"best": max(value)}
def stamp(best: int) -> dict:
    return {"at": time.time()}
def write(text: str, path: str) -> dict:
    open(path, "w").write(text)
    return {"file": path}
def read(file: str) -> dict:
    return {"text": open(file).read()}
def boom(n: int) -> dict:
    print("about to fail on", n)
    raise ValueError(f"no good value for n={n}")
"""

PIPELINE = """
from trainflow.pipelines import ITEM, Call, Param, Pipeline, output, param

PIPELINE = Pipeline(
    name="squares",
    params=(Param("n", 3, type="int"), Param("limit", 100, type="int")),
    steps=(
        Call(name="count", function="user_steps:count", inputs={"n": param("n")}, outputs=("total",)),
        Call(name="square", function="user_steps:square", for_each=("1", "2", "3"),
             inputs={"x": ITEM, "total": output("count", "total")}, outputs=("value",)),
        Call(name="best", function="user_steps:best", inputs={"value": output("square", "value")}, outputs=("best",)),
        Call(name="stamp", function="user_steps:stamp", inputs={"best": output("best", "best")}, outputs=("at",),
             when="best.best < params.limit", cache=False),
    ),
)
"""


def statuses(name: str) -> dict[str, tuple[str, dict, str]]:
    out = trainflow("get", name, "-o", "json")
    assert out.returncode == 0, out.stderr
    return {s["name"]: (s["status"], s["outputs"], s["message"]) for s in json.loads(out.stdout)["steps"]}


def submitted_name(out: subprocess.CompletedProcess[str]) -> str:
    assert out.returncode == 0, out.stdout + out.stderr
    return next(line.split()[1] for line in out.stdout.splitlines() if line.startswith("Name:"))


@pytest.fixture
def project(tmp_path: Path, trainflow_home: Path) -> Iterator[Path]:
    """A folder with a pipeline file and the module its steps call, as a user would lay them out."""
    (tmp_path / "user_steps.py").write_text(STEPS)
    (tmp_path / "squares.py").write_text(PIPELINE)
    yield tmp_path
    delete_all_workflows(trainflow_home)


def test_callable_steps_fan_out_gather_and_a_condition_run_to_succeeded(project: Path) -> None:
    name = submitted_name(trainflow("submit", str(project / "squares.py"), "--wait"))
    steps = statuses(name)
    assert steps["count"][:2] == ("Succeeded", {"total": 6})
    assert [steps[f"square[{i}]"][1]["value"] for i in range(3)] == [7, 10, 15]
    assert steps["best"][1] == {"best": 15} and steps["stamp"][0] == "Succeeded"
    skipped = submitted_name(trainflow("submit", str(project / "squares.py"), "-p", "limit=10", "--wait"))
    assert statuses(skipped)["stamp"][:1] == ("Skipped",)


def test_a_resubmission_reuses_outputs_and_a_changed_parameter_reruns_exactly_what_it_affects(project: Path) -> None:
    first = submitted_name(trainflow("submit", str(project / "squares.py"), "--wait"))
    again = submitted_name(trainflow("resubmit", first, "--wait"))
    steps = statuses(again)
    for step in ("count", "square[0]", "square[1]", "square[2]", "best"):
        assert steps[step][0] == "Cached" and f"outputs of {first}/{step}" in steps[step][2], step
    assert steps["best"][1] == {"best": 15}
    assert steps["stamp"][0] == "Succeeded"  # cache=False: always runs
    listed = trainflow("get", again)
    assert "Cached" in listed.stdout and f"outputs of {first}" in listed.stdout

    changed = statuses(submitted_name(trainflow("submit", str(project / "squares.py"), "-p", "n=4", "--wait")))
    assert {s: v[0] for s, v in changed.items()} == {
        "count": "Succeeded",
        "square[0]": "Succeeded",
        "square[1]": "Succeeded",
        "square[2]": "Succeeded",
        "best": "Succeeded",
        "stamp": "Succeeded",
    }
    assert changed["best"][1] == {"best": 17}

    fresh = statuses(submitted_name(trainflow("submit", str(project / "squares.py"), "--no-cache", "--wait")))
    assert all(status == "Succeeded" for status, _, _ in fresh.values())


def test_an_edited_function_runs_again(project: Path) -> None:
    submitted_name(trainflow("submit", str(project / "squares.py"), "--wait"))
    (project / "user_steps.py").write_text(STEPS.replace("n * 2", "n * 3"))
    steps = statuses(submitted_name(trainflow("submit", str(project / "squares.py"), "--wait")))
    assert steps["count"][:2] == ("Succeeded", {"total": 9})


def test_an_artifact_changed_on_disk_is_made_again(project: Path, trainflow_home: Path) -> None:
    (project / "files.py").write_text(
        dedent(f'''
        from trainflow.pipelines import Call, Pipeline, output
        PIPELINE = Pipeline(name="files", params=(), steps=(
            Call(name="write", function="user_steps:write", inputs={{"text": "hello", "path": "{project / "a.txt"}"}},
                 artifacts=("file",)),
            Call(name="read", function="user_steps:read", inputs={{"file": output("write", "file")}}, outputs=("text",))))
    ''')
    )
    name = submitted_name(trainflow("submit", str(project / "files.py"), "--wait"))
    first = statuses(name)
    assert first["read"][1]["text"] == "hello" and first["write"][1]["file-digest"].startswith("sha256:")
    published = Path(first["write"][1]["file"])  # the step returned a.txt; the runner's store holds the copy
    assert published == trainflow_home / "store" / "artifacts" / name / "write" / "file" / "a.txt"
    assert {
        s[0] for s in statuses(submitted_name(trainflow("submit", str(project / "files.py"), "--wait"))).values()
    } == {"Cached"}
    published.write_text("changed by hand")
    again = statuses(submitted_name(trainflow("submit", str(project / "files.py"), "--wait")))
    assert again["write"][0] == "Succeeded" and again["read"][0] == "Cached"  # rewritten: the same content again


def test_a_failing_user_step_fails_the_workflow_with_its_last_log_lines(project: Path) -> None:
    (project / "failing.py").write_text(
        dedent("""
        from trainflow.pipelines import Call, Param, Pipeline, param
        PIPELINE = Pipeline(name="failing", params=(Param("n", 7, type="int"),),
                            steps=(Call(name="boom", function="user_steps:boom", inputs={"n": param("n")}),
                                   Call(name="after", function="user_steps:count", inputs={"n": param("n")},
                                        depends=("boom",))))
    """)
    )
    out = trainflow("submit", str(project / "failing.py"), "--wait")
    assert out.returncode == 1
    assert "Status:    Failed" in out.stdout and "no good value for n=7" in out.stdout
    assert "Last lines of boom:" in out.stdout and "about to fail on 7" in out.stdout
    name = submitted_name(subprocess.CompletedProcess([], 0, out.stdout, ""))
    steps = statuses(name)
    assert steps["boom"][0] == "Failed" and "ValueError: no good value for n=7" in steps["boom"][2]
    assert steps["after"][0] == "Omitted"

    (project / "user_steps.py").write_text(STEPS.replace('raise ValueError(f"no good value for n={n}")', "return {}"))
    retried = trainflow("retry", name, "--wait")
    assert retried.returncode == 0, retried.stdout + retried.stderr
    assert {s: v[0] for s, v in statuses(name).items()} == {"boom": "Succeeded", "after": "Succeeded"}


BAD = {
    "cycle": (
        'steps=(Call(name="a", function="user_steps:count", depends=("b",)),'
        ' Call(name="b", function="user_steps:count", depends=("a",)))',
        "wait for each other (a cycle)",
    ),
    "unknown-step": (
        'steps=(Call(name="a", function="user_steps:count", inputs={"n": output("nope", "x")}),)',
        "step a: reads an output of 'nope', which is not a step",
    ),
    "unknown-output": (
        'steps=(Call(name="a", function="user_steps:count", outputs=("total",)),'
        ' Call(name="b", function="user_steps:count", inputs={"n": output("a", "totl")}))',
        "step b: reads output 'totl' of a, which declares only total",
    ),
    "unknown-param": (
        'steps=(Call(name="a", function="user_steps:count", inputs={"n": param("m")}),)',
        "step a: uses parameter 'm', which the pipeline does not declare",
    ),
    "bad-when": (
        'steps=(Call(name="a", function="user_steps:count", when="params.n >="),)',
        "step a: condition 'params.n >=' ends after '>='",
    ),
    "missing-callable": (
        'steps=(Call(name="a", function="no_such_module:count"),)',
        "step a: cannot import module 'no_such_module'",
    ),
    "raises": ("steps=(1 / 0,)", "importing it raised ZeroDivisionError: division by zero (line 3): fix the file"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_bad_pipeline_is_one_line_naming_file_step_and_fix_and_nothing_runs(project: Path, case: str) -> None:
    body, message = BAD[case]
    path = project / f"{case}.py"
    path.write_text(
        "from trainflow.pipelines import Call, Param, Pipeline, output, param\n"
        f"PIPELINE = Pipeline(name='bad', params=(Param('n', 1, type='int'),),\n{body})\n"
    )
    for command in (("submit", str(path)), ("pipeline", "validate", str(path))):
        out = trainflow(*command)
        assert out.returncode == 2, out.stdout + out.stderr
        assert out.stderr.count("\n") == 1 and out.stderr.startswith(f"error: {path}: "), out.stderr
        assert message in out.stderr
    assert "no workflows" in trainflow("list").stdout


@pytest.mark.parametrize(
    ("given", "message"),
    [
        (("-p", "n=many"), "parameter n must be a whole number, not 'many'"),
        (("-p", "limit=nan"), "parameter limit must be a whole number"),
        (("-p", "m=1"), "unknown parameter(s) m for squares; known: n, limit"),
    ],
)
def test_ill_typed_parameters_are_refused_before_anything_runs(
    project: Path, given: tuple[str, ...], message: str
) -> None:
    out = trainflow("submit", str(project / "squares.py"), *given)
    assert out.returncode == 2 and message in out.stderr
    assert "no workflows" in trainflow("list").stdout


def test_a_non_finite_float_is_refused() -> None:
    with pytest.raises(Exception, match="must be a finite number, not 'inf'"):
        Param("lr", 0.1, type="float").parse("inf")


def test_pipeline_show_draws_the_dag_and_the_parameters(project: Path) -> None:
    out = trainflow("pipeline", "show", str(project / "squares.py"))
    assert out.returncode == 0, out.stderr
    assert "squares" in out.stdout and "limit" in out.stdout and "int" in out.stdout
    assert "square (call, fan-out)" in out.stdout and "when best.best < params.limit" in out.stdout
    ok = trainflow("pipeline", "validate", str(project / "squares.py"), "-p", "n=5")
    assert ok.returncode == 0 and "is valid (4 steps, 2 parameters)" in ok.stdout


def test_a_pipeline_built_in_python_runs_through_the_backend_api(project: Path, trainflow_home: Path) -> None:
    sys.path.insert(0, str(project))
    try:
        pipeline = Pipeline(
            name="my-pipe",
            params=(Param("n", 2, type="int"),),
            steps=(
                Call(name="count", function="user_steps:count", inputs={"n": param("n")}, outputs=("total",)),
                Call(
                    name="square",
                    function="user_steps:square",
                    inputs={"x": "3", "total": output("count", "total")},
                    outputs=("value",),
                ),
            ),
        )
        backend = LocalBackend(trainflow_home)
        info = backend.submit(pipeline, {"n": "5"}, python_path=[str(project)])
        deadline = time.monotonic() + 60
        while backend.get(info.name).status not in ("Succeeded", "Failed") and time.monotonic() < deadline:
            time.sleep(0.2)
        done = backend.get(info.name)
        assert done.status == "Succeeded", done.message
        assert done.step("square").outputs == {"value": 19}  # type: ignore[union-attr]
    finally:
        sys.path.remove(str(project))


def test_retries_with_backoff_and_a_timeout(project: Path) -> None:
    (project / "flaky.py").write_text(
        dedent(f"""
        from trainflow.pipelines import Command, Pipeline
        FLAKY = "import pathlib, sys; p = pathlib.Path({str(project / "tries")!r}); n = len(p.read_text()) if p.exists() else 0; p.write_text('x' * (n + 1)); sys.exit(0 if n else 3)"
        PIPELINE = Pipeline(name="flaky", params=(), steps=(
            Command(name="flaky", argv=("python", "-c", FLAKY), retries=1, backoff=0.2, retry_on="any", cache=False),
            Command(name="slow", argv=("python", "-c", "import time; time.sleep(60)"), timeout=1, cache=False,
                    depends=("flaky",))))
    """)
    )
    out = trainflow("submit", str(project / "flaky.py"), "--wait")
    assert out.returncode == 1
    name = submitted_name(subprocess.CompletedProcess([], 0, out.stdout, ""))
    steps = statuses(name)
    assert steps["flaky"][0] == "Succeeded" and (project / "tries").read_text() == "xx"  # failed once, then passed
    assert steps["slow"][0] == "Failed" and steps["slow"][2] == "timed out after 1 s"


def test_a_yaml_pipeline_with_a_misspelled_field_is_one_line(project: Path) -> None:
    (project / "typo.yaml").write_text(
        dedent("""
        name: typo
        steps:
          - name: count
            kind: call
            function: user_steps:count
            inputz: {n: "3"}
    """)
    )
    out = trainflow("submit", str(project / "typo.yaml"))
    assert out.returncode == 2 and out.stderr.count("\n") == 1
    assert (
        f"{project / 'typo.yaml'}: step count: Additional properties are not allowed ('inputz' was unexpected)"
        in out.stderr
    )


def test_watch_draws_progress_from_the_events_a_running_step_reports(trainflow_home: Path) -> None:
    from trainflow.cli.watch import step_progress
    from trainflow.progress import ENV, report_progress
    from trainflow.workflows.backend import StepInfo, WorkflowInfo

    backend = LocalBackend(trainflow_home)
    info = WorkflowInfo("w", "p", "Running", {}, 0.0, steps=[StepInfo("prep", "Succeeded"), StepInfo("fit", "Running")])
    assert step_progress(backend, info) is None
    path = backend.layout.progress_file("w", "fit")
    path.parent.mkdir(parents=True)
    os.environ[ENV] = str(path)
    try:
        report_progress(5, 50, loss=0.5)
        report_progress(10, 50, loss=0.25, accuracy=float("nan"))  # a non-finite metric is left out
    finally:
        del os.environ[ENV]
    assert step_progress(backend, info) == ("fit", 10, 50)
    assert backend.progress("w", "fit")[-1].keys() == {"step", "total", "time", "loss"}
