"""Read-only http(s) sources: a base URL plus the file names of the dataset (the MNIST mirror layout)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from email.utils import parsedate_to_datetime
from pathlib import Path

import urllib3
from urllib3.util import Retry, Timeout

from trainflow.storage.base import HashingWriter, ObjectInfo, ProgressCallback, StorageOptions, Store, _no_progress
from trainflow.storage.errors import ObjectNotFound, SourceUnreachable, StorageError

_CHUNK = 1 << 16


class HttpStore(Store):
    """Files under an http(s) base URL; listing needs the names, since HTTP cannot list a directory."""

    def __init__(self, url: str, options: StorageOptions) -> None:
        super().__init__(url)
        self.options = options
        retries = Retry(
            total=options.max_attempts - 1,
            backoff_factor=0.25,
            status_forcelist=(429, 500, 502, 503, 504),
            allowed_methods=("GET", "HEAD"),
            raise_on_status=False,
        )
        timeout = Timeout(connect=options.connect_timeout, read=options.read_timeout)
        self._pool = urllib3.PoolManager(retries=retries, timeout=timeout, maxsize=8)

    def _request(self, method: str, name: str, **kwargs: object) -> urllib3.BaseHTTPResponse:
        url = self.object_url(name)
        try:
            response = self._pool.request(method, url, **kwargs)  # type: ignore[arg-type]
        except urllib3.exceptions.MaxRetryError as exc:
            raise SourceUnreachable(
                f"cannot reach {url} after {self.options.max_attempts} attempts ({type(exc.reason).__name__}): "
                "check the URL and the network"
            ) from None
        except urllib3.exceptions.HTTPError as exc:
            raise SourceUnreachable(f"request for {url} failed ({exc}): check the URL and the network") from None
        if response.status == 404:
            response.drain_conn()
            raise ObjectNotFound(f"no file at {url} (HTTP 404): check the base URL and the file names")
        if response.status in (401, 403):
            response.drain_conn()
            raise StorageError(f"access denied to {url} (HTTP {response.status}): the server needs credentials")
        if response.status >= 500:
            response.drain_conn()
            raise SourceUnreachable(f"{url} answered HTTP {response.status} after retries: try again later")
        if response.status >= 400:
            response.drain_conn()
            raise StorageError(f"{url} answered HTTP {response.status}: check the URL")
        return response

    @property
    def listable(self) -> bool:
        return False

    def list(self, names: Sequence[str] | None = None) -> list[ObjectInfo]:
        if names is None:
            raise StorageError(f"cannot list {self.url}: an http(s) source needs the file names of the dataset")
        return [self.stat(n) for n in names]

    def stat(self, name: str) -> ObjectInfo:
        response = self._request("HEAD", name)
        headers = response.headers
        mtime = None
        if headers.get("Last-Modified"):
            try:
                mtime = parsedate_to_datetime(headers["Last-Modified"]).timestamp()
            except (TypeError, ValueError):
                mtime = None
        etag = headers.get("ETag", "").strip('"').removeprefix('W/"') or None
        length = headers.get("Content-Length", "")
        return ObjectInfo(name, int(length) if length.isascii() and length.isdigit() else -1, etag, mtime)

    def download(self, name: str, dest: Path, progress: ProgressCallback = _no_progress) -> str:
        response = self._request("GET", name, preload_content=False)
        try:
            with open(dest, "wb") as out:
                writer = HashingWriter(out)
                for chunk in response.stream(_CHUNK):
                    writer.write(chunk)
                    progress(len(chunk))
        except urllib3.exceptions.HTTPError as exc:
            raise SourceUnreachable(f"download of {self.object_url(name)} broke off ({exc}): try again") from None
        finally:
            response.release_conn()
        return writer.hexdigest()

    def read_bytes(self, name: str) -> bytes:
        return self._request("GET", name).data

    def _read_only(self, name: str) -> StorageError:
        return StorageError(f"cannot write {self.object_url(name)}: http(s) sources are read-only; use s3:// or a path")

    def write_bytes(self, name: str, data: bytes) -> None:
        raise self._read_only(name)

    def upload(self, src: Path, name: str, progress: ProgressCallback = _no_progress) -> None:
        raise self._read_only(name)

    def delete(self, name: str) -> None:
        raise self._read_only(name)

    def publish(self, name: str, files: Mapping[str, bytes], marker: str) -> None:
        raise self._read_only(name)
