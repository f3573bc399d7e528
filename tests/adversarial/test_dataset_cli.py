"""Issue 10 as a user meets it: `trainflow data ...` in a real process, against a real S3 or HTTP server.

The reproductions of defect 1 (a `..` key, deleting it, a tampered manifest, bad names) and of
item 10 (temp files left by a killed sync, urllib3 retry warnings before the error line).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from tests.servers import FileServer, QuietFileHandler

DEEP = "../" * 30


def trainflow(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trainflow", *args],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=120,
        check=False,
    )


def one_error_line(out: subprocess.CompletedProcess[str]) -> str:
    """The single line a failed command printed on stderr (asserting there is nothing else)."""
    assert out.returncode != 0, out.stdout
    lines = out.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr
    return lines[0]


@pytest.fixture
def datasets(trainflow_home: Path) -> Path:
    return trainflow_home / "cache" / "datasets"


def test_issue_reproduction_dotdot_key_is_refused_and_its_deletion_unlinks_nothing(
    aws_env: str, s3_bucket: str, tmp_path: Path, datasets: Path
) -> None:
    s3 = boto3.client("s3", endpoint_url=aws_env)
    bucket = s3_bucket[5:]
    escape = tmp_path / "escape" / "dotdot.txt"
    bad_key = f"evil/{DEEP}{escape.as_posix().lstrip('/')}"
    s3.put_object(Bucket=bucket, Key="evil/ok.txt", Body=b"ok")
    s3.put_object(Bucket=bucket, Key=bad_key, Body=b"x")

    line = one_error_line(trainflow("data", "sync", f"{s3_bucket}/evil/", "--name", "evil"))

    assert f"{s3_bucket}/{bad_key}" in line and "'evil'" in line and "rename or delete it at the source" in line
    assert not escape.parent.exists()
    escape.parent.mkdir()
    escape.write_text("a file a user put there")
    s3.delete_object(Bucket=bucket, Key=bad_key)
    again = trainflow("data", "sync", f"{s3_bucket}/evil/", "--name", "evil")
    assert again.returncode == 0, again.stderr
    assert escape.read_text() == "a file a user put there"
    assert json.loads((datasets / "evil" / "manifest.json").read_text())["files"].keys() == {"ok.txt"}


def test_tampered_manifest_is_refused_by_sync_and_describe_listed_as_damaged_and_removable(
    aws_env: str, mnist_s3_url: str, tmp_path: Path, datasets: Path
) -> None:
    assert trainflow("data", "sync", mnist_s3_url, "--name", "mnist").returncode == 0
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    manifest_path = datasets / "mnist" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["files"][DEEP + victim.as_posix().lstrip("/")] = next(iter(manifest["files"].values()))
    manifest_path.write_text(json.dumps(manifest))

    for args in (("data", "sync", mnist_s3_url, "--name", "mnist"), ("data", "describe", "mnist")):
        line = one_error_line(trainflow(*args))
        assert "altered outside trainflow" in line and "trainflow data rm mnist" in line
    listed = trainflow("data", "ls")
    assert listed.returncode == 0 and "damaged: see trainflow data describe mnist" in listed.stdout
    assert json.loads(trainflow("data", "ls", "-o", "json").stdout) == [
        {"name": "mnist", "source": None, "files": None, "size": None, "last_sync": None, "damaged": True}
    ]
    assert trainflow("data", "rm", "mnist").returncode == 0
    assert victim.read_text() == "keep me"
    assert trainflow("data", "sync", mnist_s3_url, "--name", "mnist").returncode == 0


@pytest.mark.parametrize("name", ["../x", "/abs", "", "a/b", "x" * 129, ".", "-rf"])
def test_bad_dataset_names_are_one_error_line_and_create_nothing(mnist_dir: Path, datasets: Path, name: str) -> None:
    line = one_error_line(trainflow("data", "sync", str(mnist_dir), "--name", name))
    assert "invalid dataset name" in line
    assert not datasets.exists() or [p.name for p in datasets.iterdir() if not p.name.endswith(".lock")] == []


def test_unreachable_http_source_prints_only_the_error_line() -> None:
    from servers import free_port

    out = trainflow("data", "sync", f"http://127.0.0.1:{free_port()}/mnist/", "--mnist", "--name", "web")
    line = one_error_line(out)
    assert "cannot reach" in line and "after 4 attempts" in line
    assert "WARNING" not in out.stderr and "Retrying" not in out.stderr


class _StallingServer(FileServer):
    """An HTTP file server that, while `stall` is set, sends half of a file and then hangs."""

    def __init__(self, root: Path) -> None:
        self.stall = threading.Event()
        owner = self

        class Handler(QuietFileHandler):
            def do_GET(self) -> None:
                if not owner.stall.is_set():
                    super().do_GET()
                    return
                data = (root / self.path.lstrip("/")).read_bytes()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data[: len(data) // 2])
                self.wfile.flush()
                owner.release.wait(60)
                self.close_connection = True

        super().__init__(root, Handler)


@pytest.fixture
def stalling(tmp_path: Path) -> Iterator[tuple[str, Path, _StallingServer]]:
    root = tmp_path / "served"
    (root / "sub").mkdir(parents=True)
    (root / "big.bin").write_bytes(os.urandom(3 << 20))
    (root / "sub" / "small.bin").write_bytes(os.urandom(1 << 20))
    server = _StallingServer(root)
    with server as url:
        yield url, root, server


def part_files(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*.part"))


def test_killed_sync_leaves_temp_files_that_the_next_sync_removes(stalling, datasets: Path) -> None:
    url, root, server = stalling
    args = [
        sys.executable,
        "-m",
        "trainflow",
        "data",
        "sync",
        url,
        "--file",
        "big.bin",
        "--file",
        "sub/small.bin",
        "--name",
        "web",
    ]
    server.stall.set()
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=os.environ.copy())
    try:
        deadline = time.monotonic() + 60
        while len(part_files(datasets / "web")) < 2 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert len(part_files(datasets / "web")) == 2, "both downloads should be under way"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    server.stall.clear()
    server.release.set()

    out = trainflow("data", "sync", url, "--file", "big.bin", "--file", "sub/small.bin", "--name", "web")

    assert out.returncode == 0, out.stderr
    assert part_files(datasets / "web") == []
    for name in ("big.bin", "sub/small.bin"):
        assert (datasets / "web" / name).read_bytes() == (root / name).read_bytes()


def test_stale_temp_files_are_removed_but_dataset_files_kept(aws_env: str, mnist_s3_url: str, datasets: Path) -> None:
    assert trainflow("data", "sync", mnist_s3_url, "--name", "mnist").returncode == 0
    directory = datasets / "mnist"
    stale = [
        directory / ".train-images-idx3-ubyte.gz.k2j3h4.part",
        directory / ".manifest.json.abc.tmp",
        directory / "deep" / "er" / ".x.part",
    ]
    for path in stale:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"half a download")
    out = trainflow("data", "sync", mnist_s3_url, "--name", "mnist")
    assert out.returncode == 0 and "4 up to date" in out.stdout
    assert not any(p.exists() for p in stale)


def test_keys_that_look_like_terminal_markup_are_printed_as_they_are(aws_env: str, s3_bucket: str) -> None:
    s3 = boto3.client("s3", endpoint_url=aws_env)
    keys = ["a[/]b.txt", "[bold]plain[/bold].txt", "[link=file:x]x[/link].txt"]
    for key in keys:
        s3.put_object(Bucket=s3_bucket[5:], Key=f"markup/{key}", Body=b"x")
    assert trainflow("data", "sync", f"{s3_bucket}/markup/", "--name", "markup").returncode == 0
    out = trainflow("data", "describe", "markup")
    assert out.returncode == 0, out.stderr
    assert all(key in out.stdout for key in keys)
