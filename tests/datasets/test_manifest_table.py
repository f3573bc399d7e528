"""The manifest's files are held in flat buffers, not an object per file: same entries, arrays and labels as before."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import pickle
import resource
import signal
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from trainflow.datasets import DatasetCache, file_table, load_dataset
from trainflow.datasets.file_entry import FileEntry
from trainflow.datasets.file_table import FileTable, NameList, TableNames
from trainflow.datasets.manifest import Manifest

# Class folders whose order as paths ("1-a/" before "1/") is not their order as class names ("1" before "1-a").
CLASSES = ("1", "1-a", "10", "b")


def write_gray_folders(directory: Path, per_class: tuple[int, int]) -> Path:
    rng = np.random.default_rng(0)
    for split, count in zip(("train", "test"), per_class, strict=True):
        for cls in CLASSES:
            folder = directory / split / cls
            folder.mkdir(parents=True)
            for i in range(count):
                Image.fromarray(rng.integers(0, 256, (6, 5), dtype=np.uint8), "L").save(folder / f"{i:04d}.png")
    (directory / "train" / "1" / "notes.txt").write_text("not an image: left out of the arrays")
    return directory


def expected_split(source: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """The split's images decoded with PIL, class after class (classes sorted as names), files sorted."""
    images, labels = [], []
    for label, cls in enumerate(sorted(CLASSES)):
        for path in sorted((source / split / cls).glob("*.png")):
            images.append(np.asarray(Image.open(path))[None])
            labels.append(label)
    return np.stack(images), np.array(labels)


@pytest.mark.parametrize("per_class", [(1, 1), (520, 30)], ids=["a few files", "thousands, decoded in processes"])
def test_an_image_folder_syncs_to_the_same_manifest_arrays_and_labels_as_read_directly(
    cache: DatasetCache, tmp_path: Path, per_class: tuple[int, int]
) -> None:
    source = write_gray_folders(tmp_path / "src", per_class)
    result = cache.ensure(str(source), "d")
    files = sorted(p.relative_to(source).as_posix() for p in source.rglob("*") if p.is_file())
    saved = json.loads((result.path / "manifest.json").read_bytes())["files"]
    assert list(saved) == files  # sorted, as the dict the manifest was written from
    for name in files:
        st = (result.path / name).stat()
        assert saved[name]["sha256"] == hashlib.sha256((source / name).read_bytes()).hexdigest()
        assert (saved[name]["size"], saved[name]["local_mtime_ns"]) == (st.st_size, st.st_mtime_ns)
        assert saved[name]["source_tag"] == f"size:{st.st_size}:mtime:{(source / name).stat().st_mtime}"
    dataset = load_dataset(result.path)
    for split, data in (("train", dataset.train), ("test", dataset.test)):
        images, labels = expected_split(source, split)
        assert np.array_equal(np.asarray(data.images), images)
        assert np.array_equal(np.asarray(data.labels), labels)
    assert dataset.descriptor.class_names == tuple(sorted(CLASSES))


def test_an_unchanged_file_rehashed_after_its_mtime_changed_is_trusted_by_its_stat_on_the_next_sync(
    cache: DatasetCache, tmp_path: Path
) -> None:
    source = write_gray_folders(tmp_path / "src", (2, 1))
    result = cache.ensure(str(source), "d")
    touched = result.path / "train" / "b" / "0001.png"
    os.utime(touched, ns=(1_700_000_000_000_000_000, 1_700_000_000_000_000_000))  # same bytes, another mtime
    again = cache.ensure(str(source), "d")
    assert "train/b/0001.png" in again.unchanged
    manifest = cache.manifest("d")
    assert manifest is not None and manifest.files["train/b/0001.png"].local_mtime_ns == 1_700_000_000_000_000_000


def entry(i: int, etag: str | None = None, tag: str | None = None) -> FileEntry:
    size, mtime = 100 + i, 1_700_000_000.5 + i
    tag = tag or (f"etag:{etag}" if etag else f"size:{size}:mtime:{mtime}")
    return FileEntry(size, hashlib.sha256(str(i).encode()).hexdigest(), tag, etag, mtime, 1_800_000_000.0, i)


def test_the_file_table_reads_back_what_a_dict_of_entries_holds_through_replacements_and_removals(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(file_table, "_RECENT_MAX", 5)  # lookups through the sorted index, not only the recent names
    table, reference = FileTable(), {}
    names = [f"train/{i % 3}/{i:03d}.png" for i in range(40)] + ["é/ü.png", "\U0001f600.png", "z"]
    for i, name in enumerate(names):
        table[name] = reference[name] = entry(i, etag="abc" if i == 30 else None, tag="odd" if i == 7 else None)
    for i, name in enumerate(names[::4]):  # replaced: an ETag now, a new size
        table[name] = reference[name] = entry(1000 + i, etag=f"e{i}")
    for name in names[1::9]:
        del table[name], reference[name]
    table[names[1]] = reference[names[1]] = entry(5000)  # back after removal
    assert len(table) == len(reference) and table == reference
    assert list(table) == list(reference)  # a dict's order: a replaced entry keeps its place, a re-added one is last
    assert dict(table.items()) == reference and all(table[n] == e for n, e in reference.items())
    assert list(table.sorted_names()) == sorted(reference) and names[10] not in table
    assert table.total_size() == sum(e.size for e in reference.values())
    manifest = Manifest("d", "file:///src", reference)
    assert Manifest.from_json(manifest.to_json()).files == table


def test_a_manifest_holds_no_python_object_per_file() -> None:
    entries = [(f"train/{i % 10}/{i:06d}.png", entry(i)) for i in range(20_000)]
    tracemalloc.start()
    try:
        table = FileTable(entries)
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(table) == 20_000
    assert held / len(table) < 160  # the 64-byte record, the name and a few integers; a dict of entries was ~470


def test_a_sync_results_names_read_back_like_the_list_they_replaced() -> None:
    names = ["b/ü.png", "a", "\U0001f600", "a/b"]
    kept = NameList(names)
    assert kept == names and list(kept) == names and len(kept) == 4 and "a/b" in kept and "c" not in kept
    assert (kept[-1], kept[1:3], kept[::-2]) == (names[-1], names[1:3], names[::-2])
    kept.sort()
    kept.append("0")
    assert kept == [*sorted(names), "0"] and kept != sorted(names) and ", ".join(kept[:2]) == "a, a/b"
    with pytest.raises(IndexError):
        kept[5]


def test_names_sharing_long_beginnings_come_back_in_python_s_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(file_table, "_TIE_ROWS", 4)  # equal beginnings compared in pieces, runs across their edges
    head = "train/" + "x" * 40  # past the leading bytes compared in numpy
    names = [f"{head}/{i % 3}/{i:03d}.png" for i in range(50)] + [head, head + "0", "caf\u00e9", "cafe", "a/b", "a-b"]
    table = FileTable()
    for i, name in enumerate(reversed(names)):
        table[name] = FileEntry(i, "0" * 64, "t", None, None, 0.0)
    del table[names[7]]
    assert list(table.sorted_names()) == sorted(n for n in names if n != names[7])
    listed = NameList(reversed(names))
    listed.sort()
    assert list(listed) == sorted(names)


def test_a_spilled_table_reads_the_same_from_its_file_and_takes_changes_back_on_the_heap(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(file_table, "_RECENT_MAX", 5)  # some lookups through the sorted index, some through the dict
    names = [f"train/{i % 3}/{i:04d}.png" for i in range(2000)] + ["é/ü.png", "\U0001f600.png", "\udcff"]
    reference = {name: entry(i, etag="abc" if i == 30 else None) for i, name in enumerate(names)}
    tracemalloc.start()
    try:
        table = FileTable(reference)
        downloaded = TableNames(table)
        for name in names[::2]:
            downloaded.append_row(table.row(name) or 0)
        before, _ = tracemalloc.get_traced_memory()
        table.spill(tmp_path)
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert before - after > 100 * len(names)  # the records, names and index (~120 bytes a file) left the heap
    assert list(tmp_path.iterdir()) == []  # the file has no name: nothing to clean up, even after a crash
    assert table == reference and list(table) == names and list(table.sorted_names()) == sorted(names)
    assert all(table[n] == e for n, e in reference.items()) and "z" not in table
    assert list(downloaded) == names[::2] and table.total_size() == sum(e.size for e in reference.values())
    table["z"] = reference["z"] = entry(9000)  # a change brings the buffers back, then goes on as before
    table[names[3]] = reference[names[3]] = entry(9001)
    del table[names[5]], reference[names[5]]
    assert table == reference and list(table) == list(reference) and list(downloaded)[:2] == names[:4:2]


def test_the_result_of_a_prepared_sync_pickles_and_copies_with_its_names(cache: DatasetCache, tmp_path: Path) -> None:
    """Its names are rows of the manifest's table, spilled to a mapped file while the dataset was prepared."""
    result = cache.ensure(str(write_gray_folders(tmp_path / "src", (1, 1))), "d")
    for copied in (pickle.loads(pickle.dumps(result)), copy.deepcopy(result)):
        assert list(copied.downloaded) == list(result.downloaded) and len(result.downloaded) == 9
        assert copied.descriptor == result.descriptor
    table = FileTable({"a": entry(1)})
    table.spill(tmp_path)
    copied_table = copy.deepcopy(table)
    copied_table["b"] = entry(2)
    assert table == {"a": entry(1)} and copied_table == {"a": entry(1), "b": entry(2)}


def test_a_table_the_disk_cannot_take_stays_on_the_heap_and_the_spill_goes_on_without_it(tmp_path: Path) -> None:
    """Spilling only saves memory: a full disk (here a file size limit) must not stop the sync that spills."""
    reference = {f"train/{i:04d}.png": entry(i) for i in range(500)}
    table = FileTable(reference)
    limits = resource.getrlimit(resource.RLIMIT_FSIZE)
    signal_before = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails instead of killing
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, limits[1]))
    try:
        table.spill(tmp_path)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limits)
        signal.signal(signal.SIGXFSZ, signal_before)
    assert table == reference and list(table.sorted_names()) == sorted(reference)
    table["z"] = reference["z"] = entry(9000)
    assert table == reference and list(tmp_path.iterdir()) == []
