"""`trainflow data upload` of a folder that lost files, to a prefix an earlier upload filled (real S3 endpoint)."""

from __future__ import annotations

from pathlib import Path

from tests.commands import trainflow
from trainflow.storage import open_store


def a_folder(root: Path) -> Path:
    folder = root / "labels"
    folder.mkdir()
    (folder / "a.csv").write_text("0,cat\n")
    (folder / "b.csv").write_text("1,dog\n")
    (folder / ".keep").write_text("")
    return folder


def names(url: str) -> list[str]:
    return sorted(o.name for o in open_store(url).list())


def test_uploading_again_without_a_file_says_what_is_left_there_and_delete_removes_it(
    tmp_path: Path, s3_bucket: str
) -> None:
    folder, url = a_folder(tmp_path), f"{s3_bucket}/data/labels/"
    assert trainflow("data", "upload", str(folder), url).returncode == 0
    assert names(url) == ["a.csv", "b.csv"]  # hidden files stay out of a dataset
    (folder / "b.csv").unlink()
    (folder / "a.csv").write_text("0,cat\n2,bird\n")

    kept = trainflow("data", "upload", str(folder), url)
    assert kept.returncode == 0, kept.stderr
    assert f"1 objects there are not in {folder} (--delete removes them)" in " ".join(kept.stdout.split())
    assert names(url) == ["a.csv", "b.csv"]  # without --delete nothing of the user's is removed

    deleted = trainflow("data", "upload", str(folder), url, "--delete")
    assert deleted.returncode == 0, deleted.stderr
    assert f"deleted 1 not in {folder}" in " ".join(deleted.stdout.split())
    assert names(url) == ["a.csv"]
    assert open_store(url).read_bytes("a.csv") == b"0,cat\n2,bird\n"


def test_delete_leaves_hidden_objects_a_dataset_upload_never_wrote(tmp_path: Path, s3_bucket: str) -> None:
    folder, url = a_folder(tmp_path), f"{s3_bucket}/data/labels/"
    open_store(url).write_bytes(".marker", b"someone else's")
    assert trainflow("data", "upload", str(folder), url, "--delete").returncode == 0
    assert sorted(o.name for o in open_store(url).list()) == [".marker", "a.csv", "b.csv"]
