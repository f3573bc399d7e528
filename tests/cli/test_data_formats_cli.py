"""`trainflow data sync --format ...`, `data describe` and the download-dataset step on datasets other than MNIST."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.datasets.sample_data import write_colour_folders, write_iris_csv


def trainflow(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trainflow", *args],
        check=False,
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=120,
    )


def test_sync_describes_a_csv_dataset_and_describe_shows_the_descriptor(trainflow_home: Path, tmp_path: Path) -> None:
    source = write_iris_csv(tmp_path / "iris")
    first = trainflow("data", "sync", str(source), "--name", "iris", "--format", "csv", "--label-column", "species")
    assert first.returncode == 0, first.stderr
    assert (
        "iris: csv dataset, examples 4 float32, 3 classes (setosa, versicolor, virginica), 120 train / 30 test"
        in first.stdout
    )

    shown = trainflow("data", "describe", "iris")
    assert shown.returncode == 0, shown.stderr
    assert "format       csv (table)" in shown.stdout and "input shape  4 float32" in shown.stdout
    assert "classes      3: setosa, versicolor, virginica" in shown.stdout
    as_json = json.loads(trainflow("data", "describe", "iris", "-o", "json").stdout)
    assert as_json["descriptor"]["class_names"] == ["setosa", "versicolor", "virginica"]
    assert len(as_json["descriptor"]["normalization"]["mean"]) == 4 and len(as_json["files"]) == 2
    listed = json.loads(trainflow("data", "ls", "-o", "json").stdout)
    assert [(row["name"], row["format"]) for row in listed] == [("iris", "csv")]


def test_image_size_option_and_warm_sync(trainflow_home: Path, tmp_path: Path) -> None:
    source = write_colour_folders(tmp_path / "colours")
    first = trainflow("data", "sync", str(source), "--name", "colours", "--image-size", "8x6")
    assert first.returncode == 0, first.stderr
    assert "images dataset, examples 3x8x6 uint8, 3 classes (blue, green, red), 36 train / 12 test" in first.stdout
    again = trainflow("data", "sync", str(source), "--name", "colours", "--image-size", "8x6")
    assert "downloaded 0 B" in again.stdout and "48 up to date" in again.stdout


def test_bad_data_is_one_error_line_and_the_dataset_is_not_listed(trainflow_home: Path, tmp_path: Path) -> None:
    source = write_iris_csv(tmp_path / "iris")
    out = trainflow("data", "sync", str(source), "--name", "iris", "--label-column", "kind")
    assert out.returncode != 0
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: dataset 'iris': train.csv has no column 'kind'")
    assert "Traceback" not in out.stderr
    assert "no cached datasets" in trainflow("data", "ls").stdout


def test_bad_image_size_is_one_line(trainflow_home: Path, tmp_path: Path) -> None:
    out = trainflow("data", "sync", str(tmp_path), "--image-size", "0x9")
    assert out.returncode != 0 and out.stderr.strip() == (
        "error: invalid image size '0x9': use N or HxW with sides from 1 to 4096, e.g. 32 or 28x28"
    )


def test_download_dataset_step_takes_the_format_options(trainflow_home: Path, tmp_path: Path) -> None:
    source = write_colour_folders(tmp_path / "colours")
    outputs = tmp_path / "out.json"
    out = trainflow(
        "step",
        "download-dataset",
        "--s3-data-url",
        str(source),
        "--dataset-name",
        "colours",
        "--format",
        "images",
        "--image-size",
        "12",
        "--label-column",
        "",
        "--outputs",
        str(outputs),
    )
    assert out.returncode == 0, out.stderr
    written = json.loads(outputs.read_text())
    assert written["dataset-format"] == "images"
    descriptor = json.loads((Path(written["dataset-path"]) / "descriptor.json").read_text())
    assert descriptor["input_shape"] == [3, 12, 12] and descriptor["train_count"] == 36
