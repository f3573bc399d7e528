"""Hostile object keys, manifests and links cannot make the dataset cache touch anything outside it.

Issue 10, defect 1: an S3 key `evil/../../../tmp/escape/dotdot.txt` was written outside the cache,
and deleting it and syncing again unlinked whatever was at that outside path. Every case here is a
real S3 endpoint (moto) or a real directory, and asserts on the files a user would find afterwards.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import boto3
import pytest

from trainflow.datasets import DatasetCache, DatasetError

DEEP = "../" * 30  # more than any path has levels: resolves to /


@pytest.fixture
def s3(aws_env: str):
    return boto3.client("s3", endpoint_url=aws_env, region_name="us-east-1")


def put(s3, url: str, key: str, body: bytes = b"data") -> None:
    bucket, prefix = url[5:].split("/", 1)
    s3.put_object(Bucket=bucket, Key=f"{prefix}{key}", Body=body)


def delete(s3, url: str, key: str) -> None:
    bucket, prefix = url[5:].split("/", 1)
    s3.delete_object(Bucket=bucket, Key=f"{prefix}{key}")


def files_under(path: Path) -> list[str]:
    return sorted(p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file() or p.is_symlink())


def test_dotdot_key_creates_nothing_outside_and_keeps_the_good_cache(
    cache: DatasetCache, s3, s3_bucket: str, tmp_path: Path
) -> None:
    url = f"{s3_bucket}/evil/"
    put(s3, url, "ok.txt", b"ok")
    first = cache.ensure(url, "evil")
    escape = tmp_path / "escape" / "dotdot.txt"
    bad_key = DEEP + escape.as_posix().lstrip("/")
    put(s3, url, bad_key, b"pwned")
    before = files_under(first.path)

    with pytest.raises(DatasetError) as refused:
        cache.ensure(url, "evil")

    message = str(refused.value)
    assert "\n" not in message and bad_key in message and "'evil'" in message and "'..'" in message
    assert not escape.exists() and not escape.parent.exists()
    assert files_under(first.path) == before  # nothing half-written, nothing lost
    assert (first.path / "ok.txt").read_bytes() == b"ok"
    assert list(cache.manifest("evil").files) == ["ok.txt"]


def test_deleting_a_dotdot_key_and_syncing_again_unlinks_nothing_outside(
    cache: DatasetCache, s3, s3_bucket: str, tmp_path: Path
) -> None:
    url = f"{s3_bucket}/evil/"
    victim = tmp_path / "victim" / "precious.txt"
    bad_key = DEEP + victim.as_posix().lstrip("/")
    put(s3, url, "ok.txt", b"ok")
    put(s3, url, bad_key, b"x")
    with pytest.raises(DatasetError):
        cache.ensure(url, "evil")
    victim.parent.mkdir()
    victim.write_text("keep me")
    delete(s3, url, bad_key)

    result = cache.ensure(url, "evil")

    assert victim.read_text() == "keep me"
    assert result.downloaded == ["ok.txt"] and result.removed == []


def test_new_dataset_refused_leaves_no_directory(cache: DatasetCache, s3, s3_bucket: str) -> None:
    url = f"{s3_bucket}/fresh/"
    put(s3, url, "ok.txt")
    put(s3, url, "../sibling.txt")
    with pytest.raises(DatasetError, match="sibling.txt"):
        cache.ensure(url, "fresh")
    assert not cache.path("fresh").exists() and cache.names() == []


@pytest.mark.parametrize(
    ("key", "why"),
    [
        ("/abs.txt", "absolute path"),  # the key is PREFIX//abs.txt
        ("a//b.txt", "empty path segment"),
        ("a/./b.txt", "'.' path segment"),
        ("./a.txt", "'.' path segment"),
        ("a\\..\\..\\b.txt", "backslash"),
        ("a\x00b.txt", "U+0000"),
        ("\x1b[2Jclear.txt", "U+001B"),
        ("report\u202etxt.exe", "U+202E"),
        ("\uff0e\uff0e/\uff0e\uff0e/x.txt", "once Unicode-normalised"),
        ("k" * 300, "longer than 255 bytes"),
        ("manifest.json", "the cache's own index"),
    ],
)
def test_unsafe_keys_are_refused_with_one_line_naming_them(
    cache: DatasetCache, s3, s3_bucket: str, key: str, why: str
) -> None:
    url = f"{s3_bucket}/d/"
    put(s3, url, "ok.txt", b"ok")
    cache.ensure(url, "d")
    put(s3, url, key)

    with pytest.raises(DatasetError) as refused:
        cache.ensure(url, "d")

    message = str(refused.value)
    assert "\n" not in message and why in message and "dataset 'd'" in message
    assert repr(f"{url}{key}")[1:40] in message  # the key, with escapes made visible
    assert files_under(cache.path("d")) == ["manifest.json", "ok.txt"]
    assert json.loads((cache.path("d") / "manifest.json").read_text())["files"].keys() == {"ok.txt"}


@pytest.mark.parametrize(
    ("keys", "clashing"),
    [
        (["x", "x/y"], "x"),  # a file and a folder of the same path
        (["caf\u00e9.txt", "cafe\u0301.txt"], "caf\u00e9.txt"),  # equal once Unicode-normalised (NFC)
    ],
)
def test_keys_that_would_be_one_path_in_the_cache_are_refused(
    cache: DatasetCache, s3, s3_bucket: str, keys: list[str], clashing: str
) -> None:
    url = f"{s3_bucket}/clash/"
    for key in keys:
        put(s3, url, key)
    with pytest.raises(DatasetError, match=clashing):
        cache.ensure(url, "clash")
    assert not cache.path("clash").exists()


def test_a_clash_on_a_late_page_of_a_listing_is_refused_before_anything_changes(
    cache: DatasetCache, tmp_path: Path
) -> None:
    source = tmp_path / "many"
    (source / "a").mkdir(parents=True)
    for i in range(1500):  # more than one page of the listing
        (source / "a" / f"{i:04d}.bin").write_bytes(b"x")
    cache.ensure(str(source), "many")
    (source / "a" / "0000.bin").unlink()  # a stale file a sync would drop
    (source / "z").mkdir()
    (source / "z" / "caf\u00e9.txt").write_bytes(b"1")
    (source / "z" / "cafe\u0301.txt").write_bytes(b"2")
    with pytest.raises(DatasetError, match="once Unicode-normalised"):
        cache.ensure(str(source), "many")
    assert (cache.path("many") / "a" / "0000.bin").is_file()
    assert not (cache.path("many") / "z").exists()
    with pytest.raises(DatasetError, match="once Unicode-normalised"):
        cache.ensure(str(source), "fresh")
    assert not cache.path("fresh").exists()


def test_a_file_can_replace_a_folder_between_syncs(cache: DatasetCache, s3, s3_bucket: str) -> None:
    url = f"{s3_bucket}/shape/"
    put(s3, url, "x/y", b"in a folder")
    cache.ensure(url, "shape")
    delete(s3, url, "x/y")
    put(s3, url, "x", b"a file now")
    result = cache.ensure(url, "shape")
    assert result.removed == ["x/y"] and (result.path / "x").read_bytes() == b"a file now"


def test_hidden_objects_are_left_out_like_local_sources_do(cache: DatasetCache, s3, s3_bucket: str) -> None:
    url = f"{s3_bucket}/hidden/"
    for key in ("ok.txt", ".DS_Store", "sub/.keep", ".unpacked/planted", ".x.part"):
        put(s3, url, key)
    result = cache.ensure(url, "hidden")
    assert result.downloaded == ["ok.txt"]
    assert files_under(result.path) == ["manifest.json", "ok.txt"]


def test_very_long_valid_key_is_cached(cache: DatasetCache, s3, s3_bucket: str) -> None:
    url = f"{s3_bucket}/long/"
    key = "/".join(["d" * 200] * 4) + "/" + "f" * 200  # 1004 bytes: S3 allows 1024 for the whole key
    put(s3, url, key, b"deep")
    result = cache.ensure(url, "long")
    assert (result.path / key).read_bytes() == b"deep"


def test_symlinked_folder_in_the_cache_is_refused_before_writing_through_it(
    cache: DatasetCache, s3, s3_bucket: str, tmp_path: Path
) -> None:
    url = f"{s3_bucket}/links/"
    put(s3, url, "sub/a.txt", b"a")
    path = cache.ensure(url, "links").path
    outside = tmp_path / "outside"
    outside.mkdir()
    (path / "sub" / "a.txt").unlink()
    (path / "sub").rmdir()
    (path / "sub").symlink_to(outside)
    put(s3, url, "sub/b.txt", b"b")

    with pytest.raises(DatasetError, match="symbolic link sub") as refused:
        cache.ensure(url, "links")

    assert "trainflow data rm links" in str(refused.value)
    assert list(outside.iterdir()) == []


def test_symlinked_file_in_the_cache_is_refused_and_its_target_untouched(
    cache: DatasetCache, s3, s3_bucket: str, tmp_path: Path
) -> None:
    url = f"{s3_bucket}/links/"
    put(s3, url, "a.txt", b"a")
    path = cache.ensure(url, "links").path
    target = tmp_path / "target.txt"
    target.write_text("not yours")
    (path / "a.txt").unlink()
    (path / "a.txt").symlink_to(target)
    put(s3, url, "a.txt", b"changed")
    with pytest.raises(DatasetError, match="symbolic link a.txt"):
        cache.ensure(url, "links")
    assert target.read_text() == "not yours"


def test_planted_unpacked_link_does_not_let_a_sync_delete_outside(
    cache: DatasetCache, s3, s3_bucket: str, tmp_path: Path
) -> None:
    url = f"{s3_bucket}/unpacked/"
    put(s3, url, "a.txt", b"a")
    path = cache.ensure(url, "unpacked").path
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.bin").write_text("keep")
    (path / ".unpacked").symlink_to(outside)
    with pytest.raises(DatasetError, match="symbolic link .unpacked"):
        cache.ensure(url, "unpacked")
    assert (outside / "keep.bin").read_text() == "keep"


def test_symlinked_dataset_directory_is_refused_and_rm_removes_only_the_link(
    cache: DatasetCache, mnist_dir: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("keep")
    cache.root.mkdir(parents=True)
    (cache.root / "linked").symlink_to(outside)
    with pytest.raises(DatasetError, match="is a symbolic link"):
        cache.ensure(str(mnist_dir), "linked")
    assert cache.remove("linked")
    assert (outside / "keep.txt").read_text() == "keep" and not (cache.root / "linked").exists()


def tampered(cache: DatasetCache, url: str, name: str, entry: str) -> Path:
    """A synced dataset whose manifest then gets an entry `entry` (as an older trainflow could write)."""
    path = cache.ensure(url, name).path
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["files"][entry] = dict(manifest["files"]["ok.txt"])
    (path / "manifest.json").write_text(json.dumps(manifest))
    return path


@pytest.mark.parametrize("entry", [f"{DEEP}VICTIM", "/VICTIM", "sub/../../../VICTIM", "ok.txt/../../VICTIM"])
def test_tampered_manifest_is_refused_before_any_file_operation(
    cache: DatasetCache, s3, s3_bucket: str, tmp_path: Path, entry: str
) -> None:
    url = f"{s3_bucket}/tamper/"
    put(s3, url, "ok.txt", b"ok")
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    entry = entry.replace("VICTIM", victim.as_posix().lstrip("/"))
    path = tampered(cache, url, "tamper", entry)
    (path / "sub").mkdir()

    with pytest.raises(DatasetError, match="altered outside trainflow") as refused:
        cache.ensure(url, "tamper")  # the entry is gone at the source: a stale file to delete

    assert "trainflow data rm tamper" in str(refused.value) and "\n" not in str(refused.value)
    assert victim.read_text() == "keep me"
    with pytest.raises(DatasetError, match="altered outside trainflow"):
        cache.manifest("tamper")
    assert cache.remove("tamper") and victim.read_text() == "keep me"


@pytest.mark.parametrize("name", ["../x", "/abs", "", "a/b", "x\n", "k" * 129, ".hidden", "-x", "..", "a\x00"])
def test_bad_dataset_names_are_refused_and_create_nothing(
    cache: DatasetCache, mnist_dir: Path, tmp_path: Path, name: str
) -> None:
    with pytest.raises(DatasetError, match="invalid dataset name"):
        cache.ensure(str(mnist_dir), name)
    assert not cache.root.exists() or os.listdir(cache.root) == []


@pytest.mark.parametrize(
    "source",
    [
        "s3://b/..",
        "s3://b/../../",
        "s3://b/_x/",
        "s3://b/.../",
        "http://h/%2e%2e/",
        "s3://b/" + "z" * 500,
        "s3://b/\u00e9t\u00e9/",
        "/",
        "s3://b/-/",
    ],
)
def test_names_derived_from_urls_are_always_valid(source: str) -> None:
    from trainflow.datasets import check_name, default_name

    assert check_name(default_name(source)) == default_name(source)


def test_local_source_with_a_control_character_in_a_file_name_is_refused(cache: DatasetCache, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "ok.txt").write_text("ok")
    (src / "bad\nname").write_text("x")
    with pytest.raises(DatasetError, match=r"U\+000A"):
        cache.ensure(str(src), "local")


def test_http_file_names_are_checked_before_any_request(cache: DatasetCache, http_server) -> None:
    base, _, faults = http_server
    with pytest.raises(DatasetError, match="'..' path segment"):
        cache.ensure(base, "web", ["ok.gz", "../../etc/passwd"])
    with pytest.raises(DatasetError, match="absolute path"):
        cache.ensure(base, "web", ["/etc/passwd"])
    assert faults.requests == []


def test_symlinked_lock_file_is_refused_in_one_line_and_its_target_untouched(
    cache: DatasetCache, mnist_dir: Path, tmp_path: Path
) -> None:
    target = tmp_path / "precious.txt"
    target.write_text("keep me")
    cache.root.mkdir(parents=True)
    (cache.root / ".mnist.lock").symlink_to(target)
    with pytest.raises(DatasetError, match="cannot lock dataset 'mnist'"):
        cache.ensure(str(mnist_dir), "mnist")
    assert target.read_text() == "keep me"


@pytest.mark.parametrize(
    ("where", "value"),
    [
        ("size", "2"),
        ("size", -1),
        ("sha256", None),
        ("fetched_at", 1e308),
        ("fetched_at", "yesterday"),
        ("etag", ["x"]),
        ("stats.syncs", "many"),
        ("stats.last_sync", float("nan")),
        ("created_at", -5),
    ],
)
def test_manifest_with_wrong_types_is_ignored_and_the_dataset_fetched_again(
    cache: DatasetCache, s3, s3_bucket: str, where: str, value: object
) -> None:
    url = f"{s3_bucket}/types/"
    put(s3, url, "ok.txt", b"ok")
    path = cache.ensure(url, "types").path
    manifest = json.loads((path / "manifest.json").read_text())
    section, _, key = where.rpartition(".")
    target = (
        manifest["stats"] if section == "stats" else manifest if key == "created_at" else manifest["files"]["ok.txt"]
    )
    target[key] = value
    (path / "manifest.json").write_text(json.dumps(manifest))
    assert cache.manifest("types") is None  # unreadable: describe says there is no dataset
    assert cache.ensure(url, "types").downloaded == ["ok.txt"]


def test_a_file_asked_for_twice_is_fetched_once(cache: DatasetCache, http_server) -> None:
    base, root, _ = http_server
    (root / "a.bin").write_bytes(b"a")
    result = cache.ensure(base, "twice", ["a.bin", "a.bin"])
    assert result.downloaded == ["a.bin"]
