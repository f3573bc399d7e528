"""A pipeline's own code on the cluster without rebuilding the image: its folder as a content-addressed package.

`pack` makes a deterministic tar.gz of the pipeline file's folder (sorted names, fixed times, owners and
modes, so equal code gives equal bytes and an equal SHA-256), leaving out what `.trainflowignore` and
`.gitignore` name, version-control and virtual-environment folders, caches and anything that looks like
credentials. `upload` stores it once as `<base>/code/<sha256>.tar.gz`. A step finds the package's URL in
TRAINFLOW_CODE_PACKAGE; `activate` fetches it, checks the bytes against the digest its name carries,
unpacks it under `$TRAINFLOW_HOME/code/<sha256>/` (refusing any member that could land outside that
folder: absolute names, `..`, links, devices) and puts that folder first on the import path.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import logging
import os
import re
import shutil
import sys
import tarfile
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from trainflow.workflows.errors import WorkflowError

if TYPE_CHECKING:
    from trainflow.pipelines import Pipeline, Step

log = logging.getLogger(__name__)

CODE_ENV = "TRAINFLOW_CODE_PACKAGE"  # the package's URL, read by every `trainflow step` program
MAX_BYTES = 50 * 1024 * 1024  # compressed: code, not data or checkpoints
MAX_UNPACKED_BYTES = 512 * 1024 * 1024
MAX_MEMBERS = 20_000
IGNORE_FILES = (".trainflowignore", ".gitignore")
# Never packed, whatever the ignore files say: version control, environments, caches, credentials.
ALWAYS_LEFT_OUT = (
    ".git/",
    ".hg/",
    ".svn/",
    ".venv/",
    "venv/",
    "env/",
    "__pycache__/",
    "*.pyc",
    ".mypy_cache/",
    ".pytest_cache/",
    ".ruff_cache/",
    ".ipynb_checkpoints/",
    "node_modules/",
    ".aws/",
    ".ssh/",
    ".kube/",
    ".docker/",
    ".gnupg/",
    ".env",
    ".env.*",
    "*.pem",
    "*.key",
    "*.p12",
    "*.pfx",
    "id_rsa*",
    "id_dsa*",
    "id_ecdsa*",
    "id_ed25519*",
    ".netrc",
    ".pypirc",
    ".git-credentials",
    "credentials",
    "credentials.json",
    "kubeconfig",
    "*.kubeconfig",
)
DIGEST = "[0-9a-f]{64}"  # a package's SHA-256: its stored name and its unpacked folder's
PACKAGE_NAME = re.compile(rf"(?:^|/)({DIGEST})\.tar\.gz\Z")
CODE_FOLDER = "code"  # under $TRAINFLOW_HOME: one folder per unpacked package, named by its digest


@dataclass(frozen=True)
class Package:
    """A packed folder: the archive's bytes, their SHA-256 and the files it holds."""

    data: bytes
    digest: str
    files: tuple[str, ...]

    @property
    def name(self) -> str:
        return f"{self.digest}.tar.gz"


def _matcher(folder: Path) -> object:
    import pathspec

    lines = list(ALWAYS_LEFT_OUT)
    for ignore in IGNORE_FILES:
        path = folder / ignore
        if path.is_file():
            lines += path.read_text(encoding="utf-8", errors="replace").splitlines()
    return pathspec.GitIgnoreSpec.from_lines(lines)


def packed_files(folder: Path) -> list[str]:
    """The files `pack` takes from `folder`, as sorted POSIX paths relative to it (symbolic links left out)."""
    spec = _matcher(folder)
    found = []
    for root, dirs, files in os.walk(folder, followlinks=False):
        rel_root = Path(root).relative_to(folder).as_posix()
        prefix = "" if rel_root == "." else f"{rel_root}/"
        dirs[:] = sorted(d for d in dirs if not spec.match_file(f"{prefix}{d}/"))  # type: ignore[attr-defined]
        for name in sorted(files):
            rel = f"{prefix}{name}"
            path = Path(root, name)
            if path.is_symlink() or not path.is_file() or spec.match_file(rel):  # type: ignore[attr-defined]
                continue
            found.append(rel)
    return sorted(found)


def pack(folder: Path, limit: int = MAX_BYTES) -> Package:
    """`folder` as a deterministic tar.gz (see the module docstring); WorkflowError if it is over `limit` bytes."""
    folder = folder.resolve()
    files = packed_files(folder)
    total = sum((folder / f).stat().st_size for f in files)
    if total > MAX_UNPACKED_BYTES:
        raise _too_big(folder, total, MAX_UNPACKED_BYTES, "unpacked ")
    raw = io.BytesIO()
    with (
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as zipped,
        tarfile.open(fileobj=zipped, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for rel in files:
            data = (folder / rel).read_bytes()
            info = tarfile.TarInfo(rel)
            info.size, info.mtime, info.uid, info.gid, info.uname, info.gname = len(data), 0, 0, 0, "", ""
            info.mode = 0o755 if os.access(folder / rel, os.X_OK) else 0o644
            tar.addfile(info, io.BytesIO(data))
    data = raw.getvalue()
    if len(data) > limit:
        raise _too_big(folder, len(data), limit, "")
    return Package(data, hashlib.sha256(data).hexdigest(), tuple(files))


def _too_big(folder: Path, size: int, limit: int, what: str) -> WorkflowError:
    return WorkflowError(
        f"the code package of {folder} is {size / 2**20:.1f} MiB {what}(limit {limit / 2**20:.0f} MiB): "
        "list data, checkpoints and other large files in its .trainflowignore"
    )


def package_url(base: str, digest: str) -> str:
    """Where a package with `digest` lives under a store URL: `<base>/code/<digest>.tar.gz`."""
    from trainflow.storage import join_url

    return join_url(base, "code", f"{digest}.tar.gz")


def digest_of(url: str) -> str | None:
    """The SHA-256 a package URL names (`.../<sha256>.tar.gz`), or None if it names none."""
    match = PACKAGE_NAME.search(url)
    return match.group(1) if match else None


def upload(package: Package, base: str) -> str:
    """Store `package` under `base` unless an object of that name is there already; its URL."""
    from trainflow.storage import open_store

    url = package_url(base, package.digest)
    store = open_store(url.rsplit("/", 1)[0])
    if store.exists(package.name):
        log.info("code package %s is already stored", url)
    else:
        store.write_bytes(package.name, package.data)
        log.info("uploaded the code package %s (%d files, %d bytes)", url, len(package.files), len(package.data))
    return url


def fetch(url: str, home: Path) -> Path:
    """The folder `url`'s package is unpacked in (under `home`/code), fetched and verified if not there yet."""
    from trainflow.storage import ObjectNotFound, StorageError, open_store

    digest = digest_of(url)
    if digest is None:
        raise WorkflowError(f"code package {url}: the name must be <sha256>.tar.gz (as trainflow uploads it)")
    dest = home / CODE_FOLDER / digest
    if dest.is_dir():
        return dest
    base, _, name = url.rpartition("/")
    try:
        data = open_store(base).read_bytes(name)
    except ObjectNotFound:
        raise WorkflowError(f"code package {url} is missing: submit again to upload it") from None
    except StorageError as exc:
        raise WorkflowError(f"code package {url} cannot be read: {exc.message}") from None
    if hashlib.sha256(data).hexdigest() != digest:
        raise WorkflowError(f"code package {url} does not match its digest (changed after upload?): refusing it")
    unpack(data, dest)
    return dest


def runs_in_package(step: Step, argv: Sequence[str]) -> bool:
    """Whether a step's program starts in the code package's folder, locally and on a cluster: a program that is not
    trainflow (`trainflow step ...` programs import from the package wherever they start) in a step without an image
    of its own (another image may not hold trainflow)."""
    return bool(argv) and argv[0] != "trainflow" and step.image is None


def unpacked_among(folders: Sequence[str], home: Path) -> Path | None:
    """The package `fetch` unpacked under `home` that a run imports from, among its import `folders`; None if none."""
    code = (home / CODE_FOLDER).resolve()
    for folder in folders:
        path = Path(folder).resolve()
        if path.parent == code and re.fullmatch(DIGEST, path.name):
            return path
    return None


def unpack(data: bytes, dest: Path) -> None:
    """Unpack a package's `data` into `dest` (created whole, by rename), refusing any unsafe member."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            members = list(_checked(tar))
            tar.extractall(work, members=members, filter="data")
        try:
            work.rename(dest)
        except OSError:  # another process unpacked the same digest first: theirs is as good
            if not dest.is_dir():
                raise
    except (tarfile.TarError, EOFError, OSError, gzip.BadGzipFile) as exc:
        raise WorkflowError(f"code package is not a readable tar.gz ({type(exc).__name__}: {exc})") from None
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _checked(tar: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
    total = 0
    for count, member in enumerate(tar, start=1):
        path = PurePosixPath(member.name)
        if member.name.startswith("/") or "\\" in member.name or ".." in path.parts or not path.parts:
            raise WorkflowError(f"code package member '{member.name[:200]}' would land outside its folder: refusing it")
        if not (member.isfile() or member.isdir()):
            raise WorkflowError(f"code package member '{member.name[:200]}' is a link or device: refusing it")
        total += member.size
        if count > MAX_MEMBERS or total > MAX_UNPACKED_BYTES:
            raise WorkflowError(f"code package unpacks to over {MAX_MEMBERS} files or {MAX_UNPACKED_BYTES} bytes")
        yield member


def activate(url: str, home: Path) -> Path:
    """Fetch, verify and unpack `url`'s package, and import from it first (this process and its children)."""
    folder = fetch(url, home)
    sys.path.insert(0, str(folder))
    os.environ["PYTHONPATH"] = os.pathsep.join([str(folder), *filter(None, [os.environ.get("PYTHONPATH")])])
    return folder


@dataclass(frozen=True)
class Shipped:
    """Where a run's code package is: its URL, and whether this call packed (and uploaded) it."""

    url: str
    packed: Package | None = None
    uploaded: bool = False


def ship(folder: Path, where: str, send: bool = True) -> Shipped:
    """`where` as the run's package: a package URL as is, else `folder` packed to `<where>/code/` (sent if `send`)."""
    if digest_of(where):
        return Shipped(where)
    package = pack(folder)
    if not send:
        return Shipped(package_url(where, package.digest), package)
    return Shipped(upload(package, where), package, uploaded=True)


def artifacts_base(pipeline: Pipeline, values: Mapping[str, str]) -> str | None:
    """The pipeline's artifacts_url with its parameters filled in, if every pod can reach it (a shared store)."""
    from trainflow.pipelines.refs import substitute
    from trainflow.storage import is_shared

    url = substitute(str(pipeline.artifacts_url), lambda ref: values.get(getattr(ref, "name", ""), ""))
    return url if url and is_shared(url) else None
