"""Issue 22, item 14b: an S3 prefix holding `x` and `x/y` cannot be copied into a directory, and says so.

S3 keys are strings, so `x` and `x/y` live side by side; as files, `x` cannot be both a file and a
folder. Copying such a prefix used to fail part-way with a raw FileExistsError; now it is one line
naming both keys, before anything is written.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

from trainflow.storage import StorageError, open_store


def put(s3_url: str, endpoint: str, keys: list[str]) -> None:
    bucket, _, prefix = s3_url.removeprefix("s3://").partition("/")
    s3 = boto3.client("s3", endpoint_url=endpoint)
    for key in keys:
        s3.put_object(Bucket=bucket, Key=f"{prefix}/{key}", Body=key.encode())


CLASHING = [
    (["x", "x/y"], "'x'", "'x/y'"),
    (["a/b", "a/b/c/d", "a/z"], "'a/b'", "'a/b/c/d'"),
]


@pytest.mark.parametrize(("keys", "file", "inside"), CLASHING)
def test_local_copy_of_a_key_that_is_also_a_folder_is_refused_naming_both_keys(
    aws_env: str, s3_bucket: str, keys: list[str], file: str, inside: str
) -> None:
    put(f"{s3_bucket}/art", aws_env, keys)
    store = open_store(f"{s3_bucket}/art")

    with pytest.raises(StorageError) as refused, store.local_copy(keys):
        pass

    message = str(refused.value)
    assert "\n" not in message and file in message and inside in message
    assert "rename or delete one of them at the source" in message


@pytest.mark.parametrize(("keys", "file", "inside"), CLASHING)
def test_download_into_refuses_a_key_that_is_also_a_folder_before_writing_anything(
    aws_env: str, s3_bucket: str, tmp_path: Path, keys: list[str], file: str, inside: str
) -> None:
    put(f"{s3_bucket}/art", aws_env, keys)
    store = open_store(f"{s3_bucket}/art")
    (tmp_path / "copy").mkdir()

    with pytest.raises(StorageError, match=f"{file}.*{inside}"):
        store.download_into(tmp_path / "copy")

    assert list((tmp_path / "copy").iterdir()) == []


def test_download_into_copies_a_prefix_whose_keys_fit_in_a_directory(
    aws_env: str, s3_bucket: str, tmp_path: Path
) -> None:
    put(f"{s3_bucket}/art", aws_env, ["x/y", "x/z", "w"])

    written = open_store(f"{s3_bucket}/art").download_into(tmp_path)

    assert written == ["w", "x/y", "x/z"]
    assert (tmp_path / "x" / "z").read_bytes() == b"x/z"


def test_data_sync_of_a_key_that_is_also_a_folder_names_both_keys(
    aws_env: str, s3_bucket: str, trainflow_home: Path
) -> None:
    put(f"{s3_bucket}/art", aws_env, ["x", "x/y"])

    out = subprocess.run(
        [sys.executable, "-m", "trainflow", "data", "sync", f"{s3_bucket}/art/", "--name", "d"],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=120,
        check=False,
    )

    lines = out.stderr.splitlines()
    assert out.returncode == 2 and len(lines) == 1, out.stderr
    assert f"'{s3_bucket}/art/x'" in lines[0] and "'x/y'" in lines[0]
    assert not (trainflow_home / "cache" / "datasets" / "d").exists()
