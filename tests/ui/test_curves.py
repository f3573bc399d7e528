"""Training curves from TensorBoard events, live log lines and metrics.json, local and on S3."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trainflow.ui.curves import CurveReader, parse_log_lines
from trainflow.workflows.backend import StepInfo, WorkflowInfo


def workflow(train_dir: str, params: dict[str, str] | None = None) -> WorkflowInfo:
    return WorkflowInfo("w", "model-train", "Running", params or {}, 0.0,
                        steps=[StepInfo("get-workflow-info", "Succeeded", outputs={"train-dir": train_dir}),
                               StepInfo("train-model", "Running")])


def write_events(train_dir: str, steps: range, **storage: str) -> None:
    from trainflow.storage import StorageOptions
    from trainflow.training.events import EventLog

    events = EventLog(train_dir, StorageOptions.from_env(**storage) if storage else None)
    for step in steps:
        events.scalars(step, {"train/loss": 1.0 / step, "train/accuracy": 1 - 1.0 / step})
    events.close()


def test_log_lines_give_points_and_the_step_count_while_events_lag() -> None:
    lines = ["train-model: 03:20:30 INFO [rank 0] trainflow.training.loop: step=20/300 loss=1.5744 acc=0.5015 examples/s=234",
             "train-model: step=40/300 loss=0.3999 acc=0.8755 examples/s=171", "train-model: checkpoint step=40 -> x",
             "train-model: step=60/300 loss=0.2"]  # a line being written
    series, total = parse_log_lines(lines)
    assert total == 300 and series["train/loss"] == {20: 1.5744, 40: 0.3999}
    assert series["train/accuracy"] == {20: 0.5015, 40: 0.8755}


def test_events_and_log_merge_and_metrics_appear_at_the_end(tmp_path: Path) -> None:
    train_dir = str(tmp_path / "train")
    write_events(train_dir, range(10, 40, 10))
    reader = CurveReader(tmp_path / "cache")
    curves = reader.read(workflow(train_dir), ["step=40/50 loss=0.0250 acc=0.9750"])
    assert [s for s, _ in curves.series["train/loss"]] == [10, 20, 30, 40]
    assert curves.series["train/loss"][0][1] == pytest.approx(0.1)
    assert curves.step == 40 and curves.total_steps == 50 and curves.final is None
    assert curves.sources == ["log", "events"]

    (tmp_path / "train" / "metrics.json").write_text(json.dumps({"accuracy": 0.97, "loss": 0.1}))
    write_events(train_dir, range(50, 60, 10))  # a second event file, as after a restart
    assert reader.read(workflow(train_dir), []).final == {"accuracy": 0.97, "loss": 0.1}
    assert [s for s, _ in reader.read(workflow(train_dir), []).series["train/accuracy"]] == [10, 20, 30, 50]


def test_events_in_an_s3_train_dir_are_read(s3_bucket: str, aws_env: str, tmp_path: Path) -> None:
    train_dir = f"{s3_bucket}/unfinished/job"
    write_events(train_dir, range(5, 20, 5), endpoint_url=aws_env)
    curves = CurveReader(tmp_path / "cache").read(workflow(train_dir, {"aws-endpoint-url": aws_env}), [])
    assert curves.series["train/accuracy"][-1] == (15, pytest.approx(1 - 1 / 15))


def test_a_run_without_events_yet_has_empty_curves(tmp_path: Path) -> None:
    curves = CurveReader(tmp_path / "cache").read(workflow(str(tmp_path / "not-yet")), [])
    assert curves.series == {} and curves.step == 0 and curves.final is None
