"""What layers above storage do with "directories" on every store: list them, publish one whole, read one locally."""

from __future__ import annotations

import os
from pathlib import Path

import boto3
import pytest

from trainflow.storage import ObjectExists, StorageError, open_store

FILES = {"model.onnx": b"weights", "signature.json": b"{}"}


def s3_client():
    return boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name="us-east-1")


def test_children_are_the_names_directly_under_the_base(store_url: str) -> None:
    store = open_store(store_url)
    store.ensure_container()
    for name in ("1/model.onnx", "1/signature.json", "2/model.onnx", "notes.txt", "a/b/signature.json"):
        store.write_bytes(name, b"x")
    assert store.children() == ["1", "2", "a", "notes.txt"]
    assert store.children(holding="signature.json") == ["1"]


def test_children_of_a_base_that_does_not_exist_are_none(store_url: str) -> None:
    assert open_store(f"{store_url}/nothing/here").children() == []


def test_children_of_a_missing_bucket_are_none(aws_env: str) -> None:
    assert open_store("s3://no-such-bucket-for-children/versions").children(holding="signature.json") == []


def test_hostile_and_hidden_s3_keys_are_no_children(s3_bucket: str) -> None:
    bucket = s3_bucket.removeprefix("s3://")
    for key in ("p/../signature.json", "p/.tmp-1/signature.json", "p//signature.json", "p/7\u202e/signature.json"):
        s3_client().put_object(Bucket=bucket, Key=key, Body=b"{}")
    s3_client().put_object(Bucket=bucket, Key="p/3/signature.json", Body=b"{}")
    assert open_store(f"{s3_bucket}/p").children(holding="signature.json") == ["3"]


def test_hidden_and_unprintable_local_entries_are_no_children(tmp_path: Path) -> None:
    for name in (".tmp-1", "7\u202e", "3"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "signature.json").write_bytes(b"{}")
    (tmp_path / "4").mkdir()  # a version that died half-written is still a child
    assert open_store(tmp_path).children() == ["3", "4"]
    assert open_store(tmp_path).children(holding="signature.json") == ["3"]


def test_published_directory_reads_back_whole_and_cannot_be_published_twice(store_url: str) -> None:
    store = open_store(store_url)
    store.publish("1", FILES, marker="signature.json")
    assert store.read_bytes("1/model.onnx") == b"weights" and store.children(holding="signature.json") == ["1"]
    with pytest.raises(ObjectExists, match="1 already exists"):
        store.publish("1", {"model.onnx": b"other", "signature.json": b"[]"}, marker="signature.json")
    assert store.read_bytes("1/model.onnx") == b"weights" and store.read_bytes("1/signature.json") == b"{}"


def test_local_publish_never_replaces_an_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "5").mkdir()  # rename() alone would silently replace it
    with pytest.raises(ObjectExists):
        open_store(tmp_path).publish("5", FILES, marker="signature.json")
    assert list((tmp_path / "5").iterdir()) == []


@pytest.mark.parametrize(("name", "files"), [("../up", FILES), ("1", {"../../evil": b"x"}), ("a\u202eb", FILES)])
def test_publish_refuses_hostile_names_and_writes_nothing(store_url: str, name: str, files: dict[str, bytes]) -> None:
    store = open_store(store_url)
    with pytest.raises(StorageError, match="refusing object name"):
        store.publish(name, files, marker="signature.json")
    store.ensure_container()
    assert store.list() == []


def test_local_publish_that_fails_midway_publishes_nothing_and_leaves_no_staging(tmp_path: Path) -> None:
    clash = {"sub": b"a file", "sub/x": b"a file inside the file"}
    with pytest.raises(StorageError, match="nothing was published"):
        open_store(tmp_path).publish("1", clash, marker="sub/x")
    assert list(tmp_path.iterdir()) == []


def test_publish_under_a_file_is_one_line_and_the_file_is_untouched(tmp_path: Path) -> None:
    (tmp_path / "base").write_text("my notes")
    with pytest.raises(StorageError, match=r"as a directory \(it is a file\)"):
        open_store(tmp_path / "base").publish("1", FILES, marker="signature.json")
    assert (tmp_path / "base").read_text() == "my notes"


def test_local_copy_holds_the_named_objects_and_a_download_goes_afterwards(store_url: str) -> None:
    store = open_store(store_url)
    store.publish("1", FILES, marker="signature.json")
    version = open_store(f"{store_url.rstrip('/')}/1")
    with version.local_copy(["model.onnx"]) as directory:
        assert (directory / "model.onnx").read_bytes() == b"weights"
    if version.local_root is None:
        assert not directory.exists()
    else:
        assert directory == version.local_root and (directory / "model.onnx").exists()


def test_local_copy_refuses_hostile_names(store_url: str) -> None:
    with pytest.raises(StorageError, match="refusing object name"), open_store(store_url).local_copy(["../x"]):
        pytest.fail("a copy was made for a hostile name")


def test_only_a_local_store_has_a_local_root(tmp_path: Path, s3_bucket: str) -> None:
    assert open_store(tmp_path).local_root == tmp_path
    assert open_store(f"file://{tmp_path}").local_root == tmp_path
    assert open_store(s3_bucket).local_root is None


def test_http_cannot_list_children_or_publish(http_server) -> None:
    store = open_store(http_server[0])
    with pytest.raises(StorageError, match="needs the file names"):
        store.children()
    with pytest.raises(StorageError, match="read-only"):
        store.publish("1", FILES, marker="signature.json")


def test_http_local_copy_downloads(http_server) -> None:
    base, root, _ = http_server
    (root / "model.onnx").write_bytes(b"weights")
    with open_store(base).local_copy(["model.onnx"]) as directory:
        assert (directory / "model.onnx").read_bytes() == b"weights"
