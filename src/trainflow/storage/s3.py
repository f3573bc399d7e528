"""S3 and S3-compatible endpoints (MinIO, moto, Ceph) through boto3."""

from __future__ import annotations

import builtins
import io
import os
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from trainflow.storage.base import HashingWriter, ObjectInfo, ProgressCallback, StorageOptions, Store, _no_progress
from trainflow.storage.errors import ObjectNotFound, SourceUnreachable, StorageError
from trainflow.storage.names import name_problem

_CRED_FIX = "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_ENDPOINT_URL for a non-AWS endpoint)"
_DENIED = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403", "Forbidden"}
_MISSING = {"NoSuchKey", "404", "NotFound"}
_CHUNK = 1 << 20
_STREAM_LIMIT = 64 << 20  # one S3 connection is slow for big objects: above this, parallel ranged GETs


_CREDENTIAL_VARS = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_CONFIG_FILE",
)
_clients: dict[tuple[object, ...], Any] = {}
_clients_lock = threading.Lock()


def shared_client(options: StorageOptions) -> Any:
    """One client per options and credentials per process: building one costs ~0.1 s of JSON parsing."""
    key = (options, *(os.environ.get(v) for v in _CREDENTIAL_VARS))
    with _clients_lock:  # boto3 sessions are not safe to build clients from concurrently
        client = _clients.get(key)
        if client is None:
            client = _clients[key] = make_client(options)
    return client


def make_client(options: StorageOptions) -> Any:
    """A boto3 S3 client whose transient faults (5xx, throttling, timeouts, resets) are retried."""
    import boto3
    from botocore.config import Config

    config = Config(
        retries={"max_attempts": options.max_attempts, "mode": "standard"},
        connect_timeout=options.connect_timeout,
        read_timeout=options.read_timeout,
        s3={"addressing_style": "path"} if options.endpoint_url else {},
    )
    session = boto3.session.Session()
    region = options.region or session.region_name or "us-east-1"
    return session.client("s3", endpoint_url=options.endpoint_url, region_name=region, config=config)


class S3Store(Store):
    """Objects under `s3://bucket/prefix/`."""

    def __init__(self, url: str, bucket: str, prefix: str, options: StorageOptions, client: Any = None) -> None:
        super().__init__(url)
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.options = options
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = shared_client(self.options)
        return self._client

    def _key(self, name: str) -> str:
        return "/".join(p for p in (self.prefix, name.strip("/")) if p)

    def _fail(self, exc: BaseException, name: str = "") -> StorageError:
        """Translate a botocore exception into one line naming the URL and the fix."""
        from botocore import exceptions as bx

        url = self.object_url(name)
        endpoint = self.options.endpoint_url or "AWS S3"
        if isinstance(exc, bx.NoCredentialsError | bx.PartialCredentialsError):
            return StorageError(f"no AWS credentials for {url}: {_CRED_FIX}")
        if isinstance(exc, bx.EndpointConnectionError | bx.ConnectTimeoutError | bx.ReadTimeoutError):
            return SourceUnreachable(
                f"cannot reach S3 endpoint {endpoint} for {url} after {self.options.max_attempts} attempts: "
                "check aws-endpoint-url / AWS_ENDPOINT_URL and the network"
            )
        if isinstance(exc, bx.ClientError):
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code == "NoSuchBucket":
                return ObjectNotFound(
                    f"bucket '{self.bucket}' does not exist at {endpoint} ({url}): "
                    "create it (trainflow data upload does) or fix the URL"
                )
            if code in _MISSING:
                return ObjectNotFound(f"no object at {url}: check the URL")
            if code in _DENIED:
                return StorageError(f"access denied to {url} ({code}): check the credentials; {_CRED_FIX}")
            return StorageError(
                f"S3 request for {url} failed: {code} {exc.response.get('Error', {}).get('Message', '')}".strip()
            )
        return StorageError(f"S3 request for {url} failed: {exc}")

    def _call(self, name: str, fn: Any, /, **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return fn(**kwargs)
        except (BotoCoreError, ClientError) as exc:
            raise self._fail(exc, name) from None

    def list(self, names: Sequence[str] | None = None) -> list[ObjectInfo]:
        if names is not None:
            wanted = set(names)
            found = {o.name: o for o in self._list_all() if o.name in wanted}
            missing = sorted(wanted - found.keys())
            if missing:
                raise ObjectNotFound(f"no object at {self.object_url(missing[0])}: check the URL")
            return [found[n] for n in names]
        return self._list_all()

    def pages(self, names: Sequence[str] | None = None) -> Iterator[builtins.list[ObjectInfo]]:
        if names is not None:
            yield self.list(names)
            return
        yield from self._pages()

    def _list_all(self) -> builtins.list[ObjectInfo]:  # `list` here is the method above
        return [obj for page in self._pages() for obj in page]

    def _pages(self) -> Iterator[builtins.list[ObjectInfo]]:
        """The objects under the prefix, a page of the listing (up to 1,000 keys) at a time."""
        base = f"{self.prefix}/" if self.prefix else ""
        from botocore.exceptions import BotoCoreError, ClientError

        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=base):
                found: builtins.list[ObjectInfo] = []
                for obj in page.get("Contents", []):
                    name = obj["Key"][len(base) :]
                    if name and not name.endswith("/"):
                        found.append(
                            ObjectInfo(name, obj["Size"], obj["ETag"].strip('"'), obj["LastModified"].timestamp())
                        )
                yield found
        except (BotoCoreError, ClientError) as exc:
            raise self._fail(exc) from None

    def children(self, holding: str | None = None) -> builtins.list[str]:
        """One delimited listing of the base's top level: S3 answers each "directory" once, not its objects."""
        from botocore.exceptions import BotoCoreError, ClientError

        base = f"{self.prefix}/" if self.prefix else ""
        found: set[str] = set()
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=base, Delimiter="/"
            ):
                found.update(p["Prefix"][len(base) :].removesuffix("/") for p in page.get("CommonPrefixes", []))
                if holding is None:
                    found.update(o["Key"][len(base) :] for o in page.get("Contents", []))
        except (BotoCoreError, ClientError) as exc:
            failure = self._fail(exc)
            if isinstance(failure, ObjectNotFound):
                return []
            raise failure from None
        names = sorted(n for n in found if n and not n.startswith(".") and name_problem(n) is None)
        return names if holding is None else [n for n in names if self.exists(f"{n}/{holding}")]

    def stat(self, name: str) -> ObjectInfo:
        head = self._call(name, self.client.head_object, Bucket=self.bucket, Key=self._key(name))
        return ObjectInfo(name, head["ContentLength"], head["ETag"].strip('"'), head["LastModified"].timestamp())

    def download(self, name: str, dest: Path, progress: ProgressCallback = _no_progress) -> str:
        """One streamed GET, hashed as it arrives; large objects come as parallel ranged GETs, hashed in order."""
        from botocore.exceptions import BotoCoreError

        for attempt in range(1, self.options.max_attempts + 1):
            response = self._call(name, self.client.get_object, Bucket=self.bucket, Key=self._key(name))
            body = response["Body"]
            if response["ContentLength"] > _STREAM_LIMIT:
                body.close()
                return self._download_ranged(name, dest, progress)
            try:
                with open(dest, "wb") as out:
                    writer = HashingWriter(out)
                    for chunk in body.iter_chunks(_CHUNK):
                        writer.write(chunk)
                        progress(len(chunk))
                return writer.hexdigest()
            except BotoCoreError as exc:  # the stream broke off: botocore retries requests, not bodies
                body.close()
                if attempt == self.options.max_attempts:
                    raise self._fail(exc, name) from None
        raise AssertionError("unreachable")

    def _download_ranged(self, name: str, dest: Path, progress: ProgressCallback) -> str:
        from boto3.s3.transfer import TransferConfig

        # A writer that cannot seek gets the parts in order; few at once bounds what waits in memory.
        config = TransferConfig(max_concurrency=4)
        with open(dest, "wb") as out:
            writer = HashingWriter(out)
            self._call(
                name,
                self.client.download_fileobj,
                Bucket=self.bucket,
                Key=self._key(name),
                Fileobj=writer,
                Callback=progress,
                Config=config,
            )
        return writer.hexdigest()

    def read_bytes(self, name: str) -> bytes:
        buf = io.BytesIO()
        self._call(name, self.client.download_fileobj, Bucket=self.bucket, Key=self._key(name), Fileobj=buf)
        return buf.getvalue()

    def write_bytes(self, name: str, data: bytes) -> None:
        # A single PUT is atomic in S3: readers see the old object or the new one.
        self._call(name, self.client.put_object, Bucket=self.bucket, Key=self._key(name), Body=data)

    def upload(self, src: Path, name: str, progress: ProgressCallback = _no_progress) -> None:
        self._call(
            name, self.client.upload_file, Filename=str(src), Bucket=self.bucket, Key=self._key(name), Callback=progress
        )

    def delete(self, name: str) -> None:
        key = self._key(name)
        if name and not name.endswith("/"):
            self._call(name, self.client.delete_object, Bucket=self.bucket, Key=key)
            return
        for obj in self.list():  # a "directory": every object under it
            if obj.name.startswith(name):
                self._call(obj.name, self.client.delete_object, Bucket=self.bucket, Key=self._key(obj.name))

    def ensure_container(self) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.head_bucket(Bucket=self.bucket)
            return
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) not in ("404", "NoSuchBucket", "NotFound"):
                raise self._fail(exc) from None
        except BotoCoreError as exc:
            raise self._fail(exc) from None
        region = self.client.meta.region_name
        kwargs: dict[str, Any] = {"Bucket": self.bucket}
        if region and region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
        self._call("", self.client.create_bucket, **kwargs)
