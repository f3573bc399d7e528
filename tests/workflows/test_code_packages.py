"""Code packages: a pipeline folder packed deterministically, stored once on S3 (moto), fetched, verified, unpacked.

A step told TRAINFLOW_CODE_PACKAGE runs the pipeline's own modules from the unpacked copy, in a folder where
they are absent; a tampered or missing package and hostile archives are refused in one line.
"""

from __future__ import annotations

import io
import os
import tarfile
import time
from pathlib import Path

import pytest

from tests.commands import trainflow
from trainflow.storage import open_store
from trainflow.workflows.code_packages import CODE_ENV, digest_of, fetch, pack, packed_files, unpack, upload
from trainflow.workflows.errors import WorkflowError

FIT = """
def small(where: str = "") -> dict:
    from mycode.helpers import double
    return {"loss": double(0.25), "where": where}
"""


def project(root: Path) -> Path:
    """A user's pipeline folder: modules, an ignore file, and things that must never be packed."""
    (root / "mycode").mkdir(parents=True)
    (root / "mycode" / "__init__.py").write_text("")
    (root / "mycode" / "fit.py").write_text(FIT)
    (root / "mycode" / "helpers.py").write_text("def double(x: float) -> float:\n    return 2 * x\n")
    (root / "pipeline.py").write_text("# the pipeline\n")
    (root / ".gitignore").write_text("data/\n*.ckpt\n")
    (root / ".trainflowignore").write_text("notes.txt\n")
    for junk in (
        "data/big.csv",
        "model.ckpt",
        "notes.txt",
        ".venv/lib/x.py",
        ".git/config",
        "mycode/__pycache__/fit.pyc",
    ):
        (root / junk).parent.mkdir(parents=True, exist_ok=True)
        (root / junk).write_text("x")
    for secret in (".env", "id_rsa", ".aws/credentials", "certs/server.key", "kubeconfig"):
        (root / secret).parent.mkdir(parents=True, exist_ok=True)
        (root / secret).write_text("SECRET")
    return root


def test_the_package_holds_the_code_and_never_ignored_files_environments_or_credentials(tmp_path: Path) -> None:
    files = packed_files(project(tmp_path / "proj"))
    assert files == [
        ".gitignore",
        ".trainflowignore",
        "mycode/__init__.py",
        "mycode/fit.py",
        "mycode/helpers.py",
        "pipeline.py",
    ]


def test_packing_is_deterministic_so_equal_code_has_one_digest(tmp_path: Path) -> None:
    first = pack(project(tmp_path / "a"))
    copy = project(tmp_path / "b")
    os.utime(copy / "mycode" / "fit.py", (time.time() + 1000, time.time() + 1000))
    second = pack(copy)
    assert (first.data, first.digest) == (second.data, second.digest)
    (copy / "mycode" / "fit.py").write_text(FIT + "\n# changed\n")
    assert pack(copy).digest != first.digest
    with tarfile.open(fileobj=io.BytesIO(first.data)) as tar:
        assert {(m.mtime, m.uid, m.gid, m.uname) for m in tar} == {(0, 0, 0, "")}


def test_a_folder_over_the_size_limit_is_one_line_naming_the_ignore_file(tmp_path: Path) -> None:
    root = project(tmp_path / "proj")
    (root / "weights.bin").write_bytes(os.urandom(300_000))
    with pytest.raises(WorkflowError) as caught:
        pack(root, limit=100_000)
    assert ".trainflowignore" in str(caught.value) and "\n" not in str(caught.value)


def test_a_package_is_uploaded_once_and_fetched_verified_and_unpacked(tmp_path: Path, s3_bucket: str) -> None:
    package = pack(project(tmp_path / "proj"))
    url = upload(package, f"{s3_bucket}/team")
    assert url == f"{s3_bucket}/team/code/{package.digest}.tar.gz" and digest_of(url) == package.digest
    store = open_store(f"{s3_bucket}/team/code")
    before = store.stat(package.name)
    assert upload(package, f"{s3_bucket}/team") == url
    assert store.stat(package.name) == before  # not written again
    folder = fetch(url, tmp_path / "home")
    assert (folder / "mycode" / "helpers.py").read_text().startswith("def double")
    assert not (folder / ".env").exists()


def test_a_step_runs_the_pipelines_modules_from_the_package_where_they_are_absent(
    tmp_path: Path, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = upload(pack(project(tmp_path / "proj")), s3_bucket)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.setenv(CODE_ENV, url)
    monkeypatch.setenv("TRAINFLOW_OUTPUTS", f"{tmp_path / 'out'}/")
    result = trainflow("step", "call", "mycode.fit:small", "--input", "where", "pod", cwd=elsewhere)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "loss").read_text() == "0.5"
    monkeypatch.delenv(CODE_ENV)
    without = trainflow("step", "call", "mycode.fit:small", cwd=elsewhere)
    assert without.returncode != 0 and "mycode" in without.stderr  # the modules really are absent here


def test_a_tampered_package_fails_the_step_in_one_line_and_unpacks_nothing(
    tmp_path: Path, s3_bucket: str, monkeypatch: pytest.MonkeyPatch, trainflow_home: Path
) -> None:
    package = pack(project(tmp_path / "proj"))
    url = upload(package, s3_bucket)
    evil = tmp_path / "evil"
    (evil / "mycode").mkdir(parents=True)
    (evil / "mycode" / "__init__.py").write_text("")
    (evil / "mycode" / "fit.py").write_text("def small():\n    return {'loss': 'pwned'}\n")
    open_store(f"{s3_bucket}/code").write_bytes(package.name, pack(evil).data)
    monkeypatch.setenv(CODE_ENV, url)
    result = trainflow("step", "call", "mycode.fit:small", cwd=tmp_path)
    assert result.returncode != 0
    [line] = [x for x in result.stderr.splitlines() if x.startswith("error:")]
    assert "does not match its digest" in line
    assert not (trainflow_home / "code" / package.digest).exists()


def test_a_missing_package_fails_the_step_in_one_line(
    tmp_path: Path, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CODE_ENV, f"{s3_bucket}/code/{'0' * 64}.tar.gz")
    result = trainflow("step", "call", "mycode.fit:small", cwd=tmp_path)
    assert result.returncode != 0 and "is missing" in result.stderr


def archive(*members: tarfile.TarInfo, data: bytes = b"x") -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as tar:
        for member in members:
            if member.isfile():
                member.size = len(data)
                tar.addfile(member, io.BytesIO(data))
            else:
                tar.addfile(member)
    return raw.getvalue()


def _member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    return info


@pytest.mark.parametrize(
    ("member", "says"),
    [
        (_member("../escape.py"), "outside its folder"),
        (_member("pkg/../../escape.py"), "outside its folder"),
        (_member("/etc/cron.d/evil"), "outside its folder"),
        (_member("link", tarfile.SYMTYPE, "/etc/passwd"), "link or device"),
        (_member("hard", tarfile.LNKTYPE, "../../etc/passwd"), "link or device"),
        (_member("dev", tarfile.CHRTYPE), "link or device"),
        (_member("fifo", tarfile.FIFOTYPE), "link or device"),
    ],
)
def test_hostile_archive_members_are_refused_and_nothing_is_unpacked(
    tmp_path: Path, member: tarfile.TarInfo, says: str
) -> None:
    data = archive(_member("ok.py"), member)
    dest = tmp_path / "unpacked" / "pkg"
    with pytest.raises(WorkflowError, match=says):
        unpack(data, dest)
    assert not dest.exists() and not (tmp_path / "escape.py").exists()
    assert [p.name for p in (tmp_path / "unpacked").iterdir()] == []


def test_a_package_url_without_a_digest_is_refused(tmp_path: Path) -> None:
    with pytest.raises(WorkflowError, match="sha256"):
        fetch("s3://bucket/code/latest.tar.gz", tmp_path)


def test_the_step_programs_read_the_same_variable_the_manifests_set() -> None:
    from trainflow.cli import step_code

    assert step_code.CODE_ENV == CODE_ENV
