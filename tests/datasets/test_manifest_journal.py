"""A sync records each fetched file in a journal and writes manifest.json once: a killed sync resumes from it."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.datasets.sample_data import write_colour_folders
from tests.servers import FileServer, QuietFileHandler
from trainflow.datasets import DatasetCache, FormatOptions

JOURNAL = ".manifest.journal"


class _SlowFileServer(FileServer):
    """An HTTP file server that holds back `slow.bin` until `release` is set, and counts GETs by path."""

    def __init__(self, root: Path) -> None:
        self.gets: list[str] = []
        owner = self

        class Handler(QuietFileHandler):
            def do_GET(self) -> None:
                owner.gets.append(self.path)
                if self.path == "/slow.bin" and not owner.release.is_set():
                    owner.release.wait(60)
                    self.close_connection = True
                    return
                super().do_GET()

        super().__init__(root, Handler)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path, _SlowFileServer]]:
    root = tmp_path / "served"
    root.mkdir()
    for i in range(20):
        (root / f"f{i:02d}.bin").write_bytes(os.urandom(100 + i))
    (root / "slow.bin").write_bytes(os.urandom(1000))
    server = _SlowFileServer(root)
    with server as url:
        yield url, root, server


def sync_args(url: str, root: Path) -> list[str]:
    files = [a for p in sorted(root.iterdir()) for a in ("--file", p.name)]
    return [sys.executable, "-m", "trainflow", "data", "sync", url, *files, "--name", "web"]


def journal_lines(directory: Path) -> int:
    try:
        return (directory / JOURNAL).read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def test_killed_sync_resumes_from_its_journal_and_fetches_only_what_it_had_not(
    served: tuple[str, Path, _SlowFileServer], trainflow_home: Path
) -> None:
    url, root, server = served
    directory = trainflow_home / "cache" / "datasets" / "web"
    proc = subprocess.Popen(sync_args(url, root), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 90
        while journal_lines(directory) < 21 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert journal_lines(directory) == 21, "the header and the 20 quick files, slow.bin still under way"
        assert not (directory / "manifest.json").exists()  # written once, at the end
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    server.release.set()
    server.gets.clear()

    out = subprocess.run(sync_args(url, root), capture_output=True, text=True, timeout=120, check=False)

    assert out.returncode == 0, out.stderr
    assert "20 up to date" in out.stdout
    assert server.gets == ["/slow.bin"]
    assert not (directory / JOURNAL).exists()
    manifest = json.loads((directory / "manifest.json").read_text())
    assert sorted(manifest["files"]) == sorted(p.name for p in root.iterdir())
    for path in root.iterdir():
        assert manifest["files"][path.name]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        assert (directory / path.name).read_bytes() == path.read_bytes()


def as_killed_sync(directory: Path, broken: dict[str, bytes]) -> None:
    """Turn a finished sync's manifest into the journal of a sync killed before its end; `broken` lines replace
    the lines of those files."""
    manifest = json.loads((directory / "manifest.json").read_text())
    lines = [json.dumps({"journal": 1, "name": directory.name, "source": manifest["source"]}).encode() + b"\n"]
    for name, entry in sorted(manifest["files"].items()):
        lines.append(broken.get(name, json.dumps({"name": name, **entry}).encode() + b"\n"))
    (directory / JOURNAL).write_bytes(b"".join(lines))
    (directory / "manifest.json").unlink()


def test_a_corrupt_or_cut_journal_line_is_left_out_and_only_its_file_fetched_again(
    cache: DatasetCache, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source = tmp_path / "src"
    source.mkdir()
    for i in range(6):
        (source / f"{i}.bin").write_bytes(os.urandom(64 + i))
    first = cache.ensure(str(source), "d")
    as_killed_sync(
        first.path,
        {
            "1.bin": b"\x00{not json\n",
            "2.bin": json.dumps({"name": "2.bin", "size": 66, "sha256": "zz" * 32}).encode() + b"\n",
            "5.bin": b'{"name": "5.bin", "si',  # the last line, cut by a crash
        },
    )

    with caplog.at_level(logging.WARNING):
        second = cache.ensure(str(source), "d")

    assert sorted(second.downloaded) == ["1.bin", "2.bin", "5.bin"]
    assert sorted(second.unchanged) == ["0.bin", "3.bin", "4.bin"]
    assert "line 3 of manifest journal" in caplog.text and "entry for '2.bin'" in caplog.text
    assert not (first.path / JOURNAL).exists()
    manifest = cache.manifest("d")
    assert manifest is not None and sorted(manifest.files) == [f"{i}.bin" for i in range(6)]
    for i in range(6):
        assert manifest.files[f"{i}.bin"].sha256 == hashlib.sha256((source / f"{i}.bin").read_bytes()).hexdigest()


def test_a_journal_of_another_source_is_not_taken_for_this_one(cache: DatasetCache, tmp_path: Path) -> None:
    one, other = tmp_path / "one", tmp_path / "other"
    for folder in (one, other):
        folder.mkdir()
        (folder / "a.bin").write_bytes(os.urandom(32))
    cache.ensure(str(one), "d")
    as_killed_sync(cache.path("d"), {})
    manifest = cache.manifest("d")
    assert manifest is not None and manifest.source.endswith("/one")

    result = cache.ensure(str(other), "d")

    assert result.downloaded == ["a.bin"] and result.unchanged == []
    assert (result.path / "a.bin").read_bytes() == (other / "a.bin").read_bytes()


def test_image_folder_keeps_its_descriptor_and_a_manifest_in_the_earlier_layout_is_read(
    cache: DatasetCache, tmp_path: Path
) -> None:
    source = write_colour_folders(tmp_path / "src", per_class=(6, 2))
    first = cache.ensure(str(source), "img")
    assert first.descriptor is not None
    manifest_path = first.path / "manifest.json"
    raw = json.loads(manifest_path.read_text())
    # The source digest as the code before the journal made it: one text of every name and sha256.
    text = "\n".join(f"{n}\0{e['sha256']}" for n, e in sorted(raw["files"].items())) + "\n" + FormatOptions().key()
    assert first.descriptor.source_digest == hashlib.sha256(text.encode()).hexdigest()
    manifest_path.write_text(json.dumps(raw, indent=2, sort_keys=True))  # the earlier layout, an entry over lines

    second = cache.ensure(str(source), "img")

    assert second.downloaded == [] and len(second.unchanged) == len(raw["files"])
    assert second.descriptor == first.descriptor
