"""Training curves from progress events, TensorBoard events and metrics.json, local and on S3."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trainflow.ui.curves import CurveReader, parse_progress
from trainflow.workflows.backend import StepInfo, WorkflowInfo


def workflow(
    train_dir: str, params: dict[str, str] | None = None, param_types: dict[str, str] | None = None
) -> WorkflowInfo:
    return WorkflowInfo(
        "w",
        "model-train",
        "Running",
        params or {},
        0.0,
        steps=[
            StepInfo("paths", "Succeeded", outputs={"dir": train_dir}),
            StepInfo("fit", "Running", kind="train", provides={"train_dir": "{{steps.paths.outputs.dir}}"}),
        ],
        param_types=param_types or {},
    )


def write_events(train_dir: str, steps: range, **storage: str) -> None:
    from trainflow.storage import StorageOptions
    from trainflow.training.events import EventLog

    events = EventLog(train_dir, StorageOptions.from_env(**storage) if storage else None)
    for step in steps:
        events.scalars(step, {"train/loss": 1.0 / step, "train/accuracy": 1 - 1.0 / step})
    events.close()


def test_progress_events_give_points_and_the_step_count_while_events_lag() -> None:
    events = [
        {"step": 20, "total": 300, "time": 1.0, "train/loss": 1.5744, "train/accuracy": 0.5015},
        {"step": 40, "total": 300, "time": 2.0, "train/loss": 0.3999, "train/accuracy": 0.8755},
    ]
    series, total = parse_progress(events)
    assert total == 300 and series["train/loss"] == {20: 1.5744, 40: 0.3999}
    assert series["train/accuracy"] == {20: 0.5015, 40: 0.8755} and "time" not in series


def test_events_and_log_merge_and_metrics_appear_at_the_end(tmp_path: Path) -> None:
    train_dir = str(tmp_path / "train")
    write_events(train_dir, range(10, 40, 10))
    reader = CurveReader(tmp_path / "cache")
    curves = reader.read(workflow(train_dir), {"fit": [{"step": 40, "total": 50, "train/loss": 0.025}]})
    assert [s for s, _ in curves.series["train/loss"]] == [10, 20, 30, 40]
    assert curves.series["train/loss"][0][1] == pytest.approx(0.1)
    assert curves.step == 40 and curves.total_steps == 50 and curves.final is None
    assert curves.sources == ["progress", "events"] and curves.progress_step == "fit"

    (tmp_path / "train" / "metrics.json").write_text(json.dumps({"accuracy": 0.97, "loss": 0.1}))
    write_events(train_dir, range(50, 60, 10))  # a second event file, as after a restart
    assert reader.read(workflow(train_dir), {}).final == {"accuracy": 0.97, "loss": 0.1}
    assert [s for s, _ in reader.read(workflow(train_dir), {}).series["train/accuracy"]] == [10, 20, 30, 50]


def test_events_in_an_s3_train_dir_are_read_through_the_runs_parameter_of_type_endpoint(
    s3_bucket: str, aws_env: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    train_dir = f"{s3_bucket}/unfinished/job"
    write_events(train_dir, range(5, 20, 5), endpoint_url=aws_env)
    monkeypatch.delenv("AWS_ENDPOINT_URL")  # only the run's parameter says where its store is
    run = workflow(train_dir, {"my-store": aws_env, "where": "us-east-1"}, {"my-store": "endpoint", "where": "region"})
    curves = CurveReader(tmp_path / "cache").read(run, {})
    assert curves.series["train/accuracy"][-1] == (15, pytest.approx(1 - 1 / 15))


def test_a_prefix_holding_x_beside_x_slash_y_is_skipped_with_one_warning(
    s3_bucket: str, aws_env: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import boto3

    train_dir = f"{s3_bucket}/clash/job"
    write_events(train_dir, range(5, 20, 5), endpoint_url=aws_env)
    bucket = s3_bucket.removeprefix("s3://")
    s3 = boto3.client("s3", endpoint_url=aws_env, region_name="us-east-1")
    for key in ("clash/job/logs/x.tfevents", "clash/job/logs/x.tfevents/y.tfevents"):
        s3.put_object(Bucket=bucket, Key=key, Body=b"")
    reader = CurveReader(tmp_path / "cache")
    run = workflow(train_dir, {"s": aws_env}, {"s": "endpoint"})
    for _ in range(2):
        curves = reader.read(run, {})
        assert curves.series["train/accuracy"][-1] == (15, pytest.approx(1 - 1 / 15))
    warned = [r.getMessage() for r in caplog.records if "not reading" in r.getMessage()]
    assert len(warned) == 1 and "x.tfevents" in warned[0]


def test_a_run_without_events_yet_has_empty_curves(tmp_path: Path) -> None:
    curves = CurveReader(tmp_path / "cache").read(workflow(str(tmp_path / "not-yet")), {})
    assert curves.series == {} and curves.step == 0 and curves.final is None


def test_every_fan_out_item_of_a_training_step_is_a_curve_and_counts_towards_the_progress(tmp_path: Path) -> None:
    """The README's sweep: three `fit[i]` report `loss` with report_progress and no train dir."""
    progress = {f"fit[{i}]": [{"step": s, "total": 30, "loss": 1.0 / (s + i)} for s in range(1, 31)] for i in range(3)}
    progress["fit[2]"] = progress["fit[2]"][:10]  # still running
    curves = CurveReader(tmp_path / "cache").read(workflow(""), progress)
    assert sorted(curves.series) == ["fit[0] train/loss", "fit[1] train/loss", "fit[2] train/loss"]
    assert (curves.step, curves.total_steps) == (70, 90) and curves.progress_step == "fit[2]"


def test_a_metric_reported_without_a_section_is_a_training_curve() -> None:
    series, total = parse_progress([{"step": 1, "total": 2, "loss": 0.5, "eval/accuracy": 0.25}])
    assert series == {"train/loss": {1: 0.5}, "eval/accuracy": {1: 0.25}} and total == 2
