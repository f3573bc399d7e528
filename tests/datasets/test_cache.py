"""The dataset cache: fetch once, reuse, repair, share between processes, survive an outage."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

from trainflow.datasets import ALL_FILES, DatasetCache, DatasetError, load_split
from trainflow.storage import SourceUnreachable, StorageOptions


def test_first_sync_fetches_everything_and_records_checksums(
    cache: DatasetCache, mnist_s3_url: str, mnist_dir: Path
) -> None:
    result = cache.ensure(mnist_s3_url, "mnist")
    assert sorted(result.downloaded) == sorted(ALL_FILES)
    assert result.bytes_downloaded == sum((mnist_dir / n).stat().st_size for n in ALL_FILES)
    manifest = json.loads((result.path / "manifest.json").read_text())
    assert manifest["source"] == mnist_s3_url
    import hashlib

    for name in ALL_FILES:
        entry = manifest["files"][name]
        assert entry["sha256"] == hashlib.sha256((mnist_dir / name).read_bytes()).hexdigest()
        assert entry["etag"] and entry["fetched_at"] > 0


def test_unchanged_source_downloads_nothing(cache: DatasetCache, mnist_s3_url: str) -> None:
    first = cache.ensure(mnist_s3_url, "mnist")
    second = cache.ensure(mnist_s3_url, "mnist")
    assert second.bytes_downloaded == 0 and second.downloaded == []
    assert second.bytes_saved == first.bytes_downloaded
    assert cache.manifest("mnist").stats.bytes_saved == first.bytes_downloaded


def test_one_changed_object_is_the_only_one_fetched(
    cache: DatasetCache, mnist_s3_url: str, aws_env: str, mnist_dir: Path
) -> None:
    cache.ensure(mnist_s3_url, "mnist")
    bucket, prefix = mnist_s3_url[5:].split("/", 1)
    labels = gzip.decompress((mnist_dir / "t10k-labels-idx1-ubyte.gz").read_bytes())
    changed = gzip.compress(labels[:-1] + bytes([(labels[-1] + 1) % 10]))  # one test label differs
    boto3.client("s3", endpoint_url=aws_env).put_object(
        Bucket=bucket, Key=f"{prefix}t10k-labels-idx1-ubyte.gz", Body=changed
    )
    result = cache.ensure(mnist_s3_url, "mnist")
    assert result.downloaded == ["t10k-labels-idx1-ubyte.gz"]
    assert result.bytes_downloaded == len(changed)
    assert (result.path / "t10k-labels-idx1-ubyte.gz").read_bytes() == changed


@pytest.mark.parametrize("damage", ["truncate", "flip-byte"])
def test_damaged_cached_file_is_detected_and_fetched_again(
    cache: DatasetCache, mnist_s3_url: str, mnist_dir: Path, damage: str
) -> None:
    path = cache.ensure(mnist_s3_url, "mnist").path / "train-images-idx3-ubyte.gz"
    data = path.read_bytes()
    path.write_bytes(data[:100] if damage == "truncate" else data[:-1] + bytes([data[-1] ^ 0xFF]))
    result = cache.ensure(mnist_s3_url, "mnist")
    assert result.repaired == ["train-images-idx3-ubyte.gz"] == result.downloaded
    assert path.read_bytes() == (mnist_dir / "train-images-idx3-ubyte.gz").read_bytes()


def test_silent_corruption_with_preserved_mtime_needs_verify(cache: DatasetCache, mnist_s3_url: str) -> None:
    path = cache.ensure(mnist_s3_url, "mnist").path / "train-labels-idx1-ubyte.gz"
    st = path.stat()
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # bit rot: same size, same mtime
    assert cache.ensure(mnist_s3_url, "mnist").downloaded == []  # the stat fast path trusts it
    assert cache.ensure(mnist_s3_url, "mnist", verify=True).repaired == ["train-labels-idx1-ubyte.gz"]


def test_object_removed_at_source_is_removed_from_cache(cache: DatasetCache, tmp_path: Path, mnist_dir: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for name in ALL_FILES:
        (src / name).write_bytes((mnist_dir / name).read_bytes())
    (src / "extra.txt").write_text("x")
    cache.ensure(str(src), "d")
    (src / "extra.txt").unlink()
    result = cache.ensure(str(src), "d")
    assert result.removed == ["extra.txt"] and not (result.path / "extra.txt").exists()


def test_unreachable_source_uses_complete_cache_with_warning(cache: DatasetCache, mnist_s3_url: str, caplog) -> None:
    cache.ensure(mnist_s3_url, "mnist")
    from servers import free_port

    offline = DatasetCache(
        cache.root, StorageOptions(endpoint_url=f"http://127.0.0.1:{free_port()}", max_attempts=1, connect_timeout=1)
    )
    result = offline.ensure(mnist_s3_url, "mnist")
    assert result.offline and result.bytes_downloaded == 0 and sorted(result.unchanged) == sorted(ALL_FILES)
    assert "using the cached copy" in caplog.text


def test_unreachable_source_with_incomplete_cache_fails(cache: DatasetCache, mnist_s3_url: str) -> None:
    path = cache.ensure(mnist_s3_url, "mnist").path
    (path / "train-labels-idx1-ubyte.gz").unlink()
    from servers import free_port

    offline = DatasetCache(
        cache.root, StorageOptions(endpoint_url=f"http://127.0.0.1:{free_port()}", max_attempts=1, connect_timeout=1)
    )
    with pytest.raises(SourceUnreachable):
        offline.ensure(mnist_s3_url, "mnist")


def test_download_cut_short_leaves_no_partial_file(cache: DatasetCache, http_server, mnist_dir: Path) -> None:
    base, root, faults = http_server
    for name in ALL_FILES:
        (root / name).write_bytes((mnist_dir / name).read_bytes())
    faults.cut_short.add("/train-images-idx3-ubyte.gz")
    cache.options = StorageOptions(max_attempts=1)
    with pytest.raises(SourceUnreachable):
        cache.ensure(base, "mnist", ALL_FILES)
    leftovers = sorted(p.name for p in (cache.root / "mnist").iterdir())
    assert "train-images-idx3-ubyte.gz" not in leftovers
    assert not [n for n in leftovers if n.endswith(".part")]
    faults.cut_short.clear()
    result = cache.ensure(base, "mnist", ALL_FILES)
    assert result.downloaded == ["train-images-idx3-ubyte.gz"]  # the others survived the failed run
    assert len(load_split(result.path, "train")) > 0


def test_http_source_needs_file_names(cache: DatasetCache, http_server) -> None:
    with pytest.raises(Exception, match="needs the file names"):
        cache.ensure(http_server[0], "x")


def test_empty_source_is_an_error(cache: DatasetCache, s3_bucket: str) -> None:
    with pytest.raises(DatasetError, match="no files at"):
        cache.ensure(f"{s3_bucket}/nothing/", "x")


def test_invalid_dataset_name_is_refused(cache: DatasetCache, mnist_dir: Path) -> None:
    with pytest.raises(DatasetError, match="invalid dataset name"):
        cache.ensure(str(mnist_dir), "../escape")


def test_two_processes_share_one_download(mnist_s3_url: str, trainflow_home: Path) -> None:
    code = (
        "import json, sys; from trainflow.datasets import DatasetCache; from pathlib import Path;"
        "r = DatasetCache(Path(sys.argv[1])).ensure(sys.argv[2], 'mnist');"
        "print(json.dumps({'downloaded': r.bytes_downloaded, 'files': len(r.downloaded) + len(r.unchanged)}))"
    )
    root = str(trainflow_home / "cache" / "datasets")
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, root, mnist_s3_url], stdout=subprocess.PIPE, env=os.environ.copy()
        )
        for _ in range(2)
    ]
    results = [json.loads(p.communicate(timeout=60)[0]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert all(r["files"] == 4 for r in results)
    assert sorted(r["downloaded"] > 0 for r in results) == [False, True]  # exactly one downloaded
