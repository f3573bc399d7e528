"""The stores every storage test runs against."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(params=["path", "file-url", "s3"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A base URL on each kind of writable store: a local path, a file:// URL, a prefix in a real S3 bucket."""
    if request.param == "path":
        return str(tmp_path / "store")
    if request.param == "file-url":
        return f"file://{tmp_path / 'store'}"
    return request.getfixturevalue("s3_bucket") + "/some/prefix"
