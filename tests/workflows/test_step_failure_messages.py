"""A failed local step's message is what its last attempt said, or its exit code: never the runner's own log lines."""

from __future__ import annotations

from pathlib import Path

from tests.commands import get_workflow, steps_by_name, trainflow

PIPELINE = """
from trainflow.pipelines import Command, Pipeline

PIPELINE = Pipeline(
    name="failing",
    params=(),
    steps=(
        Command(name="silent", argv=("sh", "-c", "exit 3")),
        Command(name="says", argv=("sh", "-c", "echo 'error: no such table' >&2; echo done; exit 2")),
        Command(name="retried", argv=("sh", "-c", "test -e tried && exit 4; touch tried; echo first try; exit 1"), retries=1, retry_on="any", backoff=0.1),
    ),
)
"""


def test_a_failed_steps_message_is_its_own_line_or_its_exit_code(tmp_path: Path) -> None:
    (tmp_path / "pipeline.py").write_text(PIPELINE)
    result = trainflow("submit", "pipeline.py", "--wait", cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    [run] = [line.split()[1] for line in result.stdout.splitlines() if line.startswith("Name:")][:1]
    steps = steps_by_name(get_workflow(run))
    assert steps["silent"]["message"] == "exited with code 3"
    assert steps["says"]["message"] == "no such table"
    assert steps["retried"]["message"] == "after 2 attempts: exited with code 4"  # not the first try's line
