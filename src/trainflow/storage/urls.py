"""Parse and join the URLs trainflow accepts: local paths, file://, s3:// and http(s)://."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from trainflow.storage.errors import StorageError

SCHEMES = ("file", "s3", "http", "https")
_HELP = "use s3://BUCKET/PREFIX, http(s)://HOST/PATH, file:///PATH or a local path"


@dataclass(frozen=True)
class Location:
    """A parsed URL: `scheme` is one of SCHEMES; for s3 `netloc` is the bucket, `path` the key prefix."""

    scheme: str
    netloc: str
    path: str
    url: str

    @property
    def local_path(self) -> Path:
        return Path(self.path)


def parse_url(url: str | os.PathLike[str]) -> Location:
    """Parse a URL or a local path; raise StorageError naming the URL if it is malformed."""
    text = os.fspath(url).strip()
    if not text:
        raise StorageError(f"empty URL: {_HELP}")
    if "://" not in text:
        if ":" in text.split("/", 1)[0] and not os.path.exists(text):
            raise StorageError(f"malformed URL '{text}': {_HELP}")
        path = Path(text).expanduser().absolute()
        return Location("file", "", str(path), text)
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise StorageError(f"unsupported URL scheme '{scheme}://' in '{text}': {_HELP}")
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise StorageError(f"malformed URL '{text}': a file URL has no host; write file:///PATH")
        return Location("file", "", str(Path(parts.path).expanduser()), text)
    if not parts.netloc:
        what = "bucket" if scheme == "s3" else "host"
        raise StorageError(f"malformed URL '{text}': no {what} after {scheme}://; {_HELP}")
    if scheme == "s3":
        return Location("s3", parts.netloc, parts.path.lstrip("/"), text)
    return Location(scheme, parts.netloc, parts.path, text)


def join_url(base: str, *parts: str) -> str:
    """Join path parts onto a URL or local path with single slashes; keeps a trailing slash off."""
    cleaned = [p.strip("/") for p in parts if p and p.strip("/")]
    head = os.fspath(base).rstrip("/")
    return "/".join([head, *cleaned]) if cleaned else head


def is_local(url: str) -> bool:
    """True when the URL is a local path or a file:// URL."""
    return parse_url(url).scheme == "file"


def local_path_of(url: str | os.PathLike[str]) -> Path | None:
    """The file or folder on this machine that `url` names (a path or file://); None for a remote store.

    Raises StorageError for text that is not a URL trainflow takes.
    """
    loc = parse_url(url)
    return loc.local_path if loc.scheme == "file" else None


def is_shared(url: str | os.PathLike[str]) -> bool:
    """True for a store every machine reads and writes alike (s3://); not a path, file:// or read-only http(s)://."""
    try:
        return parse_url(url).scheme == "s3"
    except StorageError:
        return False


def canonical_url(url: str | os.PathLike[str]) -> str:
    """The URL as state should record it: local paths made absolute, others unchanged."""
    loc = parse_url(url)
    return str(loc.local_path) if loc.scheme == "file" else loc.url
