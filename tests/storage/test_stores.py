"""One suite every store passes (local path, file://, S3), plus what is special to each."""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

import pytest

from trainflow.storage import ObjectNotFound, SourceUnreachable, StorageError, StorageOptions, open_store


def test_written_object_reads_back_whole(store_url: str) -> None:
    store = open_store(store_url)
    store.ensure_container()
    store.write_bytes("a/b/model.bin", b"x" * 1000)
    assert store.read_bytes("a/b/model.bin") == b"x" * 1000
    store.write_bytes("a/b/model.bin", b"new")
    assert store.read_bytes("a/b/model.bin") == b"new"


def test_list_is_recursive_with_sizes(store_url: str) -> None:
    store = open_store(store_url)
    store.ensure_container()
    store.write_bytes("one.txt", b"1")
    store.write_bytes("dir/two.txt", b"22")
    listed = {o.name: o.size for o in store.list()}
    assert listed == {"one.txt": 1, "dir/two.txt": 2}
    assert [o.name for o in store.list(["dir/two.txt"])] == ["dir/two.txt"]


def test_a_listing_longer_than_a_page_comes_in_pages_that_make_the_whole_list(store_url: str) -> None:
    store = open_store(store_url)
    store.ensure_container()
    for i in range(1001):
        store.write_bytes(f"p/{i:04d}.bin", b"x")
    pages = list(store.pages())
    assert len(pages) == 2 and all(len(page) <= 1000 for page in pages)
    assert [o.name for page in pages for o in page] == [o.name for o in store.list()]


def test_missing_object_is_not_found_naming_the_url(store_url: str) -> None:
    store = open_store(store_url)
    store.ensure_container()
    with pytest.raises(ObjectNotFound, match="nope.bin"):
        store.stat("nope.bin")
    with pytest.raises(ObjectNotFound, match="nope.bin"):
        store.read_bytes("nope.bin")
    assert not store.exists("nope.bin")


def test_upload_download_and_delete(store_url: str, tmp_path: Path) -> None:
    store = open_store(store_url)
    store.ensure_container()
    src = tmp_path / "src.bin"
    src.write_bytes(bytes(range(256)) * 100)
    seen: list[int] = []
    store.upload(src, "up/src.bin")
    store.download("up/src.bin", tmp_path / "back.bin", seen.append)
    assert (tmp_path / "back.bin").read_bytes() == src.read_bytes()
    assert sum(seen) == src.stat().st_size
    store.delete("up/src.bin")
    assert not store.exists("up/src.bin")
    store.delete("up/src.bin")  # already gone: no error


def test_download_returns_the_sha256_of_the_bytes_it_wrote(store_url: str, tmp_path: Path) -> None:
    store = open_store(store_url)
    store.ensure_container()
    data = os.urandom(3 << 20)
    store.write_bytes("blob.bin", data)
    assert store.download("blob.bin", tmp_path / "blob.bin") == hashlib.sha256(data).hexdigest()
    assert (tmp_path / "blob.bin").read_bytes() == data


def test_s3_large_object_comes_in_ranged_parts_hashed_in_order(
    s3_bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import boto3.s3.transfer

    from trainflow.storage import s3

    monkeypatch.setattr(s3, "_STREAM_LIMIT", 1 << 20)
    ranged: list[object] = []
    real = boto3.s3.transfer.TransferManager.download
    monkeypatch.setattr(
        boto3.s3.transfer.TransferManager, "download", lambda self, *a, **k: ranged.append(a) or real(self, *a, **k)
    )
    store = open_store(f"{s3_bucket}/big")
    data = os.urandom(20 << 20)  # three 8 MiB parts, which arrive in any order
    store.write_bytes("big.bin", data)
    seen: list[int] = []
    digest = store.download("big.bin", tmp_path / "big.bin", seen.append)
    assert ranged, "the ranged path was not taken"
    assert digest == hashlib.sha256(data).hexdigest() and (tmp_path / "big.bin").read_bytes() == data
    assert sum(seen) == len(data)


def test_http_download_returns_the_sha256(http_server, tmp_path: Path) -> None:
    base, root, _ = http_server
    data = os.urandom(1 << 20)
    (root / "f.bin").write_bytes(data)
    assert open_store(base).download("f.bin", tmp_path / "f.bin") == hashlib.sha256(data).hexdigest()


def test_local_store_lists_no_pipes(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")  # reading it would block a sync forever
    (tmp_path / "f.bin").write_bytes(b"x")
    assert [o.name for o in open_store(tmp_path).list()] == ["f.bin"]


def test_local_store_hides_writers_temp_files(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    (tmp_path / ".half.tmp").write_bytes(b"partial")
    store.write_bytes("whole.bin", b"ok")
    assert [o.name for o in store.list()] == ["whole.bin"]


def test_a_local_listing_leaves_out_what_is_removed_while_its_pages_are_read(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    for i in range(1500):  # one folder longer than a page
        store.write_bytes(f"a/{i:04d}.bin", b"x")
    store.write_bytes("b/c/kept.bin", b"x")
    store.write_bytes("z/gone.bin", b"x")
    pages = store.pages()
    first = next(pages)  # a sync plans this page before it reads the next
    (tmp_path / "a" / "1499.bin").unlink()
    (tmp_path / "z" / "gone.bin").unlink()
    (tmp_path / "z").rmdir()
    rest = [o.name for page in pages for o in page]
    assert len(first) == 1000 and rest[-2:] == ["a/1498.bin", "b/c/kept.bin"]


def test_s3_missing_bucket_names_bucket_and_fix(aws_env: str) -> None:
    with pytest.raises(ObjectNotFound, match=r"bucket 'no-such-bucket-x' does not exist.*create it"):
        open_store("s3://no-such-bucket-x/data/").list()
    with pytest.raises(ObjectNotFound, match=r"bucket 'no-such-bucket-x' does not exist.*create it"):
        next(open_store("s3://no-such-bucket-x/data/").pages())


def test_s3_without_credentials_says_which_variables(
    aws_env: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(StorageError, match="no AWS credentials for s3://bucket/x.*AWS_ACCESS_KEY_ID"):
        open_store("s3://bucket/x").list()


def test_s3_wrong_credentials_are_access_denied(monkeypatch: pytest.MonkeyPatch) -> None:
    from servers import AWS_TEST_ENV, start_moto, stop

    proc, endpoint = start_moto({"INITIAL_NO_AUTH_ACTION_COUNT": "0"})  # a server that checks keys
    try:
        for key, value in AWS_TEST_ENV.items():
            monkeypatch.setenv(key, value)
        with pytest.raises(StorageError, match=r"access denied to s3://bucket/data.*credentials"):
            open_store("s3://bucket/data", StorageOptions(endpoint_url=endpoint)).list()
    finally:
        stop(proc)


def test_unreachable_s3_endpoint_is_transient(aws_env: str) -> None:
    from servers import free_port

    options = StorageOptions(endpoint_url=f"http://127.0.0.1:{free_port()}", max_attempts=2, connect_timeout=1)
    with pytest.raises(SourceUnreachable, match="cannot reach S3 endpoint") as err:
        open_store("s3://bucket/data", options).list()
    assert err.value.exit_code >= 128


def test_http_lists_named_files_with_sizes(http_server) -> None:
    base, root, _ = http_server
    (root / "a.gz").write_bytes(b"a" * 10)
    infos = open_store(base).list(["a.gz"])
    assert infos[0].size == 10 and infos[0].mtime is not None


def test_http_cannot_list_without_names(http_server) -> None:
    with pytest.raises(StorageError, match="needs the file names"):
        open_store(http_server[0]).list()


def test_http_retries_transient_503(http_server, tmp_path: Path) -> None:
    base, root, faults = http_server
    (root / "f.bin").write_bytes(b"payload")
    faults.fail_first["/f.bin"] = 2
    open_store(base).download("f.bin", tmp_path / "f.bin")
    assert (tmp_path / "f.bin").read_bytes() == b"payload"
    assert len([r for r in faults.requests if r[1] == "/f.bin"]) == 3


def test_http_persistent_5xx_is_unreachable(http_server) -> None:
    base, root, faults = http_server
    (root / "f.bin").write_bytes(b"payload")
    faults.always_fail.add("/f.bin")
    with pytest.raises(SourceUnreachable, match="f.bin"):
        open_store(base, StorageOptions(max_attempts=2)).read_bytes("f.bin")


def test_http_404_is_not_found_and_is_read_only(http_server) -> None:
    store = open_store(http_server[0])
    with pytest.raises(ObjectNotFound, match="404"):
        store.stat("missing.gz")
    with pytest.raises(StorageError, match="read-only"):
        store.write_bytes("x", b"")


def test_a_local_download_in_a_forked_child_leaves_the_parents_download_whole(tmp_path: Path) -> None:
    """The copy buffer is the process's own: a child forked after a download copies without writing into it."""
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.bin").write_bytes(b"a" * (1 << 20))
    (tmp_path / "src" / "b.bin").write_bytes(b"b" * (1 << 20))
    store = open_store(str(tmp_path / "src"))
    store.download("a.bin", tmp_path / "first.bin")  # this thread's buffer now exists
    go_read, go_write = os.pipe()
    child = os.fork()
    if child == 0:  # the child copies b.bin once the parent's copy of a.bin is under way
        try:
            os.read(go_read, 1)
            store.download("b.bin", tmp_path / "child.bin")
        finally:
            os._exit(0)
    fifo = tmp_path / "slow"  # a reader that stops part way holds the parent's copy in the middle of its chunk
    os.mkfifo(fifo)
    received: list[bytes] = []

    def read_slowly() -> None:
        with open(fifo, "rb") as inp:
            received.append(inp.read(1 << 16))
            os.write(go_write, b"x")
            os.waitpid(child, 0)
            received.append(inp.read())

    reader = threading.Thread(target=read_slowly)
    reader.start()
    digest = store.download("a.bin", fifo)
    reader.join()
    assert b"".join(received) == b"a" * (1 << 20) and digest == hashlib.sha256(b"a" * (1 << 20)).hexdigest()
