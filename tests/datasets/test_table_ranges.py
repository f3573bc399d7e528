"""A large CSV is parsed in byte ranges side by side: the same arrays, split, labels and statistics as reading it
in one pass, a bad row in a later range still named by its line in the file with nothing kept, and a sync killed
mid-conversion leaving no dataset behind."""

from __future__ import annotations

import csv
import itertools
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pytest

from trainflow.datasets import DataFormatError, DatasetCache, checks, load_dataset, table_reader
from trainflow.datasets.checks import normalization

ROWS = 6000
FEATURES = 5
RANGES = 3


@pytest.fixture(autouse=True)
def small_ranges(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ranges of ~40 KB on three threads (a 1 MiB batch would hold a whole range), batches of 4 KB within them."""
    monkeypatch.setattr(table_reader, "BATCH_BYTES", 4096)
    monkeypatch.setattr(table_reader, "SEGMENT_BYTES", 32 << 10)
    monkeypatch.setattr(table_reader, "usable_cores", lambda: RANGES)


def write_csv(src: Path, line_end: str = "\n") -> tuple[np.ndarray, list[str]]:
    """A table whose last rows hold a class no earlier row has ('zebra'), with quoted labels and `line_end` lines."""
    rng = np.random.default_rng(11)
    x = (rng.normal(size=(ROWS, FEATURES)) * [1, 10, 1e3, 0.01, 5]).astype(np.float32)
    y = [["ant", "bee", "cat"][v] for v in rng.integers(0, 3, ROWS)]
    y[-50:] = ["zebra"] * 50
    src.mkdir(parents=True, exist_ok=True)
    with open(src / "t.csv", "w", newline="") as f:
        writer = csv.writer(f, lineterminator=line_end, quoting=csv.QUOTE_NONNUMERIC)
        writer.writerow([*(f"f{j}" for j in range(FEATURES)), "label"])
        writer.writerows([*(float(v) for v in row), label] for row, label in zip(x, y, strict=True))
    return x, y


def expected(x: np.ndarray, y: list[str]) -> dict[str, np.ndarray]:
    """What one pass over the whole table gives: 20% of the rows held out by a permutation seeded 0, in file order."""
    order = np.random.default_rng(0).permutation(ROWS)
    test = np.sort(order[: int(ROWS * 0.2)])
    train = np.setdiff1d(np.arange(ROWS), test)
    classes = sorted(set(np.asarray(y)[train]))
    labels = np.array([classes.index(v) for v in y], dtype=np.int64)
    return {"x_train": x[train], "y_train": labels[train], "x_test": x[test], "y_test": labels[test]}


def test_the_table_is_cut_into_ranges_at_line_ends(tmp_path: Path) -> None:
    write_csv(tmp_path, line_end="\r\n")
    table = table_reader.open_table(tmp_path / "t.csv", "t.csv")
    ranges = table_reader._csv_ranges(table.path)
    data = (tmp_path / "t.csv").read_bytes()
    assert len(ranges) == RANGES and ranges[0][0] == 0 and ranges[-1][1] == len(data)
    assert all(end == start and data[start - 1 : start] == b"\n" for (_, end), (start, _) in itertools.pairwise(ranges))
    parts = table.parts(table.columns, table.columns[:-1])
    assert [p.rows for p in parts] == [sum(b.rows for b in p.batches) for p in table.parts(table.columns, [])]
    assert sum(p.rows for p in parts) == ROWS and all(p.rows for p in parts)
    assert [p.first for p in parts] == [0, parts[0].rows, parts[0].rows + parts[1].rows]
    assert [next(p.batches).start for p in parts] == [p.first for p in parts]


@pytest.mark.parametrize("line_end", ["\n", "\r\n"])
def test_a_csv_read_in_ranges_gives_the_arrays_split_labels_and_statistics_of_one_pass(
    cache: DatasetCache, tmp_path: Path, line_end: str
) -> None:
    x, y = write_csv(tmp_path / "src", line_end)
    result = cache.ensure(str(tmp_path / "src"), "d")

    d, dataset, want = result.descriptor, load_dataset(result.path), expected(x, y)
    assert d is not None and (d.train_count, d.test_count) == (4800, 1200)
    assert d.class_names == ("ant", "bee", "cat", "zebra")
    for part, split in (("train", dataset.train), ("test", dataset.test)):
        assert np.array_equal(np.asarray(split.images), want[f"x_{part}"])
        assert np.array_equal(np.asarray(split.labels), want[f"y_{part}"])
    assert d.normalization == normalization(want["x_train"], (FEATURES,))
    assert sorted(p.name for p in result.path.rglob("*.rows*")) == []  # the ranges' raw files are gone


@pytest.mark.parametrize("cores", [1, RANGES])
@pytest.mark.parametrize("edit", ["blank lines", "blank lines at the end", "no line break at the end"])
def test_a_csv_whose_lines_are_not_one_a_row_gives_the_arrays_and_split_of_one_pass(
    cache: DatasetCache, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, edit: str, cores: int
) -> None:
    """Rows are placed where the file's line count puts them: a blank line (which pyarrow skips) makes the count
    wrong, and the table is read again; a last line with no line break is still a row."""
    monkeypatch.setattr(table_reader, "usable_cores", lambda: cores)
    opened: list[object] = []
    open_csv = table_reader.pa_csv.open_csv
    monkeypatch.setattr(table_reader.pa_csv, "open_csv", lambda *a, **k: opened.append(a[0]) or open_csv(*a, **k))
    x, y = write_csv(tmp_path / "src")
    path = tmp_path / "src" / "t.csv"
    lines = path.read_text().splitlines(keepends=True)
    if edit == "blank lines":
        for at in (5000, 2500, 40):
            lines.insert(at, "\n")
    elif edit == "blank lines at the end":
        lines.append("\n\n")
    else:
        lines[-1] = lines[-1].rstrip("\n")
    path.write_text("".join(lines))
    result = cache.ensure(str(tmp_path / "src"), "d")

    d, dataset, want = result.descriptor, load_dataset(result.path), expected(x, y)
    assert d is not None and (d.train_count, d.test_count) == (4800, 1200)
    for part, split in (("train", dataset.train), ("test", dataset.test)):
        assert np.array_equal(np.asarray(split.images), want[f"x_{part}"])
        assert np.array_equal(np.asarray(split.labels), want[f"y_{part}"])
    assert d.normalization == normalization(want["x_train"], (FEATURES,))
    assert sorted(p.name for p in result.path.rglob("*.rows*")) == []
    read_once = edit != "blank lines"  # else its ranges, then the whole file on one thread
    assert len(opened) == (cores if read_once else cores + 1)


@pytest.mark.parametrize("block", [500, 1600, 5000])
def test_statistics_blocks_within_and_across_the_ranges_raw_files_sum_to_one_pass_bits(
    cache: DatasetCache, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, block: int
) -> None:
    """The raw files split side by side (~1,600 training rows each): blocks each holds whole and blocks across two."""
    monkeypatch.setattr(checks, "_STATS_ROWS", block)
    x, y = write_csv(tmp_path / "src")
    result = cache.ensure(str(tmp_path / "src"), "d")

    d, dataset, want = result.descriptor, load_dataset(result.path), expected(x, y)
    assert d is not None and d.normalization == normalization(want["x_train"], (FEATURES,))
    assert np.array_equal(np.asarray(dataset.train.images), want["x_train"])
    assert np.array_equal(np.asarray(dataset.test.images), want["x_test"])


@pytest.mark.parametrize(
    ("bad_line", "message"),
    [
        ("1.0,2.0,3.0\n", r"t\.csv line {} has 3 values for 6 columns: fix that row"),
        ('1,2,3,four,5,"ant"\n', r"column 'f3' of t\.csv is not numeric \(line {}: 'four'\)"),
        ("1,2,3,4,5,\n", r"line {} of t\.csv has no 'label'"),
        ('1,2,3,1e39,5,"ant"\n', r"column 'f3' of t\.csv holds 1e39 \(line {}\), beyond float32"),
    ],
)
@pytest.mark.parametrize("blank_lines", [False, True])
def test_a_bad_row_in_a_later_range_is_named_by_its_line_in_the_file_and_nothing_is_kept(
    cache: DatasetCache, tmp_path: Path, bad_line: str, message: str, blank_lines: bool
) -> None:
    """After blank lines and a label over two lines too: pyarrow skips blank lines and numbers records, and the line
    named is the one an editor shows."""
    write_csv(tmp_path / "src")
    path = tmp_path / "src" / "t.csv"
    lines = path.read_text().splitlines(keepends=True)
    lines[5432 - 1] = bad_line  # data row 5430
    line = 5432
    if blank_lines:
        lines[20] = lines[20].rsplit(",", 1)[0] + ',"ant\nbee ""two"""\n'  # data row 19's label over two lines
        lines[100:100] = ["\n", "\r\n", "\n"]  # three blank lines before data row 99
        line = 5436
    path.write_text("".join(lines))
    start_of_last = table_reader._csv_ranges(path)[-1][0]
    assert len("".join(lines[: lines.index(bad_line)]).encode()) > start_of_last  # the bad row is in the last range
    assert path.read_text().split("\n")[line - 1] == bad_line.rstrip("\n")  # the line to name, counted by hand

    with pytest.raises(DataFormatError, match=message.format(line)) as refused:
        cache.ensure(str(tmp_path / "src"), "d")
    assert "\n" not in str(refused.value)
    assert not cache.path("d").exists() and cache.names() == []


def test_a_sync_killed_while_its_ranges_convert_leaves_no_dataset_and_the_next_sync_makes_it_whole(
    cache: DatasetCache, tmp_path: Path
) -> None:
    rows = 120_000  # ~26 MB: ranges of at least SEGMENT_BYTES (8 MiB) on the syncing process's cores
    rng = np.random.default_rng(5)
    columns = {f"f{j}": pa.array(rng.normal(size=rows).astype(np.float32)) for j in range(20)}
    (tmp_path / "src").mkdir()
    pa_csv.write_csv(pa.table(columns | {"label": pa.array(rng.integers(0, 10, rows))}), tmp_path / "src" / "t.csv")
    directory = cache.path("d")
    sync = [sys.executable, "-m", "trainflow", "data", "sync", str(tmp_path / "src"), "--name", "d"]
    proc = subprocess.Popen(sync, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        converting = directory / ".prepared"
        while not list(converting.glob(".tmp-*/x_train.npy")) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.005)
        assert list(converting.glob(".tmp-*/x_train.npy")), "the sync was converting when killed"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert not (directory / "descriptor.json").exists()

    result = cache.ensure(str(tmp_path / "src"), "d")

    assert result.descriptor is not None and result.descriptor.train_count + result.descriptor.test_count == rows
    assert [p.name for p in (directory / ".prepared").iterdir()] == [result.descriptor.source_digest[:16]]
    assert list(directory.rglob("*.rows*")) == []


@pytest.mark.parametrize("cores", [1, RANGES])
def test_a_csv_whose_quoted_labels_hold_line_breaks_across_its_batches_gives_the_arrays_and_split_of_one_pass(
    cache: DatasetCache, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cores: int
) -> None:
    """pyarrow cuts its blocks at line ends unless told values may hold them: a block cut inside a quoted label put
    its parser out of sync, and a valid table was refused as not a readable CSV file."""
    monkeypatch.setattr(table_reader, "usable_cores", lambda: cores)
    x, y = write_csv(tmp_path / "src")
    y = [label.replace("a", "a\nb") for label in y]  # 'ant' and 'cat' span two lines: most blocks end in one
    with open(tmp_path / "src" / "t.csv", "w", newline="") as f:
        writer = csv.writer(f, quoting=csv.QUOTE_NONNUMERIC)
        writer.writerow([*(f"f{j}" for j in range(FEATURES)), "label"])
        writer.writerows([*(float(v) for v in row), label] for row, label in zip(x, y, strict=True))
    result = cache.ensure(str(tmp_path / "src"), "d")

    d, dataset, want = result.descriptor, load_dataset(result.path), expected(x, y)
    assert d is not None and (d.train_count, d.test_count) == (4800, 1200)
    assert d.class_names == tuple(sorted(set(y)))
    for part, split in (("train", dataset.train), ("test", dataset.test)):
        assert np.array_equal(np.asarray(split.images), want[f"x_{part}"])
        assert np.array_equal(np.asarray(split.labels), want[f"y_{part}"])
    assert d.normalization == normalization(want["x_train"], (FEATURES,))


@pytest.mark.parametrize(
    ("text", "lines"),
    [
        (b'a,b\n1,5"11\n2,x\n3,6"2\n4,y\n', [2, 3, 4, 5]),  # a quote inside a value is text, as pyarrow reads it
        (b"a,b\r1,2\r\r3,4\r", [2, 4]),  # lines ended by a carriage return alone, one of them blank
        (b'\xef\xbb\xbfa,b\r\n1,2\r\n\r\n"x\r\ny",3\r\n4,5\r\n', [2, 4, 6]),  # a BOM, CRLF, a quoted line break
        (b"a,b\n1,2\n\n3," + b"x" * 200_000 + b"\n4,5\n", [2, 4, 5]),  # a value past the csv module's 128 KiB
    ],
)
def test_a_csv_row_is_named_by_the_line_an_editor_shows(tmp_path: Path, text: bytes, lines: list[int]) -> None:
    path = tmp_path / "t.csv"
    path.write_bytes(text)
    table = table_reader.open_table(path, "t.csv")
    assert pa_csv.read_csv(path, parse_options=pa_csv.ParseOptions(newlines_in_values=True)).num_rows == len(lines)

    assert [table.where(row) for row in range(len(lines))] == [f"line {n}" for n in lines]
