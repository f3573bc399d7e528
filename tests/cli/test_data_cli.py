"""`trainflow data ...` as a user runs it: a real process, a real S3 endpoint."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def trainflow(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trainflow", *args],
        capture_output=True,
        text=True,
        env=env or os.environ.copy(),
        timeout=120,
    )


def test_upload_then_sync_twice_downloads_nothing_the_second_time(aws_env: str, mnist_dir: Path) -> None:
    up = trainflow("data", "upload", str(mnist_dir), "s3://newbucket/data/mnist/")
    assert up.returncode == 0, up.stderr
    assert "uploaded 4 files" in up.stdout
    again = trainflow("data", "upload", str(mnist_dir), "s3://newbucket/data/mnist/")
    assert "uploaded 0 files" in again.stdout and "4 already there" in again.stdout

    first = trainflow("data", "sync", "s3://newbucket/data/mnist/", "--name", "mnist")
    assert first.returncode == 0, first.stderr
    second = trainflow("data", "sync", "s3://newbucket/data/mnist/", "--name", "mnist")
    assert "downloaded 0 B" in second.stdout and "4 up to date" in second.stdout


def test_describe_lists_files_with_sha256_and_savings(aws_env: str, mnist_s3_url: str) -> None:
    trainflow("data", "sync", mnist_s3_url, "--name", "mnist")
    trainflow("data", "sync", mnist_s3_url, "--name", "mnist")
    out = trainflow("data", "describe", "mnist")
    assert out.returncode == 0, out.stderr
    assert mnist_s3_url in out.stdout and "saved by cache hits" in out.stdout
    as_json = json.loads(trainflow("data", "describe", "mnist", "-o", "json").stdout)
    assert len(as_json["files"]) == 4
    assert all(len(f["sha256"]) == 64 for f in as_json["files"].values())
    for f in as_json["files"].values():
        assert f["sha256"] in out.stdout
    assert as_json["stats"]["bytes_saved"] > 0


def test_truncated_cache_file_is_repaired_by_next_sync(aws_env: str, mnist_s3_url: str, trainflow_home: Path) -> None:
    trainflow("data", "sync", mnist_s3_url, "--name", "mnist")
    cached = trainflow_home / "cache" / "datasets" / "mnist" / "train-images-idx3-ubyte.gz"
    cached.write_bytes(cached.read_bytes()[:10])
    out = trainflow("data", "sync", mnist_s3_url, "--name", "mnist")
    assert out.returncode == 0 and "repaired train-images-idx3-ubyte.gz" in out.stdout


def test_ls_and_rm(aws_env: str, mnist_dir: Path) -> None:
    trainflow("data", "sync", str(mnist_dir), "--name", "local-mnist")
    assert "local-mnist" in trainflow("data", "ls").stdout
    assert trainflow("data", "rm", "local-mnist").returncode == 0
    assert "no cached datasets" in trainflow("data", "ls").stdout
    gone = trainflow("data", "rm", "local-mnist")
    assert gone.returncode != 0 and "no cached dataset 'local-mnist'" in gone.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["data", "sync", "s3://missing-bucket/data/", "--name", "x"], "bucket 'missing-bucket' does not exist"),
        (["data", "sync", "s3:/typo/data", "--name", "x"], "malformed URL"),
        (["data", "describe", "nothing"], "no cached dataset 'nothing'"),
    ],
)
def test_errors_are_one_line_without_traceback(aws_env: str, args: list[str], message: str) -> None:
    out = trainflow(*args)
    assert out.returncode != 0
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
    assert "Traceback" not in out.stderr


def test_wrong_credentials_give_one_line(tmp_path: Path) -> None:
    from servers import AWS_TEST_ENV, start_moto, stop

    proc, endpoint = start_moto({"INITIAL_NO_AUTH_ACTION_COUNT": "0"})
    try:
        env = {**os.environ, **AWS_TEST_ENV, "AWS_ENDPOINT_URL": endpoint}
        out = trainflow("data", "sync", "s3://bucket/data/", "--name", "x", env=env)
    finally:
        stop(proc)
    assert out.returncode != 0
    assert out.stderr.strip().count("\n") == 0 and "access denied" in out.stderr


def test_download_dataset_step_writes_outputs(aws_env: str, mnist_s3_url: str, tmp_path: Path) -> None:
    outputs = tmp_path / "out.json"
    out = trainflow("step", "download-dataset", "--s3-data-url", mnist_s3_url, "--outputs", str(outputs))
    assert out.returncode == 0, out.stderr
    written = json.loads(outputs.read_text())
    assert Path(written["dataset-path"]).is_dir() and written["bytes-downloaded"] > 0
    assert written["dataset-name"].startswith("mnist-")
    again = trainflow("step", "download-dataset", "--s3-data-url", mnist_s3_url, "--outputs", f"{tmp_path}/dir/")
    assert again.returncode == 0
    assert (tmp_path / "dir" / "bytes-downloaded").read_text() == "0"
