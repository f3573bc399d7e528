"""A large file copied from this machine is hashed after its copy, beside the build: recorded as if hashed on its way.

The size above which a file is hashed later is lowered here, so small tables and IDX files take that path.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path

import numpy as np
import pytest

import trainflow.datasets.prepare as prepare_module
import trainflow.storage.local as local_module
from tests.datasets.sample_data import write_colour_folders, write_digits_idx, write_iris_csv, write_table
from trainflow.datasets import DataFormatError, DatasetCache, DatasetError, FormatOptions, load_dataset
from trainflow.datasets.file_entry import FileEntry
from trainflow.datasets.later_hashes import LaterHashes, Unhashed
from trainflow.datasets.layout import UNPACKED_DIR
from trainflow.storage import SourceUnreachable


@pytest.fixture
def hashed_later(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("trainflow.datasets.fetch.HASH_LATER_BYTES", 1024)


def manifest_files(directory: Path) -> dict[str, dict[str, object]]:
    return dict(json.loads((directory / "manifest.json").read_text())["files"])


def hashing_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("trainflow-hash")]


def test_a_file_hashed_after_its_copy_is_recorded_and_prepared_as_one_hashed_on_its_way(
    trainflow_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = write_iris_csv(tmp_path / "src")
    species = FormatOptions(label_column="species")
    on_its_way = DatasetCache(tmp_path / "on-its-way").ensure(str(source), "iris", options=species)
    monkeypatch.setattr("trainflow.datasets.fetch.HASH_LATER_BYTES", 512)  # both tables (849 and 3,219 bytes)
    cache = DatasetCache(tmp_path / "later")
    later = cache.ensure(str(source), "iris", options=species)

    files = manifest_files(later.path)
    assert files == {
        name: {**entry, "fetched_at": files[name]["fetched_at"], "local_mtime_ns": files[name]["local_mtime_ns"]}
        for name, entry in manifest_files(on_its_way.path).items()
    }
    for name in ("train.csv", "test.csv"):
        assert files[name]["sha256"] == hashlib.sha256((source / name).read_bytes()).hexdigest()
    assert sorted(later.downloaded) == ["test.csv", "train.csv"]
    assert later.descriptor is not None and on_its_way.descriptor is not None
    assert later.descriptor.source_digest == on_its_way.descriptor.source_digest
    assert later.descriptor.arrays == on_its_way.descriptor.arrays  # the same prepared folder
    np.testing.assert_array_equal(load_dataset(later.path).train.images, load_dataset(on_its_way.path).train.images)
    assert not hashing_threads()

    again = cache.ensure(str(source), "iris", options=species)
    assert again.bytes_downloaded == 0 and sorted(again.unchanged) == ["test.csv", "train.csv"]
    assert again.descriptor == later.descriptor


def test_a_sync_stopped_before_its_hash_is_taken_saves_no_entry_for_that_file_and_fetches_it_again(
    cache: DatasetCache, tmp_path: Path, hashed_later: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "src"
    write_table(source / "t.csv", ["a", "b", "label"], [[i, i * 2, i % 3] for i in range(200)])
    first = cache.ensure(str(source), "t")
    old_sha = manifest_files(first.path)["t.csv"]["sha256"]
    (first.path / "descriptor.json").unlink()  # as a sync killed in its build leaves it: the build runs beside the hash
    write_table(source / "t.csv", ["a", "b", "label"], [[i, i * 3, i % 2] for i in range(300)])

    def killed(*_: object) -> None:
        raise KeyboardInterrupt

    with monkeypatch.context() as patched:
        patched.setitem(prepare_module._BUILDERS, "csv", killed)
        with pytest.raises(KeyboardInterrupt):
            cache.ensure(str(source), "t")
    # The copy is the new file, so the old entry (its sha256) is gone from the saved manifest.
    assert "t.csv" not in manifest_files(first.path)
    assert not (first.path / "descriptor.json").exists()
    assert not hashing_threads()

    again = cache.ensure(str(source), "t")
    assert again.downloaded == ["t.csv"]
    sha = manifest_files(again.path)["t.csv"]["sha256"]
    assert sha == hashlib.sha256((source / "t.csv").read_bytes()).hexdigest() != old_sha
    assert again.descriptor is not None and again.descriptor.train_count + again.descriptor.test_count == 300


def test_a_build_that_fails_while_a_file_is_hashed_keeps_no_dataset_and_no_hash_running(
    cache: DatasetCache, tmp_path: Path, hashed_later: None
) -> None:
    source = tmp_path / "src"
    write_table(source / "t.csv", ["a", "b", "c"], [[i, i * 2, i % 3] for i in range(200)])  # no label column
    with pytest.raises(DataFormatError, match="no column named label"):
        cache.ensure(str(source), "t")
    assert not cache.path("t").exists()
    assert not hashing_threads()


def test_a_gzipped_idx_file_hashed_later_is_unpacked_once_by_the_key_its_sha256_gives(
    cache: DatasetCache, tmp_path: Path, hashed_later: None
) -> None:
    source = write_digits_idx(tmp_path / "src")
    result = cache.ensure(str(source), "digits")
    files = manifest_files(result.path)
    gz = sorted(n for n in files if n.endswith(".gz"))
    assert len(gz) == 2
    unpacked = result.path / UNPACKED_DIR
    made = sorted(p.name for p in unpacked.iterdir())
    assert made == sorted(f"{str(files[n]['sha256'])[:16]}-{Path(n).stem}" for n in gz)

    assert result.descriptor is not None
    train = load_dataset(result.path).train  # read from the unpacked copies the sync made
    assert train.images.shape[0] == result.descriptor.train_count
    assert sorted(p.name for p in unpacked.iterdir()) == made
    assert cache.ensure(str(source), "digits").bytes_downloaded == 0
    assert sorted(p.name for p in unpacked.iterdir()) == made


def test_a_copy_changed_or_gone_before_its_hash_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"x" * 5000)
    st = os.stat(path)

    def hashed(name: str, file: Unhashed) -> list[tuple[str, FileEntry]]:
        hashes = LaterHashes()
        try:
            hashes.add(name, file)
            return list(hashes.entries())
        finally:
            hashes.close()

    [(name, entry)] = hashed("f.bin", Unhashed(path, st.st_size, "tag", None, None, 1.0, st.st_mtime_ns))
    assert (name, entry.sha256) == ("f.bin", hashlib.sha256(b"x" * 5000).hexdigest())
    assert entry.local_mtime_ns == st.st_mtime_ns and entry.source_tag == "tag"
    with pytest.raises(DatasetError, match=r"^f.bin was changed in the dataset cache while it was synced"):
        hashed("f.bin", Unhashed(path, st.st_size, "tag", None, None, 1.0, st.st_mtime_ns + 1))
    with pytest.raises(DatasetError, match=r"^cannot read gone.bin back from the dataset cache \(No such file"):
        hashed("gone.bin", Unhashed(tmp_path / "gone.bin", 1, "tag", None, None, 1.0, 0))
    assert not hashing_threads()


def write_two_tables(source: Path, rows: int, step: int) -> None:
    write_table(source / "t.csv", ["a", "b", "label"], [[i, i * step, i % 3] for i in range(rows)])
    (source / "notes.txt").write_text(f"{rows} rows\n")  # small: hashed on its way


def test_a_sync_that_fails_after_a_file_was_replaced_keeps_no_entry_naming_its_old_bytes(
    cache: DatasetCache, tmp_path: Path, hashed_later: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "src"
    write_two_tables(source, 200, 2)
    cache.ensure(str(source), "t")
    write_two_tables(source, 300, 3)
    real = local_module.LocalStore.download

    def lost(self: local_module.LocalStore, name: str, *args: object) -> str:
        if name == "notes.txt":
            raise SourceUnreachable("the disk went away")
        return real(self, name, *args)  # type: ignore[arg-type]

    with monkeypatch.context() as patched:
        patched.setattr(local_module.LocalStore, "download", lost)
        with pytest.raises(SourceUnreachable):
            cache.ensure(str(source), "t")
    # t.csv holds the new bytes, its sha256 not taken: the manifest (with its journal) has no entry for it.
    manifest = cache.manifest("t")
    assert manifest is not None and "t.csv" not in manifest.files and "notes.txt" in manifest.files
    assert not hashing_threads()

    again = cache.ensure(str(source), "t")
    assert sorted(again.downloaded) == ["notes.txt", "t.csv"]
    assert manifest_files(again.path)["t.csv"]["sha256"] == hashlib.sha256((source / "t.csv").read_bytes()).hexdigest()


@pytest.mark.parametrize("before", ["no dataset", "a dataset"])
def test_a_copy_changed_before_its_hash_stops_the_sync_with_one_line_and_is_fetched_again(
    before: str, cache: DatasetCache, tmp_path: Path, hashed_later: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "src"
    if before == "a dataset":  # its descriptor: the hash is waited for before the build, and fails there
        write_two_tables(source, 150, 5)
        cache.ensure(str(source), "t")
    write_two_tables(source, 200, 2)
    real = LaterHashes._hash

    def touched_first(self: LaterHashes, name: str, file: Unhashed) -> str:
        os.utime(file.path, ns=(file.local_mtime_ns + 10**9, file.local_mtime_ns + 10**9))
        return real(self, name, file)

    with monkeypatch.context() as patched:
        patched.setattr(LaterHashes, "_hash", touched_first)
        with pytest.raises(DatasetError, match=r"^t.csv was changed in the dataset cache while it was synced: sync"):
            cache.ensure(str(source), "t")
    assert "t.csv" not in manifest_files(cache.path("t"))
    assert not (cache.path("t") / "descriptor.json").exists()  # an earlier one described the earlier bytes
    again = cache.ensure(str(source), "t")
    assert again.downloaded == ["t.csv"] and again.descriptor is not None
    assert again.descriptor.train_count + again.descriptor.test_count == 200


def test_the_same_bytes_fetched_again_keep_the_arrays_built_from_them(
    cache: DatasetCache, tmp_path: Path, hashed_later: None
) -> None:
    source = tmp_path / "src"
    write_two_tables(source, 200, 2)
    first = cache.ensure(str(source), "t")
    assert first.descriptor is not None
    x_train = first.path / first.descriptor.arrays.x_train
    built = x_train.stat().st_ino
    os.utime(source / "t.csv", ns=(10**18, 10**18))  # a new version at the source, with the same bytes
    again = cache.ensure(str(source), "t")
    assert again.downloaded == ["t.csv"]
    assert again.descriptor == first.descriptor
    assert x_train.stat().st_ino == built  # not built again


def test_an_image_folder_is_decoded_once_its_files_are_hashed(
    cache: DatasetCache, tmp_path: Path, hashed_later: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = write_colour_folders(tmp_path / "src", size=(24, 24))
    assert any(p.stat().st_size >= 1024 for p in source.rglob("*.png"))
    seen: list[list[str]] = []
    build = prepare_module._BUILDERS["images"]

    def decode(*args: object) -> object:
        seen.append(hashing_threads())  # its workers are forked: no thread may be running beside
        return build(*args)  # type: ignore[arg-type]

    monkeypatch.setitem(prepare_module._BUILDERS, "images", decode)
    result = cache.ensure(str(source), "colours")
    assert seen == [[]]
    assert result.descriptor is not None and result.descriptor.format == "images"
    files = manifest_files(result.path)
    assert all(files[n]["sha256"] == hashlib.sha256((source / n).read_bytes()).hexdigest() for n in files)


def test_a_verifying_sync_hashes_every_file_from_the_source_as_it_is_copied(
    cache: DatasetCache, tmp_path: Path, hashed_later: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "src"
    write_two_tables(source, 200, 2)
    unhashed: list[str] = []
    real = local_module.LocalStore.copy_unhashed

    def counted(self: local_module.LocalStore, name: str, *args: object) -> bool:
        unhashed.append(name)
        return real(self, name, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(local_module.LocalStore, "copy_unhashed", counted)
    assert cache.ensure(str(source), "t", verify=True).downloaded == ["notes.txt", "t.csv"]
    assert unhashed == []  # a copy the kernel made wrong would be recorded as right
    assert (
        manifest_files(cache.path("t"))["t.csv"]["sha256"]
        == hashlib.sha256((source / "t.csv").read_bytes()).hexdigest()
    )
    (source / "t.csv").write_text("a,b,label\n" + "1,2,0\n" * 300)
    cache.ensure(str(source), "t")
    assert unhashed == ["t.csv"]
