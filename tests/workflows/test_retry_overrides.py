"""`retry` and `resubmit` with -p overrides (as Argo's take them), on a user pipeline of quick steps."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from textwrap import dedent

import pytest

from tests.commands import get_workflow as get
from tests.commands import steps_by_name as steps
from tests.commands import trainflow

STEPS = """
def double(n: int) -> dict:
    return {"total": n * 2}
def gate(limit: int, total: int) -> dict:
    if limit < 5:
        raise ValueError(f"limit {limit} is below 5")
    return {"passed": limit + total}
"""

PIPELINE = """
from trainflow.pipelines import Call, Param, Pipeline, output, param

PIPELINE = Pipeline(
    name="gated",
    params=(Param("n", 1, type="int"), Param("limit", 1, type="int")),
    steps=(
        Call(name="prep", function="user_steps:double", inputs={"n": param("n")}, outputs=("total",)),
        Call(name="fixed", function="user_steps:double", inputs={"n": "3"}, outputs=("total",)),
        Call(name="check", function="user_steps:gate", inputs={"limit": param("limit"), "total": output("prep", "total")},
             outputs=("passed",)),
    ),
)
"""


@pytest.fixture
def failed_run(tmp_path: Path) -> Iterator[str]:
    """A finished run of the `gated` pipeline whose `check` step failed (limit=1); yields its name."""
    (tmp_path / "user_steps.py").write_text(dedent(STEPS))
    (tmp_path / "gated.py").write_text(dedent(PIPELINE))
    out = trainflow("submit", str(tmp_path / "gated.py"), "--wait")
    assert out.returncode == 1, out.stdout + out.stderr
    name = next(line.split()[1] for line in out.stdout.splitlines() if line.startswith("Name:"))
    yield name
    trainflow("delete", "--all")


def test_retry_with_overrides_reruns_the_failed_step_and_those_the_changed_values_reach(failed_run: str) -> None:
    before = steps(get(failed_run))
    assert before["check"]["status"] == "Failed" and "limit 1 is below 5" in before["check"]["message"]

    out = trainflow("retry", failed_run, "-p", "limit=10", "-p", "n=4", "--wait")
    assert out.returncode == 0, out.stdout + out.stderr
    info = get(failed_run)
    after = steps(info)
    assert info["status"] == "Succeeded" and info["params"]["limit"] == "10" and info["params"]["n"] == "4"
    assert after["prep"]["outputs"] == {"total": 8}  # n changed: run again with the new value
    assert after["check"]["outputs"] == {"passed": 18}
    assert after["fixed"]["started_at"] == before["fixed"]["started_at"]  # untouched by the change: kept


def test_retry_with_a_bad_override_says_so_in_one_line_and_changes_nothing(failed_run: str) -> None:
    out = trainflow("retry", failed_run, "-p", "limits=10")
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "limits" in out.stderr, out.stderr
    info = get(failed_run)
    assert info["status"] == "Failed" and info["params"]["limit"] == "1"


def test_resubmit_with_overrides_runs_a_new_workflow_with_them(failed_run: str) -> None:
    out = trainflow("resubmit", failed_run, "-p", "limit=7", "--wait")
    assert out.returncode == 0, out.stdout + out.stderr
    new = next(line.split()[1] for line in out.stdout.splitlines() if line.startswith("Name:"))
    info = get(new)
    assert new != failed_run and info["status"] == "Succeeded" and info["params"]["limit"] == "7"
    assert steps(info)["prep"]["status"] == "Cached"  # n unchanged: the first run's outputs stand
    assert get(failed_run)["params"]["limit"] == "1"


@pytest.mark.parametrize("command", ["retry", "resubmit"])
def test_retry_and_resubmit_help_says_what_each_option_does(command: str) -> None:
    text = trainflow(command, "--help").stdout
    assert "-p, --parameter NAME=VALUE" in text and "Wait until" in text, text
