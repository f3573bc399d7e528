import pytest

from trainflow.storage import StorageError, canonical_url, join_url, parse_url


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("s3:/bucket/x", "malformed URL"),
        ("s3://", "no bucket"),
        ("https:///path", "no host"),
        ("ftp://host/x", "unsupported URL scheme 'ftp://'"),
        ("file://host/x", "file URL has no host"),
        ("", "empty URL"),
    ],
)
def test_malformed_urls_are_refused_with_the_forms_we_accept(url: str, message: str) -> None:
    with pytest.raises(StorageError, match=message) as err:
        parse_url(url)
    assert "s3://BUCKET/PREFIX" in str(err.value) or "file:///PATH" in str(err.value)


def test_s3_url_splits_into_bucket_and_prefix() -> None:
    loc = parse_url("s3://mybucket/data/mnist/")
    assert (loc.scheme, loc.netloc, loc.path) == ("s3", "mybucket", "data/mnist/")


def test_relative_path_becomes_absolute_in_state(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert canonical_url("data/x") == str(tmp_path / "data" / "x")
    assert canonical_url("s3://b/k") == "s3://b/k"


def test_join_url_uses_single_slashes() -> None:
    assert join_url("s3://b/models/", "unfinished", "job/") == "s3://b/models/unfinished/job"
    assert join_url("/tmp/x", "") == "/tmp/x"
