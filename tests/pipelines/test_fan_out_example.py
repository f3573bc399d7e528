"""examples/fan-out: a listing step, a capped fan-out over its output, a Notify on failure, in both forms."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.commands import delete_all_workflows, get_workflow, steps_by_name, trainflow
from tests.workflows.test_fan_out_runs import Hooks, hooks  # noqa: F401 - the fixture
from trainflow.pipelines.loading import load_pipeline

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "fan-out"


@pytest.fixture(autouse=True)
def delete_all_afterwards(trainflow_home: Path) -> Iterator[None]:
    yield
    delete_all_workflows(trainflow_home)


def test_both_forms_are_the_same_pipeline() -> None:
    python, yaml = (load_pipeline(str(EXAMPLE / f"pipeline.{form}")) for form in ("py", "yaml"))
    assert (python.params, python.steps, python.on_exit) == (yaml.params, yaml.steps, yaml.on_exit)


@pytest.mark.slow
def test_a_failing_shard_fails_the_run_and_notifies_the_webhook(
    hooks: Hooks,  # noqa: F811 - the fixture
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SLACK_WEBHOOK", hooks.url)
    out = trainflow("submit", str(EXAMPLE / "pipeline.yaml"), "-p", "shards=5", "-p", "fail=shard-002", "--wait")
    name = next(line.split()[1] for line in out.stdout.splitlines() if line.startswith("Name:"))
    info: dict[str, Any] = get_workflow(name)
    by_name = steps_by_name(info)
    assert info["status"] == "Failed" and by_name["best"]["status"] == "Omitted"
    assert [by_name[f"score[{i}]"]["status"] for i in range(5)].count("Succeeded") == 4
    [sent] = hooks.received
    assert sent["status"] == "Failed" and sent["failed_step"] == "score[2]"
    assert "shard-002 is corrupt" in sent["failure_message"] and sent["pipeline"] == "fan-out"
    assert {"score[0]", "score[4]"} <= set(sent["metrics"])  # what the items that ran scored (a metric output)


@pytest.mark.slow
def test_a_clean_run_scores_every_shard_and_sends_nothing(hooks: Hooks, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    monkeypatch.setenv("SLACK_WEBHOOK", hooks.url)
    out = trainflow("submit", str(EXAMPLE / "pipeline.py"), "-p", "shards=4", "--wait")
    assert out.returncode == 0, out.stdout + out.stderr
    assert hooks.received == []
